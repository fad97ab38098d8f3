//! Inputs as bytes, so a failing one can be kept as a file and read back.

use std::fmt::Debug;

/// An input a target can keep: written to a regression file and read back from any bytes (a
/// file edited by hand still reads as some input rather than failing the replay).
pub trait Case: Clone + Debug {
    fn to_bytes(&self) -> Vec<u8>;
    /// Reads any bytes as an input; never fails.
    fn from_bytes(bytes: &[u8]) -> Self;
}

impl Case for Vec<u8> {
    fn to_bytes(&self) -> Vec<u8> {
        self.clone()
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        bytes.to_vec()
    }
}

/// Text is kept as it is, so a regression file of a text target reads as that text.
impl Case for String {
    fn to_bytes(&self) -> Vec<u8> {
        self.as_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

/// Numbers (a status code, a time), little-endian; missing bytes are zeros.
macro_rules! number_case {
    ($($ty:ty),*) => {$(
        impl Case for $ty {
            fn to_bytes(&self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }

            fn from_bytes(bytes: &[u8]) -> Self {
                let mut le = [0; size_of::<$ty>()];
                let len = bytes.len().min(le.len());
                le[..len].copy_from_slice(&bytes[..len]);
                <$ty>::from_le_bytes(le)
            }
        }
    )*};
}

number_case!(u16, u32, u64, i64);

/// Two parts: the first one's length as 8 little-endian bytes, the first, then the second. A
/// length past the end takes what is there.
impl<A: Case, B: Case> Case for (A, B) {
    fn to_bytes(&self) -> Vec<u8> {
        let first = self.0.to_bytes();
        let mut bytes = (first.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(&first);
        bytes.extend_from_slice(&self.1.to_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let (len, rest) = bytes.split_at(bytes.len().min(8));
        let mut le = [0; 8];
        le[..len.len()].copy_from_slice(len);
        let len = u64::from_le_bytes(le);
        let len = usize::try_from(len).unwrap_or(usize::MAX).min(rest.len());
        let (first, second) = rest.split_at(len);
        (A::from_bytes(first), B::from_bytes(second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_read_back_as_written_and_any_bytes_read_as_some_case() {
        let case = ((503u16, "body".to_owned()), vec![0u8, 255, 7]);
        assert_eq!(
            <((u16, String), Vec<u8>)>::from_bytes(&case.to_bytes()),
            case
        );
        for bytes in [
            &b""[..],
            b"\xff",
            b"\xff\xff\xff\xff\xff\xff\xff\xffabc",
            b"\x02\0\0\0\0\0\0\0",
        ] {
            let _ = <((u16, String), Vec<u8>)>::from_bytes(bytes);
        }
        assert_eq!(
            <(String, String)>::from_bytes(b"\x09\0\0\0\0\0\0\0ab"),
            ("ab".to_owned(), String::new())
        );
    }
}
