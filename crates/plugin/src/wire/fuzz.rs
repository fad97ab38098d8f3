//! Fuzz target `plugin_batch`: a batch of records as a plugin hands it to the host — the JSON
//! bytes and the spans that say where each record is in them.
//!
//! A plugin's spans are trusted to frame JSON as the encoder wrote it, but not to be in range:
//! spans that lie about their offsets (past the end, reversed, off a character boundary, around
//! something that is not a string id) are refused with an error naming the record, and nothing
//! is ever read outside the bytes. Honest spans read back the records that were encoded, and
//! a batch without spans reads as the records it decodes to.

use plugboard_core::{EncodedRecords, ErrorKind, RecordSpan};
use plugboard_fuzz::proptest;
use plugboard_fuzz::proptest::prelude::*;
use plugboard_fuzz::proptest::sample::Index;
use plugboard_fuzz::{Target, inputs};
use serde_json::Value;

use super::{SPAN_BYTES, decode_spans, encode_spans};

const KEYS: &[&str] = &["id", "displayName", "emails", "address", "é", "\"", "\\"];

#[test]
fn fuzz_plugin_batch() {
    Target::new(env!("CARGO_MANIFEST_DIR"), "plugin_batch")
        .run(batches(), |(json, spans): &(Vec<u8>, Vec<u8>)| {
            check(json, spans)
        });
}

/// Honest batches, batches whose spans lie, batches with their bytes or spans torn, and bytes.
fn batches() -> BoxedStrategy<(Vec<u8>, Vec<u8>)> {
    let id = prop_oneof![
        any::<String>(),
        Just("esc\"aped ü\\".to_owned()),
        Just(String::new())
    ];
    let honest = proptest::collection::vec((id, inputs::json(KEYS)), 0..6).prop_map(|records| {
        let batch = EncodedRecords::encode_each(records.iter().map(|(id, v)| (id.as_str(), v)))
            .expect("values encode");
        let spans = encode_spans(&batch.spans().expect("an encoded batch has spans"));
        (batch.into_bytes(), spans)
    });
    let lying = (
        honest.clone(),
        proptest::collection::vec((any::<Index>(), lie()), 1..4),
    )
        .prop_map(|((json, mut spans), lies)| {
            for (at, lie) in lies {
                if spans.is_empty() {
                    break;
                }
                let at = at.index(spans.len() / 8) * 8;
                let offset = u64::from_le_bytes(spans[at..at + 8].try_into().expect("8 bytes"));
                let told = lie.tell(offset, json.len() as u64);
                spans[at..at + 8].copy_from_slice(&told.to_le_bytes());
            }
            (json, spans)
        });
    let torn = honest.clone().prop_flat_map(|(json, spans)| {
        (
            inputs::mutate(Just(json), KEYS),
            inputs::mutate(Just(spans), &[]),
        )
    });
    prop_oneof![
        1 => honest,
        3 => lying,
        2 => torn,
        1 => (inputs::bytes(128), inputs::bytes(4 * SPAN_BYTES)),
    ]
    .boxed()
}

/// What a lying span says instead of an offset.
#[derive(Debug, Clone)]
enum Lie {
    Zero,
    End,
    PastEnd,
    Max,
    Shift(i8),
    Any(u64),
}

fn lie() -> impl Strategy<Value = Lie> {
    prop_oneof![
        Just(Lie::Zero),
        Just(Lie::End),
        Just(Lie::PastEnd),
        Just(Lie::Max),
        any::<i8>().prop_map(Lie::Shift),
        any::<u64>().prop_map(Lie::Any),
    ]
}

impl Lie {
    fn tell(&self, offset: u64, len: u64) -> u64 {
        match self {
            Lie::Zero => 0,
            Lie::End => len,
            Lie::PastEnd => len + 1,
            Lie::Max => u64::MAX,
            Lie::Shift(by) => offset.wrapping_add_signed(i64::from(*by)),
            Lie::Any(any) => *any,
        }
    }
}

fn check(json: &[u8], span_bytes: &[u8]) -> Result<(), String> {
    parsed(json)?;
    let spans = match decode_spans(span_bytes) {
        Ok(spans) => spans,
        Err(error)
            if error
                .message
                .starts_with("plugin boundary: the records' spans") =>
        {
            return Ok(());
        }
        Err(error) => return Err(format!("an unclear refusal of the spans: {error}")),
    };
    let batch = EncodedRecords::with_spans(json.to_vec(), spans.clone());
    let records = match batch.raw() {
        Ok(records) => records,
        Err(error)
            if error.kind == ErrorKind::Decode
                && error.message.starts_with("record ")
                && error.message.contains(" of the batch: ") =>
        {
            return Ok(());
        }
        Err(error) => return Err(format!("an unclear refusal of the batch: {error:?}")),
    };
    if records.len() != spans.len() {
        return Err(format!(
            "{} spans read as {} records",
            spans.len(),
            records.len()
        ));
    }
    let held = batch.as_bytes();
    let bytes = held.as_ptr_range();
    for (record, span) in records.iter().zip(&spans) {
        // The data is the bytes the span frames, borrowed from the batch: nothing outside it.
        let data = record.data.as_bytes();
        if data.as_ptr() != held[span.data.clone()].as_ptr() || data.len() != span.data.len() {
            return Err(format!("{span:?} read {:?}, not its bytes", record.data));
        }
        if let std::borrow::Cow::Borrowed(id) = &record.id
            && !bytes.contains(&id.as_ptr())
            && !id.is_empty()
        {
            return Err(format!("an id borrowed from outside the batch: {span:?}"));
        }
    }
    // Spans as a parse finds them are honest: they read back what was encoded.
    if let Ok(parsed) = EncodedRecords::new(json.to_vec()).spans()
        && *parsed == *spans
    {
        honest(json, &spans, &records)?;
    }
    Ok(())
}

/// A batch without spans (one a plugin built by hand) is parsed to find them: whatever decodes
/// as records reads as the same records without a decode.
fn parsed(json: &[u8]) -> Result<(), String> {
    let batch = EncodedRecords::new(json.to_vec());
    let Ok(decoded) = batch.decode() else {
        return Ok(());
    };
    let records = batch
        .raw()
        .map_err(|e| format!("records that decode are refused unparsed: {e}"))?;
    if records.len() != decoded.len() {
        return Err(format!(
            "{} records decode, {} read",
            decoded.len(),
            records.len()
        ));
    }
    for (raw, record) in records.iter().zip(&decoded) {
        let data: Value = serde_json::from_str(raw.data)
            .map_err(|e| format!("a record's data read unparsed is not JSON: {e}"))?;
        if raw.id != record.id || data != record.data {
            return Err(format!("{raw:?} read unparsed is not {record:?}"));
        }
    }
    Ok(())
}

fn honest(
    json: &[u8],
    spans: &[RecordSpan],
    records: &[plugboard_core::RawRecord<'_>],
) -> Result<(), String> {
    let decoded = EncodedRecords::new(json.to_vec())
        .decode()
        .map_err(|e| format!("honest spans over a batch that does not decode: {e}"))?;
    for (record, raw) in decoded.iter().zip(records) {
        let data: Value = serde_json::from_str(raw.data)
            .map_err(|e| format!("an honest span's data is not JSON: {e}"))?;
        if raw.id != record.id || data != record.data {
            return Err(format!("{raw:?} is not the record {record:?} ({spans:?})"));
        }
    }
    Ok(())
}
