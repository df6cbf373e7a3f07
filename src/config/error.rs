//! Configuration errors and warnings and their one-line rendering
//! (operations.md §1.4): `config error: <key.path>: <message> [<source>]`, where
//! the source is `file:line:col`, a `HOTPLEX__…` variable, the `--dev` profile
//! or `default`. Also the "did you mean" suggestion (edit distance ≤ 2).
//!
//! Owns: the wording of that line. Must not: contain secret values (callers
//! name keys, variables and files, never their content).

use std::fmt;

/// One validation error; `Display` gives the `config error: …` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted key path (`gateway.ping_interval`, `admin.tokens[0].name`); may be empty for file-level errors.
    pub key: String,
    pub message: String,
    /// `file:line:col`, the variable name, `--dev profile …` or `default`.
    pub source: Option<String>,
}

/// One warning; `Display` gives the `config warning: …` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning {
    pub key: String,
    pub message: String,
    pub source: Option<String>,
}

fn render(f: &mut fmt::Formatter<'_>, kind: &str, key: &str, message: &str, source: &Option<String>) -> fmt::Result {
    write!(f, "config {kind}: ")?;
    if !key.is_empty() {
        write!(f, "{key}: ")?;
    }
    f.write_str(message)?;
    if let Some(src) = source {
        write!(f, " [{src}]")?;
    }
    Ok(())
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(f, "error", &self.key, &self.message, &self.source)
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(f, "warning", &self.key, &self.message, &self.source)
    }
}

/// Every error found (never empty when returned by `load`); `Display` prints one per line.
/// The process should print it to stderr and exit with code 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
    /// Warnings found along the way (printed too, they explain some errors).
    pub warnings: Vec<ConfigWarning>,
}

impl ConfigErrors {
    /// Exit code for an invalid configuration (operations.md §8).
    pub const EXIT_CODE: i32 = 2;

    pub fn single(key: &str, message: impl Into<String>, source: Option<String>) -> ConfigErrors {
        ConfigErrors {
            errors: vec![ConfigError { key: key.to_string(), message: message.into(), source }],
            warnings: Vec::new(),
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The closest candidate within edit distance 2 (ties: the first), if any.
pub fn did_you_mean<'a>(found: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = edit_distance(found, c);
        if d <= 2 && d > 0 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering() {
        let e = ConfigError {
            key: "gatway".into(),
            message: "unknown key (did you mean `gateway`?)".into(),
            source: Some("/etc/hotplex/config.yaml:1:1".into()),
        };
        assert_eq!(
            e.to_string(),
            "config error: gatway: unknown key (did you mean `gateway`?) [/etc/hotplex/config.yaml:1:1]"
        );
        let w = ConfigWarning { key: "workers".into(), message: "no worker type is enabled".into(), source: None };
        assert_eq!(w.to_string(), "config warning: workers: no worker type is enabled");
    }

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("gatway", ["gateway", "admin"]), Some("gateway"));
        assert_eq!(did_you_mean("ping_intreval", ["ping_interval"]), Some("ping_interval"));
        assert_eq!(did_you_mean("xyz", ["gateway", "admin"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "ab"), 2);
    }
}
