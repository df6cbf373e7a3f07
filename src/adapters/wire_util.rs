//! Helpers the adapters' `wire` modules use to read agent JSON without
//! letting one odd field or line fail more than itself: the lenient field
//! reader and the one-line parse into a typed record plus its tree. Owns
//! nothing else; no state.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::Value;

/// Deserialize an optional field, turning any shape mismatch into `None`
/// instead of failing the whole line.
pub fn lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).ok())
}

/// The outcome of reading one stdout line as a record of type `L`.
#[derive(Debug)]
pub enum Parsed<L> {
    /// Empty or whitespace-only line.
    Blank,
    /// Not JSON (or not UTF-8, or truncated).
    NonJson,
    /// JSON, but not an object or not of the shape its `type` promises.
    Malformed(Value),
    /// A line of a known shape (or the record type's catch-all for an
    /// unknown `type`), with the parsed tree kept for passthrough.
    Line(L, Value),
}

/// Parse one stdout line (without its `\n`): tokenised once, then read as
/// `L` through the tree. Never fails, never panics.
pub fn parse<L: DeserializeOwned>(line: &[u8]) -> Parsed<L> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    let raw: Value = match serde_json::from_slice(line) {
        Ok(v) => v,
        Err(_) => return Parsed::NonJson,
    };
    if !raw.is_object() {
        return Parsed::Malformed(raw);
    }
    match L::deserialize(&raw) {
        Ok(l) => Parsed::Line(l, raw),
        Err(_) => Parsed::Malformed(raw),
    }
}
