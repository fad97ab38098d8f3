//! Lenient reading of Graph's JSON: field types that never fail on valid JSON.
//!
//! Graph may send any property of an entry missing, null or of an unexpected type, and one odd
//! entry must not fail a page of a thousand. Each type here reads the kind of JSON value it
//! expects and takes every other kind as "not known" (its default), skipping objects and arrays
//! without building them. They deserialise straight from a page's text, so reading an entry
//! builds no `serde_json::Value` and allocates no key.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// A string with something in it; missing, null, blank or not a string all read as `None`,
/// because Graph sends empty strings where it has nothing to say.
#[derive(Default)]
pub(crate) struct Text(pub(crate) Option<String>);

/// Any string, even an empty one: an id, which is kept byte for byte.
#[derive(Default)]
pub(crate) struct AnyString(pub(crate) Option<String>);

/// A boolean.
#[derive(Default)]
pub(crate) struct Flag(pub(crate) Option<bool>);

/// Any JSON number, as an `f64`.
#[derive(Default)]
pub(crate) struct Number(pub(crate) Option<f64>);

/// An object read by `M`; `None` when it is not an object or `M` rejects it.
pub(crate) struct Object<M: Members>(pub(crate) Option<M::Output>);

/// An array of objects read by `M`: the elements that are not objects, or that `M` rejects,
/// are dropped. Anything but an array reads as empty.
pub(crate) struct Items<M: Members>(pub(crate) Vec<M::Output>);

/// The members of an object that a type reads, one at a time as they come; written with
/// [`members!`].
pub(crate) trait Members: Default {
    /// The keys the type reads: a `#[serde(field_identifier)]` enum, matched without
    /// allocating, whose `#[serde(other)]` variant stands for every other key.
    type Key: DeserializeOwned;
    /// What the object becomes.
    type Output;

    /// Reads the value of one member with `map.next_value()`, or skips it with
    /// [`skip`]. A later duplicate key overwrites an earlier one: the last wins, as in a
    /// `serde_json::Value`.
    fn member<'de, A: MapAccess<'de>>(
        &mut self,
        key: Self::Key,
        map: &mut A,
    ) -> Result<(), A::Error>;

    /// The object once all its members are read; `None` when it says too little to keep.
    fn finish(self) -> Option<Self::Output>;
}

/// Declares a [`Members`] type as a table: its fields, each with its lenient type and JSON key,
/// the key enum that matches them, what the object becomes, and how (`finish`, given the fields
/// read). Every other key is skipped without building its value.
macro_rules! members {
    (
        $(#[$doc:meta])*
        $name:ident($key:ident) -> $output:ty {
            $($field:ident: $ty:ty = $json:literal),* $(,)?
        }
        finish($fields:ident) $finish:block
    ) => {
        $(#[$doc])*
        #[derive(Default)]
        struct $name {
            $($field: $ty),*
        }

        #[derive(serde::Deserialize)]
        #[serde(field_identifier)]
        #[allow(non_camel_case_types)]
        enum $key {
            $(#[serde(rename = $json)] $field,)*
            #[serde(other)]
            Other,
        }

        impl $crate::lenient::Members for $name {
            type Key = $key;
            type Output = $output;

            fn member<'de, A: serde::de::MapAccess<'de>>(
                &mut self,
                key: $key,
                map: &mut A,
            ) -> Result<(), A::Error> {
                match key {
                    $($key::$field => self.$field = map.next_value()?,)*
                    $key::Other => $crate::lenient::skip(map)?,
                }
                Ok(())
            }

            fn finish(self) -> Option<$output> {
                let $fields = self;
                $finish
            }
        }
    };
}
pub(crate) use members;

/// Skips a member's value without building it.
pub(crate) fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// What a lenient type makes of each kind of JSON value; every kind it does not override reads
/// as its default.
trait Lenient: Default {
    fn string(_value: &str) -> Self {
        Self::default()
    }

    fn boolean(_value: bool) -> Self {
        Self::default()
    }

    fn number(_value: f64) -> Self {
        Self::default()
    }

    fn object<'de, A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(Self::default())
    }

    fn array<'de, A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(Self::default())
    }
}

/// The one visitor of every lenient type: it hands each kind of value to the type's [`Lenient`]
/// method for it.
struct LenientVisitor<T>(PhantomData<T>);

/// Deserialises a lenient type from any JSON value.
fn deserialize_lenient<'de, T: Lenient, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<T, D::Error> {
    deserializer.deserialize_any(LenientVisitor(PhantomData))
}

impl<'de, T: Lenient> Visitor<'de> for LenientVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<T, E> {
        Ok(T::boolean(value))
    }

    // Numbers convert as `serde_json::Value::as_f64` does.
    fn visit_i64<E: de::Error>(self, value: i64) -> Result<T, E> {
        Ok(T::number(value as f64))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<T, E> {
        Ok(T::number(value as f64))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<T, E> {
        Ok(T::number(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<T, E> {
        Ok(T::string(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<T, E> {
        Ok(T::default())
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::object(map)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<T, A::Error> {
        T::array(seq)
    }
}

impl Lenient for Text {
    fn string(value: &str) -> Self {
        Text((!value.trim().is_empty()).then(|| value.to_owned()))
    }
}

impl Lenient for AnyString {
    fn string(value: &str) -> Self {
        AnyString(Some(value.to_owned()))
    }
}

impl Lenient for Flag {
    fn boolean(value: bool) -> Self {
        Flag(Some(value))
    }
}

impl Lenient for Number {
    fn number(value: f64) -> Self {
        Number(Some(value))
    }
}

impl<M: Members> Default for Object<M> {
    fn default() -> Self {
        Object(None)
    }
}

impl<M: Members> Lenient for Object<M> {
    fn object<'de, A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        let mut members = M::default();
        while let Some(key) = map.next_key()? {
            members.member(key, &mut map)?;
        }
        Ok(Object(members.finish()))
    }
}

impl<M: Members> Default for Items<M> {
    fn default() -> Self {
        Items(Vec::new())
    }
}

impl<M: Members> Lenient for Items<M> {
    fn array<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Object::<M>(item)) = seq.next_element()? {
            items.extend(item);
        }
        Ok(Items(items))
    }
}

/// `Deserialize` for lenient types: each reads any JSON value.
macro_rules! deserialize_leniently {
    ($($ty:ident $(<$param:ident>)?),*) => {$(
        impl<'de $(, $param: Members)?> Deserialize<'de> for $ty $(<$param>)? {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserialize_lenient(deserializer)
            }
        }
    )*};
}

deserialize_leniently!(Text, AnyString, Flag, Number, Object<M>, Items<M>);
