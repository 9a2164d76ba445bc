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
            .deserialize_option(ObjectVisitor::<T>(PhantomData))
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
    deserializer.deserialize_option(ObjectVisitor::<T>(PhantomData))
}

/// `null` is `None`; anything else is asked for as a map (`deserialize_map`), so that a
/// deserializer refuses every other type itself, with the same message `deserialize_any` and
/// this visitor's `expecting` would give ("invalid type: sequence, expected a JSON object"),
/// without an instance of its whole any-value dispatch for each `T`.
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

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
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

    /// The helpers as they were first written (the any-value dispatch for each `T`), kept as
    /// the reference for the messages and outcomes of the ones above.
    mod reference {
        use super::*;

        pub struct Object<T>(pub T);

        impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer
                    .deserialize_any(AnyVisitor::<T>(PhantomData))
                    .and_then(|value| {
                        value.ok_or_else(|| de::Error::custom("expected an object, found null"))
                    })
                    .map(Object)
            }
        }

        pub fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
        where
            D: Deserializer<'de>,
            T: Deserialize<'de>,
        {
            deserializer.deserialize_any(AnyVisitor::<T>(PhantomData))
        }

        struct AnyVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for AnyVisitor<T> {
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
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct OuterRef {
        #[serde(default, deserialize_with = "reference::optional_object")]
        inner: Option<Inner>,
    }

    /// Same outcome and, for every refusal, the same message as the reference, from bytes and
    /// from a `serde_json::Value`, for valid bodies, every JSON type where an object is
    /// expected, and truncated or malformed input. The one difference: where an array stands
    /// for an object, serde_json now reports the position of its `[` (it used to report the
    /// position after the array's first element, one or two characters further).
    #[test]
    fn same_outcomes_and_messages_as_the_any_value_dispatch() {
        let values = [
            "{}",
            "null",
            "true",
            "false",
            "0",
            "-1",
            "18446744073709551615",
            "1.5",
            "-2e-7",
            "\"x\"",
            "\"\\u00e9\\n\"",
            "[]",
            "[1]",
            "[null]",
            "[{}]",
            "{\"a\":1}",
            "{\"a\":null}",
            "{\"a\":\"1\"}",
            "{\"a\":1.5}",
            "{\"a\":[1]}",
            "{\"b\":{}}",
            "{\"a\":1,\"a\":2}",
        ];
        let mut bodies: Vec<String> = Vec::new();
        for v in values {
            bodies.push(v.to_owned());
            bodies.push(format!("{{\"inner\":{v}}}"));
            bodies.push(format!(" \n{{ \"x\": 1, \"inner\" :\n {v} }}"));
        }
        bodies.extend(
            [
                "",
                " ",
                "n",
                "nul",
                "nope",
                "{",
                "{\"inner\":",
                "{\"inner\":n",
                "{\"inner\":{",
                "{\"inner\":{\"a\":",
                "{\"inner\":tru}",
                "[",
                "{\"inner\":[}",
                "\"",
                "{}x",
            ]
            .map(String::from),
        );
        type Outcome = Result<Option<Inner>, serde_json::Error>;
        let same = |new: Outcome, old: Outcome, body: &str| match (new, old) {
            (Ok(new), Ok(old)) => assert_eq!(new, old, "{body}"),
            (Err(new), Err(old)) => {
                assert_eq!(new.classify(), old.classify(), "{body}");
                let text = |e: &serde_json::Error| {
                    let full = e.to_string();
                    let position = format!(" at line {} column {}", e.line(), e.column());
                    full.strip_suffix(&position).unwrap_or(&full).to_owned()
                };
                assert_eq!(text(&new), text(&old), "{body}");
                assert_eq!(new.line(), old.line(), "{body}");
                if text(&new).starts_with("invalid type: sequence") {
                    assert!(
                        new.column() <= old.column() && old.column() - new.column() <= 2,
                        "{body}: {new} / {old}"
                    );
                } else {
                    assert_eq!(new.column(), old.column(), "{body}");
                }
            }
            (new, old) => panic!("{body}: {new:?} / {old:?}"),
        };
        for body in &bodies {
            same(
                serde_json::from_str::<Object<Outer>>(body).map(|o| o.0.inner),
                serde_json::from_str::<reference::Object<OuterRef>>(body).map(|o| o.0.inner),
                body,
            );
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(body) {
                same(
                    Object::<Outer>::deserialize(&value).map(|o| o.0.inner),
                    reference::Object::<OuterRef>::deserialize(&value).map(|o| o.0.inner),
                    body,
                );
            }
        }
        assert!(bodies.len() > 70);
    }
}
