//! A JSON tree that keeps object members in document order, parsed by
//! serde_json and written back as compact JSON. opencode evaluates its
//! permission rules in insertion order (the last match wins), so the
//! operator's config must be passed on without the key sorting of
//! [`serde_json::Value`]'s map. Owns nothing else.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// One JSON value; objects as ordered member lists.
#[derive(Clone, Debug, PartialEq)]
pub enum OJson {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<OJson>),
    /// Members in document order; a repeated key keeps its first position
    /// and its last value (as `JSON.parse` does).
    Object(Vec<(String, OJson)>),
}

impl<'de> Deserialize<'de> for OJson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OJsonVisitor)
    }
}

struct OJsonVisitor;

impl<'de> Visitor<'de> for OJsonVisitor {
    type Value = OJson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<OJson, E> {
        Ok(OJson::Null)
    }
    fn visit_none<E>(self) -> Result<OJson, E> {
        Ok(OJson::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<OJson, E> {
        Ok(OJson::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<OJson, E> {
        Ok(OJson::Number(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<OJson, E> {
        Ok(OJson::Number(n.into()))
    }
    fn visit_f64<E>(self, n: f64) -> Result<OJson, E> {
        // serde_json never yields a non-finite number from text
        Ok(serde_json::Number::from_f64(n).map_or(OJson::Null, OJson::Number))
    }
    fn visit_str<E>(self, s: &str) -> Result<OJson, E> {
        Ok(OJson::String(s.to_owned()))
    }
    fn visit_string<E>(self, s: String) -> Result<OJson, E> {
        Ok(OJson::String(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OJson, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<OJson>()? {
            out.push(v);
        }
        Ok(OJson::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OJson, A::Error> {
        let mut out: Vec<(String, OJson)> = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, OJson>()? {
            match out.iter_mut().find(|(ok, _)| *ok == k) {
                Some(slot) => slot.1 = v,
                None => out.push((k, v)),
            }
        }
        Ok(OJson::Object(out))
    }
}

/// A JSON string literal.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl OJson {
    /// Parse a JSON text (strict JSON: no comments, no trailing commas).
    pub fn parse(text: &str) -> Result<OJson, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Compact JSON text, members in their order.
    pub fn to_json(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            OJson::Null => out.push_str("null"),
            OJson::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            OJson::Number(n) => out.push_str(&n.to_string()),
            OJson::String(s) => out.push_str(&quote(s)),
            OJson::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write(out);
                }
                out.push(']');
            }
            OJson::Object(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&quote(k));
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}
