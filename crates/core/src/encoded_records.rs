//! Records already encoded as JSON: how a plugin's records reach the host's store without being
//! decoded and encoded again, and without being parsed at all when their encoder tells where
//! each record is.

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::context::Record;
use crate::error::ProviderError;

/// A batch of records as the JSON of `[{"id": …, "data": …}, …]`, the encoding of
/// `Vec<Record>`: how records cross a plugin boundary, kept as bytes so that the host can store
/// each record's `data` without decoding it (see
/// [`Context::save_encoded_records`](crate::Context::save_encoded_records)).
///
/// A batch knows where each record is in its bytes (its [`RecordSpan`]s) when its encoder
/// said so: [`EncodedRecords::encode`] notes them as it writes, and the plugin boundary hands
/// them over with the bytes ([`EncodedRecords::with_spans`]). Reading such a batch
/// ([`EncodedRecords::raw`]) then costs no parse, which is what keeps a plugin's records as
/// cheap for the host as a built-in provider's. A batch wrapped with [`EncodedRecords::new`]
/// is parsed once to find them; its bytes are not checked before that, and bad JSON is a
/// decode error then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecords {
    json: Vec<u8>,
    spans: Option<Vec<RecordSpan>>,
}

/// Where one record of an [`EncodedRecords`] batch is in its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSpan {
    /// The id's JSON string, quotes included.
    pub id: Range<usize>,
    /// The data's JSON text.
    pub data: Range<usize>,
}

impl EncodedRecords {
    /// Wraps the JSON of a `Vec<Record>`.
    pub fn new(json: Vec<u8>) -> Self {
        EncodedRecords { json, spans: None }
    }

    /// Wraps the JSON of a `Vec<Record>` together with where its encoder put each record, as
    /// [`EncodedRecords::spans`] returned them on the other side of a plugin boundary.
    ///
    /// The spans are trusted to frame JSON the way the encoder wrote it — that is the parse
    /// they save — but not to be in range: [`EncodedRecords::raw`] refuses a span outside the
    /// bytes, off a character boundary or around something that is not a string id.
    pub fn with_spans(json: Vec<u8>, spans: Vec<RecordSpan>) -> Self {
        EncodedRecords {
            json,
            spans: Some(spans),
        }
    }

    /// Encodes records, noting where each one is. The bytes are exactly
    /// `serde_json::to_vec(records)`.
    pub fn encode(records: &[Record]) -> Result<Self, ProviderError> {
        Self::encode_each(
            records
                .iter()
                .map(|record| (record.id.as_str(), &record.data)),
        )
    }

    /// Encodes records given as an id and data of any serialisable type, noting where each one
    /// is: typed records become a batch without a detour through [`serde_json::Value`], which
    /// would cost building a map per record and a second encoding.
    ///
    /// The data is written as `serde_json` writes `T`: fields in declaration order. The host
    /// hashes that text to tell changed records from unchanged ones, so a type whose fields
    /// are declared in the sorted order of their keys gives the same text, and hash, as its
    /// `Value` (which sorts keys) — the same as [`EncodedRecords::encode`] of its `Record`.
    pub fn encode_each<'a, T: serde::Serialize + ?Sized + 'a>(
        records: impl IntoIterator<Item = (&'a str, &'a T)>,
    ) -> Result<Self, ProviderError> {
        let records = records.into_iter();
        let mut json = Vec::new();
        let mut spans = Vec::with_capacity(records.size_hint().0);
        json.push(b'[');
        for (position, (id, data)) in records.enumerate() {
            if position > 0 {
                json.push(b',');
            }
            json.extend_from_slice(br#"{"id":"#);
            let id = write_json(&mut json, id)?;
            json.extend_from_slice(br#","data":"#);
            let data = write_json(&mut json, data)?;
            json.push(b'}');
            spans.push(RecordSpan { id, data });
        }
        json.push(b']');
        Ok(EncodedRecords::with_spans(json, spans))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.json
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.json
    }

    /// The records, decoded.
    pub fn decode(&self) -> Result<Vec<Record>, ProviderError> {
        serde_json::from_slice(&self.json).map_err(|e| Self::invalid(&e))
    }

    /// Where each record is: as the encoder said, or found by parsing the bytes once.
    pub fn spans(&self) -> Result<Cow<'_, [RecordSpan]>, ProviderError> {
        if let Some(spans) = &self.spans {
            return Ok(Cow::Borrowed(spans));
        }
        let located: Vec<Located<'_>> =
            serde_json::from_slice(&self.json).map_err(|e| Self::invalid(&e))?;
        let at = |raw: &RawValue| {
            // Both borrow from `self.json`: the offset is where the value starts in it.
            let start = raw.get().as_ptr() as usize - self.json.as_ptr() as usize;
            start..start + raw.get().len()
        };
        Ok(Cow::Owned(
            located
                .iter()
                .map(|record| RecordSpan {
                    id: at(record.id),
                    data: at(record.data),
                })
                .collect(),
        ))
    }

    /// The records without copying or decoding their data: each `data` is its JSON text as it
    /// is in the batch, and an `id` without escapes borrows from it too.
    pub fn raw(&self) -> Result<Vec<RawRecord<'_>>, ProviderError> {
        self.spans()?
            .iter()
            .enumerate()
            .map(|(position, span)| self.record(position, span))
            .collect()
    }

    fn record(&self, position: usize, span: &RecordSpan) -> Result<RawRecord<'_>, ProviderError> {
        let text = |range: &Range<usize>, what: &str| {
            self.json
                .get(range.clone())
                .and_then(|bytes| std::str::from_utf8(bytes).ok())
                .ok_or_else(|| {
                    Self::bad_span(
                        position,
                        &format!(
                            "its {what} at bytes {range:?} is not UTF-8 text within the batch's {} bytes",
                            self.json.len()
                        ),
                    )
                })
        };
        let literal = text(&span.id, "id")?;
        let id = match literal
            .strip_prefix('"')
            .and_then(|quoted| quoted.strip_suffix('"'))
        {
            Some(plain) if !plain.contains(['"', '\\']) => Cow::Borrowed(plain),
            _ => Cow::Owned(serde_json::from_str(literal).map_err(|e| {
                Self::bad_span(position, &format!("its id is not a JSON string: {e}"))
            })?),
        };
        Ok(RawRecord {
            id,
            data: text(&span.data, "data")?,
        })
    }

    fn invalid(error: &serde_json::Error) -> ProviderError {
        ProviderError::decode(format!(
            "records are not the JSON of [{{\"id\": …, \"data\": …}}, …]: {error}"
        ))
    }

    fn bad_span(position: usize, problem: &str) -> ProviderError {
        ProviderError::decode(format!("record {position} of the batch: {problem}"))
    }
}

/// Writes a value's JSON and returns where it is.
fn write_json<T: serde::Serialize + ?Sized>(
    json: &mut Vec<u8>,
    value: &T,
) -> Result<Range<usize>, ProviderError> {
    let start = json.len();
    serde_json::to_writer(&mut *json, value)
        .map_err(|e| ProviderError::internal(format!("records could not be encoded: {e}")))?;
    Ok(start..json.len())
}

/// A record found by parsing: both parts as the JSON text they are in the batch.
#[derive(Deserialize)]
struct Located<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// One record of an [`EncodedRecords`] batch, borrowed from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// The provider's id, byte for byte.
    pub id: Cow<'a, str>,
    /// The record's payload as JSON text, exactly as it was encoded.
    pub data: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::ErrorKind;

    fn records() -> Vec<Record> {
        vec![
            Record::new("plain", json!({"n": 1.5, "list": [1, 2]})),
            Record::new("esc\"aped ü", Value::Null),
        ]
    }

    #[test]
    fn encoded_records_decode_to_the_records_and_borrow_their_data() {
        let records = records();
        let encoded = EncodedRecords::encode(&records).unwrap();
        assert_eq!(encoded.decode().unwrap(), records);

        let raw = encoded.raw().unwrap();
        let ids: Vec<&str> = raw.iter().map(|r| r.id.as_ref()).collect();
        assert_eq!(ids, ["plain", "esc\"aped ü"]);
        assert!(matches!(raw[0].id, Cow::Borrowed(_)), "no escapes: no copy");
        assert_eq!(raw[0].data, r#"{"list":[1,2],"n":1.5}"#);
        assert_eq!(raw[1].data, "null");
    }

    #[test]
    fn the_encoder_writes_serdes_bytes_and_spans_that_parsing_finds_too() {
        let records = records();
        let encoded = EncodedRecords::encode(&records).unwrap();
        assert_eq!(encoded.as_bytes(), serde_json::to_vec(&records).unwrap());

        let parsed = EncodedRecords::new(encoded.as_bytes().to_vec());
        assert_eq!(parsed.spans().unwrap(), encoded.spans().unwrap());
        assert_eq!(parsed.raw().unwrap(), encoded.raw().unwrap());
        assert_eq!(
            EncodedRecords::encode(&[]).unwrap().as_bytes(),
            b"[]".as_slice()
        );
    }

    #[test]
    fn typed_records_encode_as_their_records_do() {
        #[derive(serde::Serialize)]
        struct Sorted {
            a: Option<u8>,
            b: &'static str,
        }
        let typed = [("x", Sorted { a: None, b: "é\"" })];
        let records: Vec<Record> = typed
            .iter()
            .map(|(id, data)| Record::new(*id, serde_json::to_value(data).unwrap()))
            .collect();
        let encoded = EncodedRecords::encode_each(typed.iter().map(|(id, data)| (*id, data)));
        assert_eq!(encoded.unwrap(), EncodedRecords::encode(&records).unwrap());
    }

    #[test]
    fn data_is_kept_as_written() {
        let encoded =
            EncodedRecords::new(br#"[{"data": {"b": 1,  "a": 2.50}, "id": "x"}]"#.to_vec());
        assert_eq!(encoded.raw().unwrap()[0].data, r#"{"b": 1,  "a": 2.50}"#);
    }

    #[test]
    fn bad_bytes_are_a_decode_error() {
        let encoded = EncodedRecords::new(br#"[{"id": 7}]"#.to_vec());
        let error = encoded.raw().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Decode);
        assert!(
            error.message.contains("records are not the JSON"),
            "{error}"
        );
        assert_eq!(encoded.decode().unwrap_err().kind, ErrorKind::Decode);
    }

    #[test]
    fn spans_that_do_not_fit_the_bytes_are_errors_naming_the_record() {
        let json = br#"[{"id":"a","data":1},{"id":7,"data":2}]"#.to_vec();
        let good = EncodedRecords::new(json.clone())
            .spans()
            .unwrap()
            .into_owned();
        let refused = |spans: Vec<RecordSpan>| {
            let error = EncodedRecords::with_spans(json.clone(), spans)
                .raw()
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::Decode);
            error.message
        };

        let past_the_end = vec![RecordSpan {
            id: good[0].id.clone(),
            data: 30..90,
        }];
        assert_eq!(
            refused(past_the_end),
            "record 0 of the batch: its data at bytes 30..90 is not UTF-8 text within the batch's 39 bytes"
        );
        // The second record's id is a number, which the parse would have refused.
        let message = refused(good);
        assert!(
            message.starts_with("record 1 of the batch: its id is not a JSON string"),
            "{message}"
        );
    }
}
