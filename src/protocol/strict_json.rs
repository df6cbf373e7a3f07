//! Strict JSON parsing for peer input: a byte pre-scan bounds nesting depth,
//! then a serde visitor builds a `Value` and rejects duplicate keys at any
//! depth (serde_json's own `Value` silently keeps the last one).
//! serde_json already rejects lone surrogates and non-finite numbers.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a byte string is not acceptable JSON.
#[derive(Debug, PartialEq, Eq)]
pub enum JsonError {
    TooDeep,
    Syntax(String),
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonError::TooDeep => f.write_str("JSON nesting too deep"),
            JsonError::Syntax(m) => f.write_str(m),
        }
    }
}

/// Nesting depth of `[`/`{` outside strings; stops counting past `limit`.
pub fn depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    for &b in bytes {
        if in_str {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Parse `bytes` as one JSON value (surrounding whitespace allowed), with
/// a depth limit and duplicate-key rejection.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    if depth_exceeds(bytes, max_depth) {
        return Err(JsonError::TooDeep);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = StrictValue.deserialize(&mut de).map_err(|e| JsonError::Syntax(clean(e)))?;
    de.end().map_err(|e| JsonError::Syntax(clean(e)))?;
    Ok(value)
}

fn clean(e: serde_json::Error) -> String {
    // serde_json appends " at line L column C"; keep it, it helps clients.
    e.to_string()
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v).map(Value::Number).ok_or_else(|| E::custom("non-finite number"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let v = map.next_value_seed(StrictValue)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_duplicate_keys_at_any_depth() {
        assert!(parse(br#"{"a":1,"a":2}"#, 32).is_err());
        assert!(parse(br#"{"x":{"b":[{"c":1,"c":1}]}}"#, 32).is_err());
        assert!(parse(br#"{"a":1,"b":2}"#, 32).is_ok());
    }

    #[test]
    fn depth_limit_counts_only_outside_strings() {
        let deep = "[".repeat(33) + &"]".repeat(33);
        assert_eq!(parse(deep.as_bytes(), 32), Err(JsonError::TooDeep));
        let ok = "[".repeat(32) + &"]".repeat(32);
        assert!(parse(ok.as_bytes(), 32).is_ok());
        let in_string = format!("{{\"s\":\"{}\"}}", "[".repeat(100));
        assert!(parse(in_string.as_bytes(), 32).is_ok());
        assert!(parse(br#"{"s":"\"[[[[" }"#, 2).is_ok());
    }

    #[test]
    fn rejects_lone_surrogates_and_trailing_garbage() {
        assert!(parse(br#"{"s":"\ud800"}"#, 32).is_err());
        assert!(parse(br#"{} x"#, 32).is_err());
        assert!(parse(b"{}\n", 32).is_ok());
        assert!(parse(b"NaN", 32).is_err());
    }

    /// Found by the `aep_decode` fuzz target: without serde_json's
    /// `float_roundtrip`, `802360e29` parsed one ULP off and did not survive
    /// encode → parse (client metadata changed in transit).
    #[test]
    fn floats_are_correctly_rounded_and_round_trip() {
        let v = parse(b"[802360e29, 0.1, 1e-7, 123456789.123456789e-3]", 32).unwrap();
        assert_eq!(v[0].as_f64(), Some(8.0236e34));
        let again = parse(serde_json::to_string(&v).unwrap().as_bytes(), 32).unwrap();
        assert_eq!(again, v);
    }
}
