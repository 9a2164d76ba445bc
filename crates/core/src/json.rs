//! Serde helpers for senders' JSON. serde's derived structs also accept a JSON *array* of the
//! fields in order (`["id","2024-…","push"]`), which no sender means and which would store a
//! document from a body that is not an event; these helpers accept objects only.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// A `T` that was a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(ObjectVisitor::<T>(PhantomData))
            .and_then(|value| {
                value.ok_or_else(|| de::Error::custom("expected an object, found null"))
            })
            .map(Object)
    }
}

/// For `Option<T>` fields: `null` or absent → `None`, an object → `Some`, anything else an
/// error. Use with `#[serde(default, deserialize_with = "crate::json::optional_object")]`.
pub(crate) fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_any(ObjectVisitor::<T>(PhantomData))
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Option<i64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(default, deserialize_with = "optional_object")]
        inner: Option<Inner>,
    }

    #[test]
    fn objects_only() {
        let ok: Object<Outer> = serde_json::from_str(r#"{"inner":{"a":1}}"#).unwrap();
        assert_eq!(ok.0.inner, Some(Inner { a: Some(1) }));
        let none: Object<Outer> = serde_json::from_str(r#"{"inner":null}"#).unwrap();
        assert_eq!(none.0.inner, None);
        let absent: Object<Outer> = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(absent.0.inner, None);
        for bad in [
            r#"[null]"#,
            r#"{"inner":[1]}"#,
            r#"null"#,
            r#"{"inner":1}"#,
            r#"{"inner":"x"}"#,
        ] {
            let err = serde_json::from_str::<Object<Outer>>(bad).unwrap_err();
            assert_eq!(err.classify(), serde_json::error::Category::Data, "{bad}");
        }
    }
}
