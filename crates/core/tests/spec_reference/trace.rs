//! The tables and keys a type accepts, as serde sees them.
//!
//! A deserializer that records instead of reading: serde hands `deserialize_struct` the names
//! of a struct's fields and `deserialize_enum` the names of an enum's variants, and the
//! recorder then walks into each field as if it had a value. The spec's tagged tables
//! (`[auth]` by `mode`, pagination presets by `type`) are the exception: serde buffers their
//! content before it knows which variant to build, and the buffer, not the recorder, reads
//! it. So they are explored with probes, each a run with small content fed at that spot, and
//! serde's errors name what it wants: a missing field names the tag, an unknown variant lists
//! the variants, an unknown field (the tables refuse unknown keys) lists a variant's keys.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::de::value::{MapDeserializer, SeqDeserializer, StrDeserializer};
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Visitor,
};

/// A key no type declares, so that serde lists the ones it expects.
const PROBE: &str = "\u{0}probe";
/// A map's entry, as the page writes a name the spec author chooses: `[models.<name>]`.
pub const NAME: &str = "<name>";
/// What a string field reads. It is a valid duration too, for `frequency`.
const STRING: &str = "1h";

/// A table as a spec writes its header, and the variant its tag picks, if any.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableId {
    /// `[api.retry]`, `[[syncs]]`, `[models.<name>]`; empty for the top level.
    pub header: String,
    /// `mode = "oauth2"`.
    pub variant: Option<String>,
}

impl TableId {
    pub fn new(header: &str, variant: Option<&str>) -> Self {
        TableId {
            header: header.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&*self.header, &self.variant) {
            ("", _) => f.write_str("the top level (\"Top-level keys\")"),
            (header, None) => write!(f, "`{header}`"),
            (header, Some(variant)) => write!(f, "`{header}` with `{variant}`"),
        }
    }
}

#[derive(Debug, Default)]
pub struct Schema {
    /// Each table's keys, with the values a key is limited to (none when it takes any).
    pub tables: BTreeMap<TableId, BTreeMap<&'static str, Vec<&'static str>>>,
    /// The keys that pick a table's variant: `mode`, `type`.
    pub tags: BTreeSet<&'static str>,
}

/// The tables and keys `T` accepts.
pub fn schema<T: DeserializeOwned>() -> Schema {
    let tracer = Tracer {
        run: run::<T>,
        schema: RefCell::default(),
        explored: RefCell::default(),
        probe: RefCell::default(),
        outcome: RefCell::default(),
    };
    loop {
        match (tracer.run)(Recorder::root(&tracer)) {
            Ok(()) => return tracer.schema.into_inner(),
            Err(Error::Buffered(at)) => tracer.explore(&at),
            Err(other) => panic!("tracing the spec's types failed: {other}"),
        }
    }
}

fn run<T: DeserializeOwned>(recorder: Recorder<'_>) -> Result<(), Error> {
    T::deserialize(recorder).map(drop)
}

struct Tracer {
    run: fn(Recorder<'_>) -> Result<(), Error>,
    schema: RefCell<Schema>,
    /// For each explored tagged table (by path), content it reads without error.
    explored: RefCell<BTreeMap<String, Value>>,
    /// The content the current probe feeds at a path.
    probe: RefCell<Option<(String, Value)>>,
    /// How the type at the probed path took its content.
    outcome: RefCell<Option<Result<(), Error>>>,
}

/// A table's content: its keys and values.
type Entries = Vec<(&'static str, Value)>;

/// Runs a probe with the given content for the table being explored.
type Probe<'a> = &'a dyn Fn(Entries) -> Result<(), Error>;

impl Tracer {
    fn add_table(&self, table: &TableId, keys: &[&'static str]) {
        let mut schema = self.schema.borrow_mut();
        let known = schema.tables.entry(table.clone()).or_default();
        for key in keys {
            known.entry(key).or_default();
        }
    }

    fn add_values(&self, table: &TableId, key: &'static str, values: &[&'static str]) {
        let mut schema = self.schema.borrow_mut();
        let known = schema.tables.entry(table.clone()).or_default();
        let known = known.entry(key).or_default();
        for value in values {
            if !known.contains(value) {
                known.push(value);
            }
        }
    }

    /// The content the current probe feeds at `at`, if it is probed.
    fn probed_here(&self, at: &Position) -> Option<Value> {
        let probe = self.probe.borrow();
        let (path, content) = probe.as_ref()?;
        (*path == at.path).then(|| content.clone())
    }

    /// Deserializes the value at `child.at`, and when it is the probed one, keeps how it
    /// went in [`Tracer::outcome`] and ends the run. (The tagged table reads its buffered
    /// content after `deserialize_any` returns, so this is where its answer arrives.)
    fn child<'de, T: DeserializeSeed<'de>>(
        seed: T,
        child: Recorder<'_>,
    ) -> Result<T::Value, Error> {
        let tracer = child.tracer;
        let probed = tracer.probed_here(&child.at).is_some();
        let result = seed.deserialize(child);
        if !probed || matches!(result, Err(Error::Probed)) {
            return result;
        }
        *tracer.outcome.borrow_mut() = Some(result.map(drop));
        Err(Error::Probed)
    }

    /// How the type at `at` takes `content`: a run that feeds it there.
    fn probe(&self, at: &Position, content: Value) -> Result<(), Error> {
        *self.probe.borrow_mut() = Some((at.path.clone(), content));
        let run = (self.run)(Recorder::root(self));
        *self.probe.borrow_mut() = None;
        match run {
            Err(Error::Probed) => self.outcome.borrow_mut().take().expect("probed"),
            other => panic!("the probe at `{}` was never reached: {other:?}", at.path),
        }
    }

    /// A tagged table: its tag, its variants, each variant's keys and what is in them.
    fn explore(&self, at: &Position) {
        let table = at.table();
        let probe = |content| self.probe(at, content);
        let tag = match probe(Value::Map(Vec::new())) {
            Err(Error::MissingField(tag)) => tag,
            other => panic!(
                "{table}: serde reads it from buffered content, and only tables tagged with \
                 #[serde(tag = \"…\")] are traced ({other:?})"
            ),
        };
        let variants = match probe(Value::Map(vec![(tag, Value::Str(PROBE))])) {
            Err(Error::UnknownVariant(variants)) => variants,
            other => panic!("{table}: `{tag}` named no variants ({other:?})"),
        };
        self.schema.borrow_mut().tags.insert(tag);
        self.add_values(&table, tag, variants);
        let mut valid = None;
        for &variant in variants {
            let tagged = |mut entries: Entries| {
                entries.insert(0, (tag, Value::Str(variant)));
                probe(Value::Map(entries))
            };
            let id = TableId {
                variant: Some(format!("{tag} = \"{variant}\"")),
                ..table.clone()
            };
            self.explore_table(&id, at, &tagged);
            if valid.is_none() {
                valid = valid_entries(&tagged).map(|mut entries| {
                    entries.insert(0, (tag, Value::Str(variant)));
                    Value::Map(entries)
                });
            }
        }
        let valid = valid
            .unwrap_or_else(|| panic!("{table}: no variant reads any content the tracer tries"));
        self.explored.borrow_mut().insert(at.path.clone(), valid);
    }

    /// The keys of a table inside a tagged table, and the tables and values in them.
    fn explore_table(&self, table: &TableId, at: &Position, probe: Probe<'_>) {
        let unknown_key = || vec![(PROBE, Value::Int(0))];
        let keys = match probe(unknown_key()) {
            Err(Error::UnknownField(keys)) => keys,
            other => panic!(
                "{table} takes unknown keys silently ({other:?}). Inside a tagged table \
                 `#[serde(deny_unknown_fields)]` is what reports them, as serde_ignored \
                 cannot see there"
            ),
        };
        self.add_table(table, keys);
        for &key in keys {
            let with = |value: Value| probe(vec![(key, value)]);
            let is_table = |value: Value| matches!(with(value), Err(Error::UnknownField(_)));
            let child = at.child(key);
            if is_table(Value::Map(unknown_key())) {
                self.explore_table(&child.table(), &child, &|entries: Entries| {
                    with(Value::Map(entries))
                });
            } else if is_table(Value::Seq(vec![Value::Map(unknown_key())])) {
                let child = Position {
                    element: true,
                    ..child
                };
                self.explore_table(&child.table(), &child, &|entries: Entries| {
                    with(Value::Seq(vec![Value::Map(entries)]))
                });
            } else if is_table(Value::Map(vec![(NAME, Value::Map(unknown_key()))])) {
                let child = child.child(NAME);
                self.explore_table(&child.table(), &child, &|entries: Entries| {
                    with(Value::Map(vec![(NAME, Value::Map(entries))]))
                });
            } else if let Err(Error::UnknownVariant(values)) = with(Value::Str(PROBE)) {
                self.add_values(table, key, values);
            }
        }
    }
}

/// Entries a table reads without error: each required key it asks for, with the first of
/// a few values that it takes.
fn valid_entries(probe: Probe<'_>) -> Option<Entries> {
    let mut entries = Vec::new();
    loop {
        let missing = match probe(entries.clone()) {
            Ok(()) => return Some(entries),
            Err(Error::MissingField(key)) => key,
            Err(_) => return None,
        };
        let candidates = [
            Value::Str(STRING),
            Value::Int(1),
            Value::Seq(Vec::new()),
            Value::Map(Vec::new()),
        ];
        let fits = |value: &Value| {
            let mut with = entries.clone();
            with.push((missing, value.clone()));
            match probe(with) {
                Ok(()) => true,
                Err(Error::MissingField(key)) => key != missing,
                Err(_) => false,
            }
        };
        let value = candidates.into_iter().find(fits)?;
        entries.push((missing, value));
    }
}

/// Where a value is: its dotted path, and whether it is an element of an array.
#[derive(Debug, Clone)]
struct Position {
    path: String,
    element: bool,
}

impl Position {
    fn child(&self, key: &str) -> Position {
        let path = match self.path.as_str() {
            "" => key.to_owned(),
            parent => format!("{parent}.{key}"),
        };
        Position {
            path,
            element: false,
        }
    }

    /// The table a struct here is: `[path]`, or `[[path]]` in an array.
    fn table(&self) -> TableId {
        let header = match (self.path.as_str(), self.element) {
            ("", _) => String::new(),
            (path, false) => format!("[{path}]"),
            (path, true) => format!("[[{path}]]"),
        };
        TableId::new(&header, None)
    }
}

#[derive(Debug)]
enum Error {
    /// A tagged table, which serde reads from buffered content, was reached where no
    /// probe has explored it yet.
    Buffered(Position),
    /// The probed value was read; how it went is in [`Tracer::outcome`].
    Probed,
    /// Serde's answer to [`PROBE`]: the keys it expects.
    UnknownField(&'static [&'static str]),
    /// Serde's answer to [`PROBE`] as a variant: the variants it expects.
    UnknownVariant(&'static [&'static str]),
    MissingField(&'static str),
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Other(message) => f.write_str(message),
            other => write!(f, "{other:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Other(msg.to_string())
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        match field {
            PROBE => Error::UnknownField(expected),
            _ => Error::Other(format!("unknown field `{field}`")),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        match variant {
            PROBE => Error::UnknownVariant(expected),
            _ => Error::Other(format!("unknown variant `{variant}`")),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Error::MissingField(field)
    }
}

/// The recording deserializer: it stands for a value at `at`, and records the tables it
/// is asked for.
struct Recorder<'t> {
    tracer: &'t Tracer,
    at: Position,
    /// The table and key this value is under, for the values of an enum.
    key: Option<(TableId, &'static str)>,
}

impl<'t> Recorder<'t> {
    fn root(tracer: &'t Tracer) -> Self {
        Recorder {
            tracer,
            at: Position {
                path: String::new(),
                element: false,
            },
            key: None,
        }
    }
}

macro_rules! leaf {
    ($($method:ident => $visit:ident($($value:expr)?);)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit($($value)?)
        }
    )*};
}

impl<'de> Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    /// Only buffered content is read this way in the spec: a tagged table.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let content = match self.tracer.probed_here(&self.at) {
            Some(probe) => Some(probe),
            None => self.tracer.explored.borrow().get(&self.at.path).cloned(),
        };
        match content {
            Some(content) => content.deserialize_any(visitor),
            None => Err(Error::Buffered(self.at)),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let table = self.at.table();
        self.tracer.add_table(&table, fields);
        visitor.visit_map(Fields {
            tracer: self.tracer,
            at: self.at,
            table,
            fields: fields.iter(),
            current: "",
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        if let Some((table, key)) = &self.key {
            self.tracer.add_values(table, key, variants);
        }
        visitor.visit_enum(StrDeserializer::<Error>::new(variants[0]))
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let element = Recorder {
            at: Position {
                element: true,
                ..self.at
            },
            ..self
        };
        visitor.visit_seq(Once(Some(element)))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        let value = Recorder {
            at: self.at.child(NAME),
            ..self
        };
        visitor.visit_map(Entry(Some(value)))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, _: V) -> Result<V::Value, Error> {
        Err(Error::Other(format!(
            "`{}`: tuples are not traced",
            self.at.path
        )))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_tuple(len, visitor)
    }

    leaf! {
        deserialize_bool => visit_bool(false);
        deserialize_i8 => visit_u64(1);
        deserialize_i16 => visit_u64(1);
        deserialize_i32 => visit_u64(1);
        deserialize_i64 => visit_u64(1);
        deserialize_u8 => visit_u64(1);
        deserialize_u16 => visit_u64(1);
        deserialize_u32 => visit_u64(1);
        deserialize_u64 => visit_u64(1);
        deserialize_f32 => visit_f64(1.0);
        deserialize_f64 => visit_f64(1.0);
        deserialize_char => visit_char('x');
        deserialize_str => visit_str(STRING);
        deserialize_string => visit_str(STRING);
        deserialize_identifier => visit_str(STRING);
        deserialize_bytes => visit_bytes(b"");
        deserialize_byte_buf => visit_bytes(b"");
        deserialize_unit => visit_unit();
        deserialize_ignored_any => visit_unit();
    }
}

/// A struct's fields, each as a recorder.
struct Fields<'t> {
    tracer: &'t Tracer,
    at: Position,
    table: TableId,
    fields: std::slice::Iter<'static, &'static str>,
    current: &'static str,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(&field) = self.fields.next() else {
            return Ok(None);
        };
        self.current = field;
        seed.deserialize(StrDeserializer::<Error>::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let value = Recorder {
            tracer: self.tracer,
            at: self.at.child(self.current),
            key: Some((self.table.clone(), self.current)),
        };
        Tracer::child(seed, value)
    }
}

/// An array of one element.
struct Once<'t>(Option<Recorder<'t>>);

impl<'de> SeqAccess<'de> for Once<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0
            .take()
            .map(|element| Tracer::child(seed, element))
            .transpose()
    }
}

/// A map of one entry, named [`NAME`].
struct Entry<'t>(Option<Recorder<'t>>);

impl<'de> MapAccess<'de> for Entry<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        match self.0 {
            Some(_) => seed
                .deserialize(StrDeserializer::<Error>::new(NAME))
                .map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        Tracer::child(seed, self.0.take().expect("a key came first"))
    }
}

/// Content fed to a tagged table, which serde buffers before reading it.
#[derive(Debug, Clone)]
enum Value {
    Str(&'static str),
    Int(u64),
    Seq(Vec<Value>),
    Map(Vec<(&'static str, Value)>),
}

impl<'de> Deserializer<'de> for Value {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self {
            Value::Str(text) => visitor.visit_str(text),
            Value::Int(number) => visitor.visit_u64(number),
            Value::Seq(elements) => visitor.visit_seq(SeqDeserializer::new(elements.into_iter())),
            Value::Map(entries) => visitor.visit_map(MapDeserializer::new(entries.into_iter())),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl IntoDeserializer<'_, Error> for Value {
    type Deserializer = Value;

    fn into_deserializer(self) -> Value {
        self
    }
}
