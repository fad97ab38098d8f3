//! Strategies for fuzz inputs: valid inputs mutated the way broken or hostile senders break
//! them (bytes flipped, tokens spliced in, parts cut, repeated or nested deeper), raw bytes, and
//! JSON shaped like what a target reads.
//!
//! Mutations are a list applied in order, so proptest shrinks a failure to the fewest
//! mutations of the simplest seed that still fail.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Number, Value};

/// Tokens that break parsers of text: quotes and escapes, structure, numbers at the edges of
/// their types, separators of URL queries, line breaks, control and odd Unicode characters.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\uDFFF",
    "\u{0}",
    "\u{1b}[31m",
    "\u{202e}",
    "é",
    "\u{10ffff}",
    "\u{feff}",
    "{",
    "}",
    "[",
    "]",
    "[[",
    "]]",
    ",",
    ":",
    "=",
    ".",
    "\n",
    "\r\n",
    "\t",
    " ",
    "#",
    "null",
    "true",
    "-0",
    "0",
    "-1",
    "1e999",
    "-1e999",
    "1.5",
    "0.1e-400",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "NaN",
    "inf",
    "%",
    "%00",
    "%0A",
    "%ff",
    "%zz",
    "&",
    "+",
    "?",
    "/",
    "~",
    "~0",
    "~1",
    "${",
    "}}",
    "\"\"\"",
    "'''",
    "0x",
    "1979-05-27T07:32:00Z",
    "9999-12-31",
    "",
];

/// Any bytes, up to `max_len` of them.
pub fn bytes(max_len: usize) -> BoxedStrategy<Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max_len).boxed()
}

/// One of `seeds`, mutated by up to a few of [`mutate`]'s mutations; `dictionary` adds the
/// target's own tokens (its keys, say) to the general ones.
pub fn mutated<S: AsRef<[u8]>>(seeds: &[S], dictionary: &[&str]) -> BoxedStrategy<Vec<u8>> {
    assert!(!seeds.is_empty(), "a mutated input needs at least one seed");
    let seeds: Vec<Vec<u8>> = seeds.iter().map(|s| s.as_ref().to_vec()).collect();
    mutate(select(seeds), dictionary)
}

/// Mostly mutated seeds, sometimes raw bytes: the mix a target normally wants.
pub fn mixed<S: AsRef<[u8]>>(seeds: &[S], dictionary: &[&str]) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![4 => mutated(seeds, dictionary), 1 => bytes(512)].boxed()
}

/// What `inputs` generates, mutated by up to five mutations (none, sometimes: the input as
/// generated is a case too).
pub fn mutate(
    inputs: impl Strategy<Value = Vec<u8>> + 'static,
    dictionary: &[&str],
) -> BoxedStrategy<Vec<u8>> {
    let tokens: Arc<Vec<Vec<u8>>> = Arc::new(
        TOKENS
            .iter()
            .chain(dictionary)
            .map(|t| t.as_bytes().to_vec())
            .collect(),
    );
    (inputs, proptest::collection::vec(mutation(), 0..=5))
        .prop_map(move |(mut input, mutations)| {
            for mutation in mutations {
                mutation.apply(&mut input, &tokens);
            }
            input
        })
        .boxed()
}

/// Text from bytes, invalid UTF-8 replaced: for targets that read `&str`.
pub fn text(bytes: impl Strategy<Value = Vec<u8>> + 'static) -> BoxedStrategy<String> {
    bytes
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
        .boxed()
}

/// JSON values of any shape a few levels deep, their object keys mostly taken from `keys`
/// (the members a target reads), their strings sometimes too, so that generated values hit
/// the paths a reader takes rather than only its "unknown member" branch.
pub fn json(keys: &[&str]) -> BoxedStrategy<Value> {
    let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    let key = if keys.is_empty() {
        any::<String>().boxed()
    } else {
        prop_oneof![3 => select(keys.clone()), 1 => any::<String>()].boxed()
    };
    let string = prop_oneof![
        2 => any::<String>(),
        1 => select(TOKENS).prop_map(str::to_owned),
        1 => select(if keys.is_empty() { vec![String::new()] } else { keys }),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| Number::from_f64(f).map_or(Value::Null, Value::Number)),
        string.prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|members| Value::Object(members.into_iter().collect::<Map<_, _>>())),
        ]
    })
    .boxed()
}

/// One change to an input. Positions are [`Index`]es, scaled to the input's length when
/// applied, so every mutation applies to any input.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: Index,
        bit: u8,
    },
    Set {
        at: Index,
        byte: u8,
    },
    Insert {
        at: Index,
        token: Index,
    },
    Delete {
        at: Index,
        len: u8,
    },
    /// A part repeated in place: deep nesting, long runs, duplicate keys.
    Repeat {
        at: Index,
        len: u8,
        times: u8,
    },
    Truncate {
        at: Index,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => (any::<Index>(), 0..8u8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        3 => (any::<Index>(), any::<Index>())
            .prop_map(|(at, token)| Mutation::Insert { at, token }),
        1 => (any::<Index>(), 1..32u8).prop_map(|(at, len)| Mutation::Delete { at, len }),
        1 => (any::<Index>(), 1..16u8, 1..200u8)
            .prop_map(|(at, len, times)| Mutation::Repeat { at, len, times }),
        1 => any::<Index>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

impl Mutation {
    fn apply(self, input: &mut Vec<u8>, tokens: &[Vec<u8>]) {
        // A position in the input, its end included.
        let at = |index: &Index, input: &Vec<u8>| index.index(input.len() + 1);
        match self {
            Mutation::Flip { at: i, bit } if !input.is_empty() => {
                let i = i.index(input.len());
                input[i] ^= 1 << bit;
            }
            Mutation::Set { at: i, byte } if !input.is_empty() => {
                let i = i.index(input.len());
                input[i] = byte;
            }
            Mutation::Insert { at: i, token } => {
                let i = at(&i, input);
                let token = &tokens[token.index(tokens.len())];
                input.splice(i..i, token.iter().copied());
            }
            Mutation::Delete { at: i, len } => {
                let i = at(&i, input);
                let end = (i + usize::from(len)).min(input.len());
                input.drain(i..end);
            }
            Mutation::Repeat { at: i, len, times } => {
                let i = at(&i, input);
                let end = (i + usize::from(len)).min(input.len());
                let part = input[i..end].to_vec();
                let repeated = part.repeat(usize::from(times));
                input.splice(end..end, repeated);
            }
            Mutation::Truncate { at: i } => {
                let i = at(&i, input);
                input.truncate(i);
            }
            Mutation::Flip { .. } | Mutation::Set { .. } => {}
        }
    }
}
