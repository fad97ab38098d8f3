//! How values cross the boundary as bytes.
//!
//! JSON for everything (the core types are serde types, and JSON is what the host stores),
//! encoded once per call. Two exceptions: an HTTP response's body, which crosses as it is
//! ([`HttpOutput`]), and where records are in their batch's JSON, fixed-width offsets
//! ([`encode_spans`]).

use plugboard_core::{HttpResponse, LogLevel, ProviderError, RecordSpan};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::abi::{HttpOutput, RBuffer};

/// Encodes a value for the other side.
pub(crate) fn encode<T: Serialize>(value: &T, what: &str) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(value).map_err(|e| broken(what, &e))
}

/// Encodes the outcome of a call. Should `T` fail to encode, the failure is the outcome.
pub(crate) fn encode_result<T: Serialize>(
    result: &Result<T, ProviderError>,
    what: &str,
) -> Vec<u8> {
    serde_json::to_vec(result).unwrap_or_else(|e| {
        let error: Result<(), ProviderError> = Err(broken(what, &e));
        serde_json::to_vec(&error).expect("a ProviderError always encodes")
    })
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ProviderError> {
    serde_json::from_slice(bytes).map_err(|e| broken(what, &e))
}

pub(crate) fn decode_result<T: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
) -> Result<T, ProviderError> {
    decode::<Result<T, ProviderError>>(bytes, what)?
}

/// Moves the response's body into the output as it is; only the head is encoded.
pub(crate) fn encode_response(result: Result<HttpResponse, ProviderError>) -> HttpOutput {
    let (head, body) = match result {
        Ok(response) => (
            Ok(ResponseHead {
                status: response.status,
                headers: response.headers,
            }),
            response.body,
        ),
        Err(error) => (Err(error), Vec::new()),
    };
    HttpOutput {
        head: RBuffer::new(encode_result(&head, "the HTTP response head")),
        body: RBuffer::new(body),
    }
}

/// The response, its body copied into this side's allocator.
pub(crate) fn decode_response(output: &HttpOutput) -> Result<HttpResponse, ProviderError> {
    let head: ResponseHead = decode_result(output.head.as_bytes(), "the HTTP response head")?;
    Ok(HttpResponse {
        status: head.status,
        headers: head.headers,
        body: output.body.as_bytes().to_vec(),
    })
}

#[derive(Serialize, Deserialize)]
struct ResponseHead {
    status: u16,
    headers: Vec<(String, String)>,
}

/// The bytes of one span: id start, id end, data start, data end.
const SPAN_BYTES: usize = 4 * size_of::<u64>();

/// Where records are in a batch, as little-endian `u64` offsets, four per record: a layout
/// read without a parse, as records' spans are there to save one.
pub(crate) fn encode_spans(spans: &[RecordSpan]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(spans.len() * SPAN_BYTES);
    for span in spans {
        for offset in [span.id.start, span.id.end, span.data.start, span.data.end] {
            // A `usize` fits in a `u64` on every target Rust supports.
            bytes.extend_from_slice(&(offset as u64).to_le_bytes());
        }
    }
    bytes
}

pub(crate) fn decode_spans(bytes: &[u8]) -> Result<Vec<RecordSpan>, ProviderError> {
    let malformed = |problem: &str| {
        ProviderError::internal(format!("plugin boundary: the records' spans {problem}"))
    };
    if !bytes.len().is_multiple_of(SPAN_BYTES) {
        return Err(malformed(&format!(
            "are {} bytes, not a multiple of {SPAN_BYTES}",
            bytes.len()
        )));
    }
    let offset = |chunk: &[u8]| {
        let value = u64::from_le_bytes(chunk.try_into().expect("chunks of 8 bytes"));
        usize::try_from(value).map_err(|_| malformed(&format!("hold {value}, past any address")))
    };
    bytes
        .chunks_exact(SPAN_BYTES)
        .map(|span| {
            let [id_start, id_end, data_start, data_end] =
                [0, 1, 2, 3].map(|i| offset(&span[i * 8..(i + 1) * 8]));
            Ok(RecordSpan {
                id: id_start?..id_end?,
                data: data_start?..data_end?,
            })
        })
        .collect()
}

pub(crate) fn log_level_code(level: LogLevel) -> u32 {
    match level {
        LogLevel::Debug => 0,
        LogLevel::Info => 1,
        LogLevel::Warn => 2,
        LogLevel::Error => 3,
    }
}

/// The level of a code; one this version does not know (only a newer ABI could send it) is
/// kept as an error rather than dropped.
pub(crate) fn log_level(code: u32) -> LogLevel {
    match code {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        _ => LogLevel::Error,
    }
}

fn broken(what: &str, error: &serde_json::Error) -> ProviderError {
    ProviderError::internal(format!(
        "plugin boundary: {what} could not be encoded or decoded: {error}"
    ))
}

#[cfg(test)]
mod fuzz;

#[cfg(test)]
mod tests {
    use plugboard_core::ErrorKind;

    use super::*;

    #[test]
    fn a_response_crosses_with_its_body_byte_for_byte() {
        let response = HttpResponse {
            status: 207,
            headers: vec![("Content-Type".into(), "application/octet-stream".into())],
            body: (0..=255).collect(),
        };
        let output = encode_response(Ok(response.clone()));
        assert_eq!(output.body.as_bytes(), response.body.as_slice());
        assert_eq!(decode_response(&output), Ok(response));
    }

    #[test]
    fn an_error_crosses_instead_of_a_response() {
        let error = ProviderError::new(ErrorKind::Http { status: 429 }, "retries ran out");
        assert_eq!(
            decode_response(&encode_response(Err(error.clone()))),
            Err(error)
        );
    }

    #[test]
    fn an_unreadable_head_is_an_error_not_a_panic() {
        let output = HttpOutput {
            head: RBuffer::new(b"{\"Ok\":{\"status\":".to_vec()),
            body: RBuffer::new(b"{}".to_vec()),
        };
        let error = decode_response(&output).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert!(error.message.contains("the HTTP response head"), "{error}");
    }

    #[test]
    fn spans_cross_as_they_are_and_a_torn_list_is_an_error() {
        let spans = vec![
            RecordSpan {
                id: 7..12,
                data: 20..1_000_000,
            },
            RecordSpan {
                id: 0..0,
                data: usize::MAX - 1..usize::MAX,
            },
        ];
        let bytes = encode_spans(&spans);
        assert_eq!(decode_spans(&bytes), Ok(spans));
        assert_eq!(decode_spans(&[]), Ok(Vec::new()));

        let error = decode_spans(&bytes[..40]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Internal);
        assert_eq!(
            error.message,
            "plugin boundary: the records' spans are 40 bytes, not a multiple of 32"
        );
    }

    #[test]
    fn log_levels_keep_their_codes() {
        for level in [
            LogLevel::Debug,
            LogLevel::Info,
            LogLevel::Warn,
            LogLevel::Error,
        ] {
            assert_eq!(log_level(log_level_code(level)), level);
        }
        assert_eq!(log_level(17), LogLevel::Error);
    }
}
