//! Ordered JSON for output lines. `serde_json::Value` sorts object keys (the
//! crate is built without `preserve_order`), but the real CLI writes `type`
//! first and a gateway may sniff that prefix, so output lines are built as
//! [`J`] trees that keep insertion order. Inputs stay `serde_json::Value`.

use serde_json::Value;

/// A JSON value whose objects keep their field order.
pub enum J {
    V(Value),
    O(Vec<(String, J)>),
    A(Vec<J>),
}

/// `o! { "k" => v, … }` builds an ordered object; values go through `J::from`.
macro_rules! o {
    ($($k:expr => $v:expr),* $(,)?) => {
        $crate::json::J::O(vec![$(($k.to_string(), $crate::json::J::from($v))),*])
    };
}

/// `a![v, …]` builds an array.
macro_rules! a {
    ($($v:expr),* $(,)?) => { $crate::json::J::A(vec![$($crate::json::J::from($v)),*]) };
}

pub const NULL: J = J::V(Value::Null);

impl J {
    /// Appends a field to an object (no-op on other variants).
    pub fn push(&mut self, k: &str, v: impl Into<J>) {
        if let J::O(fields) = self {
            fields.push((k.to_string(), v.into()));
        }
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            J::V(v) => serde_json::to_writer(&mut *out, v).expect("Value serialises"),
            J::O(fields) => {
                out.push(b'{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    serde_json::to_writer(&mut *out, k).expect("str serialises");
                    out.push(b':');
                    v.write_to(out);
                }
                out.push(b'}');
            }
            J::A(items) => {
                out.push(b'[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    v.write_to(out);
                }
                out.push(b']');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(256);
        self.write_to(&mut v);
        v
    }
}

impl From<Value> for J {
    fn from(v: Value) -> J {
        J::V(v)
    }
}
impl From<&Value> for J {
    fn from(v: &Value) -> J {
        J::V(v.clone())
    }
}
impl From<&str> for J {
    fn from(v: &str) -> J {
        J::V(Value::String(v.to_string()))
    }
}
impl From<String> for J {
    fn from(v: String) -> J {
        J::V(Value::String(v))
    }
}
impl From<&String> for J {
    fn from(v: &String) -> J {
        J::V(Value::String(v.clone()))
    }
}
impl From<bool> for J {
    fn from(v: bool) -> J {
        J::V(Value::Bool(v))
    }
}
impl From<u64> for J {
    fn from(v: u64) -> J {
        J::V(v.into())
    }
}
impl From<u16> for J {
    fn from(v: u16) -> J {
        J::V(v.into())
    }
}
impl From<u32> for J {
    fn from(v: u32) -> J {
        J::V(v.into())
    }
}
impl From<i64> for J {
    fn from(v: i64) -> J {
        J::V(v.into())
    }
}
impl From<i32> for J {
    fn from(v: i32) -> J {
        J::V(v.into())
    }
}
impl From<usize> for J {
    fn from(v: usize) -> J {
        J::V((v as u64).into())
    }
}
impl From<f64> for J {
    fn from(v: f64) -> J {
        J::V(v.into())
    }
}
impl From<Vec<J>> for J {
    fn from(v: Vec<J>) -> J {
        J::A(v)
    }
}
impl<T: Into<J>> From<Option<T>> for J {
    fn from(v: Option<T>) -> J {
        v.map_or(NULL, Into::into)
    }
}
