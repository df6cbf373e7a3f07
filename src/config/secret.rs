//! Secret-bearing configuration values (operations.md §1.1, security.md §10.1):
//! the [`Secret`] newtype, the `value | {env: VAR} | {file: PATH}` form used by
//! worker env additions and tracing headers ([`SecretValue`]), and the two ways
//! of fetching a secret (environment snapshot, secret file) with the S16 checks.
//!
//! Owns: redaction by type — `Debug` and `Serialize` print `"***"`, there is no
//! `Display`, and the bytes are overwritten on drop (best effort). Must not:
//! log anything, put a secret value into an error message, or read files other
//! than the secret files it is asked for.

use std::fmt;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

/// Largest secret file read (a key or token is far smaller; a PEM bundle is not a secret here).
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret string. `Debug` and `Serialize` print `"***"`; read it with [`Secret::expose`].
/// `==` is not constant-time: it exists for config diffs, never for checking a credential.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself. Call sites are easy to grep for; never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        bytes.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&bytes);
    }
}

/// Where a secret comes from, once the sibling keys of an entry have been checked.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretSource {
    /// `{env: VAR}`: read from the gateway's environment snapshot.
    Env(String),
    /// `{file: PATH}`: file content, one trailing newline trimmed; re-read on reload.
    File(PathBuf),
}

/// A value that may be given inline or fetched: `NAME: value | {env: VAR} | {file: PATH}`
/// (`workers.<type>.env`, `tracing.headers`). Inline scalars (numbers, booleans) become strings.
/// The fetched value is filled in by the loader and is never serialised.
#[derive(Clone, Debug, PartialEq)]
pub enum SecretValue {
    Literal(Secret),
    Env { env: String, value: Option<Secret> },
    File { file: PathBuf, value: Option<Secret> },
}

impl SecretValue {
    /// The value to use: the literal, or the fetched secret (`None` before loading).
    pub fn value(&self) -> Option<&Secret> {
        match self {
            SecretValue::Literal(s) => Some(s),
            SecretValue::Env { value, .. } | SecretValue::File { value, .. } => value.as_ref(),
        }
    }

    pub fn source(&self) -> Option<SecretSource> {
        match self {
            SecretValue::Literal(_) => None,
            SecretValue::Env { env, .. } => Some(SecretSource::Env(env.clone())),
            SecretValue::File { file, .. } => Some(SecretSource::File(file.clone())),
        }
    }
}

impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            SecretValue::Literal(secret) => secret.serialize(s),
            SecretValue::Env { env, .. } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("env", env)?;
                m.end()
            }
            SecretValue::File { file, .. } => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("file", file)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for SecretValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SecretValue, D::Error> {
        struct V;
        fn lit(s: String) -> SecretValue {
            SecretValue::Literal(Secret(s))
        }
        impl<'de> Visitor<'de> for V {
            type Value = SecretValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, {env: VAR} or {file: PATH}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SecretValue, E> {
                Ok(lit(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<SecretValue, E> {
                Ok(lit(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<SecretValue, E> {
                Ok(lit(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SecretValue, E> {
                Ok(lit(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SecretValue, E> {
                Ok(lit(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SecretValue, E> {
                Ok(lit(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretValue, A::Error> {
                let mut out: Option<SecretValue> = None;
                while let Some(key) = map.next_key::<String>()? {
                    let next = match key.as_str() {
                        "env" => SecretValue::Env { env: map.next_value()?, value: None },
                        "file" => SecretValue::File { file: map.next_value()?, value: None },
                        _ => return Err(de::Error::unknown_field(&key, &["env", "file"])),
                    };
                    if out.is_some() {
                        return Err(de::Error::custom("give exactly one of `env` or `file`"));
                    }
                    out = Some(next);
                }
                out.ok_or_else(|| de::Error::custom("give exactly one of `env` or `file`"))
            }
        }
        d.deserialize_any(V)
    }
}

/// Fetch `{env: VAR}` from the environment snapshot (S16: must be set and non-empty).
pub fn read_env_secret(name: &str, env: &[(String, String)]) -> Result<Secret, String> {
    if name.is_empty() {
        return Err("`env:` names no variable".to_string());
    }
    match env.iter().rev().find(|(k, _)| k == name) {
        None => Err(format!("environment variable {name} is not set")),
        Some((_, v)) if v.is_empty() => Err(format!("environment variable {name} is empty")),
        Some((_, v)) => Ok(Secret(v.clone())),
    }
}

/// Outcome of reading a secret file: the secret and an optional warning.
pub struct FileSecret {
    pub secret: Secret,
    pub warning: Option<String>,
}

/// Fetch `{file: PATH}` (S16): a regular file, not group/world-writable, at most
/// [`MAX_SECRET_FILE_BYTES`], UTF-8; one trailing `\n` or `\r\n` is trimmed; empty → error.
/// A world-readable file is accepted with a warning.
pub fn read_secret_file(path: &Path) -> Result<FileSecret, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("secret file {shown}: {}", io_reason(&e)))?;
    if !meta.is_file() {
        return Err(format!("secret file {shown} is not a regular file"));
    }
    let mode = meta.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(format!("secret file {shown} is group- or world-writable (mode {:04o})", mode & 0o7777));
    }
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!("secret file {shown} is larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    let file = std::fs::File::open(path).map_err(|e| format!("secret file {shown}: {}", io_reason(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("secret file {shown}: {}", io_reason(&e)))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!("secret file {shown} is larger than {MAX_SECRET_FILE_BYTES} bytes"));
    }
    let mut text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let mut raw = e.into_bytes();
            raw.iter_mut().for_each(|b| *b = 0);
            return Err(format!("secret file {shown} is not UTF-8 text"));
        }
    };
    if text.ends_with("\r\n") {
        text.truncate(text.len() - 2);
    } else if text.ends_with('\n') {
        text.truncate(text.len() - 1);
    }
    let secret = Secret(text);
    if secret.is_empty() {
        return Err(format!("secret file {shown} is empty"));
    }
    let warning = (mode & 0o004 != 0).then(|| format!("secret file {shown} is world-readable"));
    Ok(FileSecret { secret, warning })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_string(),
        std::io::ErrorKind::PermissionDenied => "not readable (permission denied)".to_string(),
        _ => format!("cannot be read ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted_in_debug_and_serialize() {
        let s = Secret::new("hunter2-very-secret".to_string());
        assert_eq!(format!("{s:?}"), "\"***\"");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2-very-secret");
        let v = SecretValue::Literal(s);
        assert!(!format!("{v:?}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"***\"");
        let e = SecretValue::Env { env: "X".into(), value: Some(Secret::new("abc-secret".into())) };
        assert_eq!(serde_json::to_string(&e).unwrap(), r#"{"env":"X"}"#);
        assert!(!format!("{e:?}").contains("abc-secret"));
    }

    #[test]
    fn env_secret() {
        let env = vec![("A".to_string(), "x".to_string()), ("B".to_string(), String::new())];
        assert_eq!(read_env_secret("A", &env).unwrap().expose(), "x");
        assert!(read_env_secret("B", &env).unwrap_err().contains("empty"));
        assert!(read_env_secret("C", &env).unwrap_err().contains("not set"));
    }

    #[test]
    fn file_secret_rules() {
        let dir = std::env::temp_dir().join(format!("hotplex-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("tok");
        std::fs::write(&p, "abc\r\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let got = read_secret_file(&p).unwrap();
        assert_eq!(got.secret.expose(), "abc");
        assert!(got.warning.is_none());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_secret_file(&p).unwrap().warning.is_some());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o620)).unwrap();
        assert!(read_secret_file(&p).err().unwrap().contains("writable"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&p, "\n").unwrap();
        assert!(read_secret_file(&p).err().unwrap().contains("empty"));
        assert!(read_secret_file(&dir).err().unwrap().contains("regular"));
        assert!(read_secret_file(&dir.join("missing")).err().unwrap().contains("does not exist"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
