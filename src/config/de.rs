//! A serde `Deserializer` over the merged [`Node`] tree that knows, at every
//! node, its key path and source; errors come back as [`DeError`] carrying
//! both, plus the candidate names for an unknown key or variant so the caller
//! can suggest one ("did you mean `gateway`?").
//!
//! Owns: turning serde's first error into a located one. Must not: decide
//! what to do after an error (the loader removes the offending node and
//! retries, so that all errors are collected) or know any key names.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::tree::{Entry, Node, Seg, Src, Val};

/// A deserialisation error located at a key path.
#[derive(Debug, Clone)]
pub(crate) struct DeError {
    pub message: String,
    /// Set by the innermost node that saw the error.
    pub path: Option<Vec<Seg>>,
    pub src: Option<Src>,
    /// For unknown keys and variants: the name found and the names expected.
    pub unknown: Option<(String, &'static [&'static str])>,
}

impl DeError {
    fn locate(mut self, path: &[Seg], src: &Src) -> DeError {
        if self.path.is_none() {
            self.path = Some(path.to_vec());
            self.src = Some(src.clone());
        }
        self
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError { message: msg.to_string(), path: None, src: None, unknown: None }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DeError {
            message: "unknown key".to_string(),
            path: None,
            src: None,
            unknown: Some((field.to_string(), expected)),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let list = expected.iter().map(|e| format!("`{e}`")).collect::<Vec<_>>().join(", ");
        DeError {
            message: format!("unknown value `{variant}` (expected one of {list})"),
            path: None,
            src: None,
            unknown: Some((variant.to_string(), expected)),
        }
    }
}

/// Deserialise any `T` from the tree.
pub(crate) fn from_node<T: de::DeserializeOwned>(node: &Node) -> Result<T, DeError> {
    T::deserialize(NodeDe { node, path: Vec::new() })
}

struct NodeDe<'a> {
    node: &'a Node,
    path: Vec<Seg>,
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.v {
            Val::Null => visitor.visit_unit(),
            Val::Bool(b) => visitor.visit_bool(*b),
            Val::Int(i) => visitor.visit_i64(*i),
            Val::UInt(u) => visitor.visit_u64(*u),
            Val::Float(f) => visitor.visit_f64(*f),
            Val::Str(s) => visitor.visit_str(s),
            Val::Seq(items) => visitor.visit_seq(SeqDe { items, idx: 0, path: &self.path }),
            Val::Map(entries) => visitor.visit_map(MapDe { entries, idx: 0, path: &self.path }),
        };
        r.map_err(|e| e.locate(&self.path, &self.node.src))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let (path, src) = (self.path.clone(), self.node.src.clone());
        let r = match self.node.v {
            Val::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        };
        r.map_err(|e| e.locate(&path, &src))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _: &'static str, visitor: V) -> Result<V::Value, DeError> {
        let (path, src) = (self.path.clone(), self.node.src.clone());
        visitor.visit_newtype_struct(self).map_err(|e| e.locate(&path, &src))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.v {
            Val::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => Err(de::Error::custom(format!("expected a string, got {}", self.node.kind()))),
        };
        r.map_err(|e: DeError| e.locate(&self.path, &self.node.src))
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier
    }
}

struct SeqDe<'a> {
    items: &'a [Node],
    idx: usize,
    path: &'a [Seg],
}

impl<'de> SeqAccess<'de> for SeqDe<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.idx) else { return Ok(None) };
        let mut path = self.path.to_vec();
        path.push(Seg::Index(self.idx));
        self.idx += 1;
        seed.deserialize(NodeDe { node, path }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.idx)
    }
}

struct MapDe<'a> {
    entries: &'a [Entry],
    idx: usize,
    path: &'a [Seg],
}

impl<'de> MapAccess<'de> for MapDe<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.idx) else { return Ok(None) };
        let mut path = self.path.to_vec();
        path.push(Seg::Key(entry.key.clone()));
        seed.deserialize(KeyDe { key: &entry.key }).map(Some).map_err(|e: DeError| e.locate(&path, &entry.key_src))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some(entry) = self.entries.get(self.idx) else {
            return Err(de::Error::custom("value requested before key"));
        };
        self.idx += 1;
        let mut path = self.path.to_vec();
        path.push(Seg::Key(entry.key.clone()));
        seed.deserialize(NodeDe { node: &entry.node, path })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.idx)
    }
}

struct KeyDe<'a> {
    key: &'a str,
}

impl<'de> Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.key)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::{parse_yaml, render_path};
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
        #[serde(default)]
        list: Vec<u8>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        inner: Inner,
        opt: Option<Inner>,
    }

    fn try_parse(y: &str) -> Result<Outer, DeError> {
        let t = parse_yaml(y, &|l, c| Src::File(l, c)).unwrap();
        from_node(&t)
    }

    #[test]
    fn errors_are_located() {
        assert_eq!(
            try_parse("inner: {n: 1}\nopt: null\n").unwrap(),
            Outer { inner: Inner { n: 1, list: vec![] }, opt: None }
        );
        let e = try_parse("inner: {n: 1, list: [1, 300]}\nopt: null\n").unwrap_err();
        assert_eq!(render_path(e.path.as_ref().unwrap()), "inner.list[1]");
        assert_eq!(e.src, Some(Src::File(1, 25)));
        let e = try_parse("inner: {n: 1}\nopt: {m: 2}\n").unwrap_err();
        assert_eq!(render_path(e.path.as_ref().unwrap()), "opt.m");
        assert_eq!(e.message, "unknown key");
        assert_eq!(e.unknown.as_ref().unwrap().0, "m");
        assert_eq!(e.src, Some(Src::File(2, 7)));
        let e = try_parse("inner: {}\nopt: null\n").unwrap_err();
        assert_eq!(render_path(e.path.as_ref().unwrap()), "inner");
        assert!(e.message.contains("missing field `n`"));
    }
}
