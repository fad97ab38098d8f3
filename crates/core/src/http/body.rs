//! Reading an answer's body with a ceiling on its size.
//!
//! reqwest's `bytes()` takes a body of any size into memory, so one provider answering with
//! gigabytes (by mistake, or an attacker behind a base URL) would take the host's memory with
//! it. Bodies are read chunk by chunk instead and refused once they pass the limit, which is
//! checked against `Content-Length` before anything is read. Nothing is decompressed: the
//! client has no decoding features, so a gzip bomb is only as large as its compressed bytes.

use std::fmt;

/// The most of a provider API's answer [`ApiClient`](super::ApiClient) reads: far above any
/// page of records (Graph's largest pages are a few MB), far below what would strain memory
/// with a few syncs running at once.
pub const MAX_ANSWER_SIZE: usize = 32 * 1024 * 1024;

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is larger than the limit, which it names in bytes.
    TooLarge { limit: usize },
    /// The connection broke, or the request's timeout passed, while reading.
    Read(reqwest::Error),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge { limit } => write!(
                f,
                "the answer is larger than {}, the most Plugboard reads",
                size(*limit)
            ),
            BodyError::Read(e) => f.write_str(&super::describe(e)),
        }
    }
}

/// Reads `response`'s body, refusing it once it passes `limit` bytes: at most `limit` bytes and
/// one chunk are ever held.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(BodyError::TooLarge { limit });
    }
    // The announced length is a hint for the allocation only: the bytes that come are counted.
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `limit` in the largest binary unit that divides it, as people write sizes.
fn size(limit: usize) -> String {
    const MIB: usize = 1024 * 1024;
    match limit {
        n if n >= MIB && n % MIB == 0 => format!("{} MiB", n / MIB),
        n if n >= 1024 && n % 1024 == 0 => format!("{} KiB", n / 1024),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_named_in_the_unit_people_write() {
        assert_eq!(size(MAX_ANSWER_SIZE), "32 MiB");
        assert_eq!(size(1024 * 1024), "1 MiB");
        assert_eq!(size(64 * 1024), "64 KiB");
        assert_eq!(size(1000), "1000 bytes");
        assert_eq!(
            BodyError::TooLarge { limit: 1024 * 1024 }.to_string(),
            "the answer is larger than 1 MiB, the most Plugboard reads"
        );
    }
}
