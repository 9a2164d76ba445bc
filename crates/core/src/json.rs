//! One reader for the senders' JSON objects, shared by every struct it fills.
//!
//! A struct lists its fields once, with [`json_fields!`]: each JSON name, the field it goes
//! into and what it holds ([`Slot`]). [`read_object`], [`read_object_or_array`] and
//! [`read_value`] then fill it from bytes or from a parsed [`Value`]. The outcome is that of
//! serde's derived `Deserialize` for a struct of `Option` fields that ignores unknown fields
//! (the tests compare the two over every fixture and thousands of variants of them), except:
//! - **objects only:** an array never stands for a struct (a derived struct also accepts its
//!   fields in order, `["id","2024-…","push"]`, which no sender means);
//! - **no float in messages:** a float where a string or integer belongs is reported as
//!   "floating point number", without its value. The component then has no float
//!   formatting at all (about 16 KB of wasm, which only serde's `Unexpected` reached), as long
//!   as nothing else in it deserializes a typed value.
//!
//! Why not derive: a derived deserializer is instantiated for every struct and every
//! deserializer it meets (bytes, `Value`, serde's map adapter). This reader is instantiated
//! once per deserializer and dispatches to the structs through `dyn`; it took 32 KB off the
//! component (389,188 → 357,010 bytes, before the float formatting went). Unknown fields are
//! skipped without recursion or allocation (serde's `IgnoredAny`), and arrays are capped
//! ([`Capped`]), so neither nesting nor length in a body costs stack or memory.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;

/// A struct read from a JSON object: its fields' JSON names, and where each one goes.
/// Implemented by [`json_fields!`]; at most 64 fields.
pub(crate) trait Fields {
    /// The JSON names, in the order [`Fields::slot`] numbers them.
    fn names(&self) -> &'static [&'static str];
    /// Where the field named `names()[index]` goes.
    fn slot(&mut self, index: usize) -> Slot<'_>;
}

/// Where one JSON field goes, and so which JSON types it accepts. `null` leaves every kind
/// absent (`None`, `false`).
pub(crate) enum Slot<'a> {
    /// A string.
    Text(&'a mut Option<String>),
    /// An integer that fits an `i64`.
    Integer(&'a mut Option<i64>),
    /// An object (`Option<T>`, `T` a [`Fields`] struct).
    Object(&'a mut dyn OptionalObject),
    /// An array of objects (`Option<Capped<T, MAX>>`).
    Objects(&'a mut dyn OptionalObjects),
    /// Any JSON value, kept as it is.
    Value(&'a mut Option<Value>),
    /// Any JSON value, skipped: only whether there was one is kept.
    Present(&'a mut bool),
}

/// Implements [`Fields`]: `json_fields!(Type { "jsonName" => field: Kind, ... })`, `Kind` a
/// [`Slot`] variant.
macro_rules! json_fields {
    ($ty:ty { $($name:literal => $field:ident: $kind:ident),+ $(,)? }) => {
        impl $crate::json::Fields for $ty {
            fn names(&self) -> &'static [&'static str] {
                const NAMES: &[&str] = &[$($name),+];
                const _: () = assert!(NAMES.len() <= 64, "at most 64 fields");
                NAMES
            }

            fn slot(&mut self, index: usize) -> $crate::json::Slot<'_> {
                let mut i = 0;
                $(
                    if index == i {
                        return $crate::json::Slot::$kind(&mut self.$field);
                    }
                    i += 1;
                )+
                unreachable!("field {index} of {i}")
            }
        }
    };
}
pub(crate) use json_fields;

/// An `Option<T>` field that an object fills.
pub(crate) trait OptionalObject {
    /// Sets the field to a new `T` and returns it, to be filled.
    fn insert_new(&mut self) -> &mut dyn Fields;
}

impl<T: Fields + Default> OptionalObject for Option<T> {
    fn insert_new(&mut self) -> &mut dyn Fields {
        self.insert(T::default())
    }
}

/// A JSON array of objects of which the first `MAX` are read; the rest are skipped unread
/// (not even type-checked) and only counted, so a huge array costs no memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Capped<T, const MAX: usize> {
    /// The first `MAX` objects.
    pub(crate) items: Vec<T>,
    /// How many elements the array holds.
    pub(crate) total: usize,
}

impl<T, const MAX: usize> Default for Capped<T, MAX> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            total: 0,
        }
    }
}

/// A [`Capped`] array being read.
pub(crate) trait ObjectList {
    /// A new element to read the next object into, or `None` when `MAX` are kept already.
    fn push_new(&mut self) -> Option<&mut dyn Fields>;
    /// Takes back the element [`ObjectList::push_new`] added: the array had no more.
    fn pop(&mut self);
    /// Counts one element, kept or skipped.
    fn count(&mut self);
}

impl<T: Fields + Default, const MAX: usize> ObjectList for Capped<T, MAX> {
    fn push_new(&mut self) -> Option<&mut dyn Fields> {
        if self.items.len() >= MAX {
            return None;
        }
        self.items.push(T::default());
        self.items.last_mut().map(|item| item as &mut dyn Fields)
    }

    fn pop(&mut self) {
        self.items.pop();
    }

    fn count(&mut self) {
        self.total += 1;
    }
}

/// An `Option<Capped<T, MAX>>` field that an array fills.
pub(crate) trait OptionalObjects {
    /// Sets the field to an empty array and returns it, to be filled.
    fn insert_new(&mut self) -> &mut dyn ObjectList;
}

impl<T: Fields + Default, const MAX: usize> OptionalObjects for Option<Capped<T, MAX>> {
    fn insert_new(&mut self) -> &mut dyn ObjectList {
        self.insert(Capped::default())
    }
}

/// Reads a JSON document that must be one object (`null` too is refused).
pub(crate) fn read_object(json: &[u8], fields: &mut dyn Fields) -> Result<(), serde_json::Error> {
    read_document(json, Destination::Object(fields))
}

/// Reads a JSON document that is one object or an array of objects into `list` (a single
/// object is a list of one).
pub(crate) fn read_object_or_array(
    json: &[u8],
    list: &mut dyn ObjectList,
) -> Result<(), serde_json::Error> {
    read_document(json, Destination::ObjectOrArray(list))
}

/// Fills `fields` from a parsed value, which must be an object.
pub(crate) fn read_value(value: &Value, fields: &mut dyn Fields) -> Result<(), serde_json::Error> {
    Destination::Object(fields).deserialize(value)
}

fn read_document(json: &[u8], into: Destination<'_>) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    into.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// What a JSON value is read into: a [`Slot`]'s kinds that a value fills by its type, plus
/// the two shapes a document or array element may have.
enum Destination<'a> {
    Text(&'a mut Option<String>),
    Integer(&'a mut Option<i64>),
    /// An object or `null`.
    OptionalObject(&'a mut dyn OptionalObject),
    /// An array of objects or `null`.
    OptionalObjects(&'a mut dyn OptionalObjects),
    /// An object; `null` is refused.
    Object(&'a mut dyn Fields),
    /// An object (a list of one) or an array of objects.
    ObjectOrArray(&'a mut dyn ObjectList),
}

impl<'de> DeserializeSeed<'de> for Slot<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let into = match self {
            Slot::Value(value) => {
                *value = Option::<Value>::deserialize(deserializer)?;
                return Ok(());
            }
            Slot::Present(present) => {
                *present = Option::<IgnoredAny>::deserialize(deserializer)?.is_some();
                return Ok(());
            }
            Slot::Text(text) => Destination::Text(text),
            Slot::Integer(integer) => Destination::Integer(integer),
            Slot::Object(object) => Destination::OptionalObject(object),
            Slot::Objects(objects) => Destination::OptionalObjects(objects),
        };
        into.deserialize(deserializer)
    }
}

impl<'de> DeserializeSeed<'de> for Destination<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Destination<'_> {
    /// What this destination accepts, in serde's words.
    fn expected(&self) -> &'static str {
        match self {
            Destination::Text(_) => "a string",
            Destination::Integer(_) => "i64",
            Destination::OptionalObject(_) | Destination::Object(_) => "a JSON object",
            Destination::OptionalObjects(_) => "an array",
            Destination::ObjectOrArray(_) => "an event object or an array of event objects",
        }
    }

    /// serde's "invalid type: {what}, expected {expecting}", formatted here so that serde's
    /// `Unexpected` (and its float formatting) stays out of the component.
    fn invalid<E: de::Error>(&self, what: fmt::Arguments<'_>) -> E {
        E::custom(format_args!(
            "invalid type: {what}, expected {}",
            self.expected()
        ))
    }
}

impl<'de> Visitor<'de> for Destination<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expected())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        match self {
            Destination::Object(_) => Err(E::custom("expected an object, found null")),
            Destination::ObjectOrArray(_) => Err(self.invalid(format_args!("null"))),
            _ => Ok(()),
        }
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        Err(self.invalid(format_args!("boolean `{v}`")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self {
            Destination::Integer(integer) => {
                *integer = Some(v);
                Ok(())
            }
            _ => Err(self.invalid(format_args!("integer `{v}`"))),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match self {
            Destination::Integer(integer) => {
                *integer = Some(i64::try_from(v).map_err(|_| {
                    E::custom(format_args!("invalid value: integer `{v}`, expected i64"))
                })?);
                Ok(())
            }
            _ => Err(self.invalid(format_args!("integer `{v}`"))),
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.invalid(format_args!("floating point number")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        match self {
            Destination::Text(text) => {
                *text = Some(v.to_owned());
                Ok(())
            }
            _ => Err(self.invalid(format_args!("string {v:?}"))),
        }
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<(), E> {
        match self {
            Destination::Text(text) => {
                *text = Some(v);
                Ok(())
            }
            _ => self.visit_str(&v),
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        match self {
            Destination::Object(fields) => read_fields(map, fields),
            Destination::OptionalObject(object) => read_fields(map, object.insert_new()),
            Destination::ObjectOrArray(list) => {
                let fields = list
                    .push_new()
                    .ok_or_else(|| de::Error::custom("no room for one object"))?;
                read_fields(map, fields)?;
                list.count();
                Ok(())
            }
            _ => Err(self.invalid(format_args!("map"))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        match self {
            Destination::OptionalObjects(objects) => read_elements(seq, objects.insert_new()),
            Destination::ObjectOrArray(list) => read_elements(seq, list),
            _ => Err(self.invalid(format_args!("sequence"))),
        }
    }
}

/// The fields of one object, in any order; unknown ones are skipped, a repeated one refused.
fn read_fields<'de, A: MapAccess<'de>>(
    mut map: A,
    fields: &mut dyn Fields,
) -> Result<(), A::Error> {
    let names = fields.names();
    let mut seen = 0u64;
    while let Some(known) = map.next_key_seed(FieldName(names))? {
        let Some(index) = known else {
            map.next_value::<IgnoredAny>()?;
            continue;
        };
        let bit = 1u64 << index;
        if seen & bit != 0 {
            return Err(de::Error::custom(format_args!(
                "duplicate field `{}`",
                names[index]
            )));
        }
        seen |= bit;
        map.next_value_seed(fields.slot(index))?;
    }
    Ok(())
}

/// The elements of an array of objects, into `list`.
fn read_elements<'de, A: SeqAccess<'de>>(
    mut seq: A,
    list: &mut dyn ObjectList,
) -> Result<(), A::Error> {
    loop {
        let read = match list.push_new() {
            Some(fields) => {
                let read = seq
                    .next_element_seed(Destination::Object(fields))?
                    .is_some();
                if !read {
                    list.pop();
                }
                read
            }
            None => seq.next_element::<IgnoredAny>()?.is_some(),
        };
        if !read {
            return Ok(());
        }
        list.count();
    }
}

/// A key, as the index of the field it names, or `None` for an unknown one.
struct FieldName(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for FieldName {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for FieldName {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|name| *name == v))
    }
}

/// serde's derived readers for the same structs (`cfg_attr(test, derive(Deserialize))` on
/// each), with the objects-only helpers the component used before this reader: the oracle
/// the tests compare [`read_object`] and its siblings against.
#[cfg(test)]
pub(crate) mod reference {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use serde::Deserialize;

    /// A `T` that was a JSON object (`null` and other types refused).
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

    /// For `Option<T>` fields: `null` or absent → `None`, an object → `Some`.
    pub(crate) fn optional_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        deserializer.deserialize_option(ObjectVisitor::<T>(PhantomData))
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

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }

    /// For a field kept as [`Slot::Present`](super::Slot::Present): whether it is there and
    /// not `null`.
    pub(crate) fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        Option::<IgnoredAny>::deserialize(deserializer).map(|value| value.is_some())
    }

    /// A JSON array of which the first `MAX` items are read and the rest counted.
    pub(crate) struct Capped<T, const MAX: usize> {
        pub(crate) items: Vec<T>,
        pub(crate) total: usize,
    }

    impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for Capped<T, MAX> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(CappedVisitor::<T, MAX>(PhantomData))
        }
    }

    pub(crate) struct CappedVisitor<T, const MAX: usize>(pub(crate) PhantomData<T>);

    impl<'de, T: Deserialize<'de>, const MAX: usize> Visitor<'de> for CappedVisitor<T, MAX> {
        type Value = Capped<T, MAX>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut items = Vec::new();
            while items.len() < MAX {
                match seq.next_element::<T>()? {
                    Some(item) => items.push(item),
                    None => {
                        let total = items.len();
                        return Ok(Capped { items, total });
                    }
                }
            }
            let mut total = items.len();
            while seq.next_element::<IgnoredAny>()?.is_some() {
                total += 1;
            }
            Ok(Capped { items, total })
        }
    }
}

/// Helpers for the differential tests here and in the parsers' modules.
#[cfg(test)]
pub(crate) mod differential {
    use serde_json::Value;

    /// One step into a JSON document: an object's key or an array's index.
    #[derive(Clone, Debug, PartialEq)]
    enum Step {
        Key(String),
        Index(usize),
    }

    /// Values of every JSON type, and integers at the edges of `i64`.
    const REPLACEMENTS: [&str; 17] = [
        "null",
        "true",
        "0",
        "-1",
        "1.5",
        "-2e-7",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "\"s\"",
        "\"\\u00e9\\n\"",
        "[]",
        "[1]",
        "[null]",
        "[{}]",
        "{}",
        "{\"id\":\"x\",\"name\":1}",
    ];

    /// `json` and variants of it: the whole document and every field's value replaced by each
    /// of [`REPLACEMENTS`], every field removed, every field repeated, and a few truncations.
    pub(crate) fn variants(json: &[u8]) -> Vec<Vec<u8>> {
        let document: Value = serde_json::from_slice(json).expect("a fixture is JSON");
        let mut out = vec![json.to_vec()];
        out.extend(REPLACEMENTS.iter().map(|r| r.as_bytes().to_vec()));
        let mut paths = Vec::new();
        collect_paths(&document, &mut Vec::new(), &mut paths);
        for path in &paths {
            for replacement in REPLACEMENTS {
                let value: Value = serde_json::from_str(replacement).unwrap();
                let mut changed = document.clone();
                *at(&mut changed, path) = value;
                out.push(serde_json::to_vec(&changed).unwrap());
            }
            let mut removed = document.clone();
            let (last, parent) = path.split_last().unwrap();
            if let (Step::Key(key), Value::Object(map)) = (last, at(&mut removed, parent)) {
                map.remove(key);
            }
            out.push(serde_json::to_vec(&removed).unwrap());
            let mut repeated = String::new();
            write_repeating(&document, &mut Vec::new(), path, &mut repeated);
            out.push(repeated.into_bytes());
        }
        for cut in [1, json.len() / 2, json.len().saturating_sub(1)] {
            out.push(json[..cut.min(json.len())].to_vec());
        }
        out
    }

    fn collect_paths(value: &Value, prefix: &mut Vec<Step>, paths: &mut Vec<Vec<Step>>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    prefix.push(Step::Key(key.clone()));
                    paths.push(prefix.clone());
                    collect_paths(child, prefix, paths);
                    prefix.pop();
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    prefix.push(Step::Index(index));
                    collect_paths(child, prefix, paths);
                    prefix.pop();
                }
            }
            _ => {}
        }
    }

    fn at<'v>(mut value: &'v mut Value, path: &[Step]) -> &'v mut Value {
        for step in path {
            value = match step {
                Step::Key(key) => &mut value[key.as_str()],
                Step::Index(index) => &mut value[*index],
            };
        }
        value
    }

    /// Writes `value` as JSON with the field at `repeat` written twice (its second value
    /// `"again"`).
    fn write_repeating(value: &Value, here: &mut Vec<Step>, repeat: &[Step], out: &mut String) {
        match value {
            Value::Object(map) => {
                out.push('{');
                let mut first = true;
                for (key, child) in map {
                    here.push(Step::Key(key.clone()));
                    let times = if here.as_slice() == repeat { 2 } else { 1 };
                    for time in 0..times {
                        if !first {
                            out.push(',');
                        }
                        first = false;
                        out.push_str(&Value::String(key.clone()).to_string());
                        out.push(':');
                        if time == 1 {
                            out.push_str("\"again\"");
                        } else {
                            write_repeating(child, here, repeat, out);
                        }
                    }
                    here.pop();
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (index, child) in items.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    here.push(Step::Index(index));
                    write_repeating(child, here, repeat, out);
                    here.pop();
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }

    /// Asserts that the reader and serde's derived reader agree on `body`: both succeed with
    /// the same value, or both fail with the same category, the same message (but for the
    /// float, which the reader does not print, and the position) and, for syntax errors, the
    /// same position.
    pub(crate) fn assert_agree<T: PartialEq + std::fmt::Debug>(
        body: &[u8],
        new: Result<T, serde_json::Error>,
        old: Result<T, serde_json::Error>,
    ) {
        let shown = String::from_utf8_lossy(body);
        match (new, old) {
            (Ok(new), Ok(old)) => assert_eq!(new, old, "{shown}"),
            (Err(new), Err(old)) => {
                assert_eq!(new.classify(), old.classify(), "{shown}: {new} / {old}");
                assert_eq!(message(&new), message(&old), "{shown}");
                if !new.is_data() {
                    assert_eq!(
                        (new.line(), new.column()),
                        (old.line(), old.column()),
                        "{shown}"
                    );
                }
            }
            (new, old) => panic!("{shown}: {new:?} / {old:?}"),
        }
    }

    /// The message without its position, and serde's floats (`floating point \`1.5\``) as the
    /// reader words them.
    fn message(e: &serde_json::Error) -> String {
        let full = e.to_string();
        let position = format!(" at line {} column {}", e.line(), e.column());
        let text = full.strip_suffix(&position).unwrap_or(&full);
        match text.split_once("floating point `") {
            Some((before, after)) => {
                let rest = &after[after.find('`').map_or(0, |i| i + 1)..];
                format!("{before}floating point number{rest}")
            }
            None => text.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    struct Inner {
        a: Option<i64>,
        s: Option<String>,
    }
    json_fields!(Inner { "a" => a: Integer, "s" => s: Text });

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    struct Outer {
        #[serde(default, deserialize_with = "reference::optional_object")]
        inner: Option<Inner>,
        #[serde(default)]
        list: Option<CappedRef>,
        v: Option<Value>,
        p: Option<IgnoredAny>,
    }

    /// `Option<Capped<Inner, 2>>` of the reference, comparable.
    #[derive(Debug, Default, PartialEq)]
    struct CappedRef(Vec<Inner>, usize);

    impl<'de> Deserialize<'de> for CappedRef {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            let capped =
                reference::Capped::<reference::Object<Inner>, 2>::deserialize(deserializer)?;
            Ok(CappedRef(
                capped.items.into_iter().map(|o| o.0).collect(),
                capped.total,
            ))
        }
    }

    #[derive(Debug, Default)]
    struct OuterNew {
        inner: Option<Inner>,
        list: Option<Capped<Inner, 2>>,
        v: Option<Value>,
        p: bool,
    }
    json_fields!(OuterNew {
        "inner" => inner: Object,
        "list" => list: Objects,
        "v" => v: Value,
        "p" => p: Present,
    });

    type Comparable = (
        Option<Inner>,
        Option<(Vec<Inner>, usize)>,
        Option<Value>,
        bool,
    );

    fn new(body: &[u8]) -> Result<Comparable, serde_json::Error> {
        let mut outer = OuterNew::default();
        read_object(body, &mut outer)?;
        Ok(comparable_new(outer))
    }

    fn comparable_new(outer: OuterNew) -> Comparable {
        (
            outer.inner,
            outer.list.map(|c| (c.items, c.total)),
            outer.v,
            outer.p,
        )
    }

    fn comparable_old(outer: Outer) -> Comparable {
        (
            outer.inner,
            outer.list.map(|c| (c.0, c.1)),
            outer.v,
            outer.p.is_some(),
        )
    }

    fn old(body: &[u8]) -> Result<Comparable, serde_json::Error> {
        serde_json::from_slice::<reference::Object<Outer>>(body).map(|o| comparable_old(o.0))
    }

    #[test]
    fn objects_only() {
        let ok = new(br#"{"inner":{"a":1,"s":"x"}}"#).unwrap();
        assert_eq!(
            ok.0,
            Some(Inner {
                a: Some(1),
                s: Some("x".into())
            })
        );
        assert_eq!(new(br#"{"inner":null}"#).unwrap().0, None);
        assert_eq!(new(br#"{}"#).unwrap().0, None);
        for bad in [
            &br#"[null]"#[..],
            br#"{"inner":[1]}"#,
            br#"null"#,
            br#"{"inner":1}"#,
            br#"{"inner":"x"}"#,
            br#"{"inner":{"a":1},"inner":null}"#,
        ] {
            let err = new(bad).unwrap_err();
            assert_eq!(err.classify(), serde_json::error::Category::Data, "{bad:?}");
        }
    }

    #[test]
    fn arrays_are_capped_and_counted() {
        let (_, list, _, _) = new(br#"{"list":[{"a":1},{"a":2},{"a":3},7,"x",[]]}"#).unwrap();
        let (items, total) = list.unwrap();
        assert_eq!(
            items.iter().map(|i| i.a).collect::<Vec<_>>(),
            [Some(1), Some(2)]
        );
        assert_eq!(total, 6);
        let (_, list, _, _) = new(br#"{"list":[]}"#).unwrap();
        assert_eq!(list, Some((vec![], 0)));
        assert_eq!(new(br#"{"list":null}"#).unwrap().1, None);
        assert!(new(br#"{"list":[null]}"#).is_err());
    }

    #[test]
    fn one_object_or_an_array() {
        let mut list = Capped::<Inner, 3>::default();
        read_object_or_array(br#"{"a":1}"#, &mut list).unwrap();
        assert_eq!((list.items.len(), list.total), (1, 1));
        let mut list = Capped::<Inner, 3>::default();
        read_object_or_array(br#"[{"a":1},{"a":2}]"#, &mut list).unwrap();
        assert_eq!((list.items.len(), list.total), (2, 2));
        for bad in [&b"null"[..], b"1", b"\"x\"", b"[1]", b"[null]"] {
            let mut list = Capped::<Inner, 3>::default();
            assert!(read_object_or_array(bad, &mut list).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn from_a_value() {
        let value: Value = serde_json::from_str(r#"{"a":-3,"s":"t","x":[[]]}"#).unwrap();
        let mut inner = Inner::default();
        read_value(&value, &mut inner).unwrap();
        assert_eq!((inner.a, inner.s.as_deref()), (Some(-3), Some("t")));
        for bad in [r#"{"a":"1"}"#, "[1]", "null", r#"{"a":1.5}"#] {
            let value: Value = serde_json::from_str(bad).unwrap();
            assert!(read_value(&value, &mut Inner::default()).is_err(), "{bad}");
        }
    }

    /// The same outcome and message as serde's derived reader, from bytes and from a
    /// `serde_json::Value`, for every JSON type in every field, repeated fields, unknown
    /// fields, and truncated or malformed input.
    #[test]
    fn agrees_with_the_derived_reader() {
        let mut bodies = differential::variants(
            br#"{"inner":{"a":1,"s":"x"},"list":[{"a":2},{"s":"y"},{}],"v":{"k":[1]},"p":0,"x":1}"#,
        );
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
                "{\"inner\":{\"a\":1e400}}",
                "{\"inner\":{\"s\":\"\\ud800\"}}",
            ]
            .map(|s| s.as_bytes().to_vec()),
        );
        for body in &bodies {
            differential::assert_agree(body, new(body), old(body));
            if let Ok(value) = serde_json::from_slice::<Value>(body) {
                let mut inner = Inner::default();
                let new = read_value(&value, &mut inner).map(|()| inner);
                let old = reference::Object::<Inner>::deserialize(&value).map(|o| o.0);
                differential::assert_agree(body, new, old);
            }
        }
        assert!(bodies.len() > 200, "{}", bodies.len());
    }

    #[test]
    fn deep_nesting_in_unknown_fields_is_skipped() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let body = format!(r#"{{"x":{deep},"inner":{{"a":1,"y":{deep}}}}}"#);
        assert_eq!(new(body.as_bytes()).unwrap().0.unwrap().a, Some(1));
    }
}
