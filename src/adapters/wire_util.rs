//! Helpers every adapter's `wire` module uses to read agent JSON without
//! letting one odd field fail a whole line. Owns nothing else; no state.

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
