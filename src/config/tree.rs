//! The layered configuration tree: every layer (built-in defaults, `--dev`
//! profile, YAML file, `HOTPLEX__…` variables) becomes a [`Node`] tree whose
//! nodes remember where they came from ([`Src`]); layers are deep-merged, and
//! the merged tree is then deserialised into `Config` by `de.rs`.
//!
//! Owns: YAML parsing (serde-saphyr with duplicate keys as errors, strict
//! booleans, a budget), merge rules (struct maps merge key by key; lists,
//! scalars and user maps are replaced as a whole), and path lookup for error
//! sources. Must not: know key semantics beyond the user-map list below, or
//! read files (the caller hands in text).

use std::fmt;
use std::path::Path;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{DuplicateKeyPolicy, Spanned};

/// Where a node's value came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Src {
    /// Built-in default (§1.5).
    Default,
    /// The embedded `--dev` profile (`configs/config-dev.yaml`), at line:column.
    Dev(u64, u64),
    /// The YAML file, at line:column.
    File(u64, u64),
    /// A `HOTPLEX__…` variable.
    Env(String),
}

impl Src {
    /// `file:line:col`, the variable name, `--dev profile …` or `default`.
    pub(crate) fn render(&self, file: Option<&Path>) -> String {
        match self {
            Src::Default => "default".to_string(),
            Src::Dev(l, c) => format!("--dev profile configs/config-dev.yaml:{l}:{c}"),
            Src::File(l, c) => match file {
                Some(p) => format!("{}:{l}:{c}", p.display()),
                None => format!("{l}:{c}"),
            },
            Src::Env(name) => name.clone(),
        }
    }
}

/// One path segment: a map key or a list index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

/// Render a path the way errors show it: `admin.tokens[0].name`.
pub(crate) fn render_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Parse a rendered path back into segments (`a.b[2].c`). Keys containing `.` or `[`
/// cannot be expressed; lookups then fall back to the nearest ancestor.
pub(crate) fn parse_path(text: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in text.split('.') {
        let (name, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !name.is_empty() {
            out.push(Seg::Key(name.to_string()));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            match idx.trim_end_matches(']').parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => out.push(Seg::Key(idx.to_string())),
            }
        }
    }
    out
}

/// Keys below these paths are user-chosen names, not struct fields: they are taken
/// verbatim from `HOTPLEX__…` names, and a layer that sets the map replaces it whole.
pub(crate) fn is_user_map(path: &[&str]) -> bool {
    matches!(path, ["workers", _, "env"] | ["workers", "acpx", "agents"] | ["log", "targets"] | ["tracing", "headers"])
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub v: Val,
    pub src: Src,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Val {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_src: Src,
    pub node: Node,
}

impl Node {
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match &self.v {
            Val::Map(entries) => entries.iter().find(|e| e.key == key).map(|e| &e.node),
            _ => None,
        }
    }

    /// The node at `path`, if present.
    pub(crate) fn lookup(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.v) {
                (Seg::Key(k), Val::Map(_)) => node.get(k)?,
                (Seg::Index(i), Val::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Source of the value at `path` (or of its map key, for a key that names a map).
    pub(crate) fn source_of(&self, path: &[Seg]) -> Option<&Src> {
        self.lookup(path).map(|n| &n.src)
    }

    /// Remove the node at `path`; false if there was none (or the path is empty).
    pub(crate) fn remove(&mut self, path: &[Seg]) -> bool {
        let Some((last, parent_path)) = path.split_last() else { return false };
        let mut node = self;
        for seg in parent_path {
            node = match (seg, &mut node.v) {
                (Seg::Key(k), Val::Map(entries)) => match entries.iter_mut().find(|e| &e.key == k) {
                    Some(e) => &mut e.node,
                    None => return false,
                },
                (Seg::Index(i), Val::Seq(items)) => match items.get_mut(*i) {
                    Some(n) => n,
                    None => return false,
                },
                _ => return false,
            };
        }
        match (last, &mut node.v) {
            (Seg::Key(k), Val::Map(entries)) => {
                let before = entries.len();
                entries.retain(|e| &e.key != k);
                entries.len() != before
            }
            (Seg::Index(i), Val::Seq(items)) if *i < items.len() => {
                items.remove(*i);
                true
            }
            _ => false,
        }
    }

    /// Deep-merge a higher layer into this one (see the module doc for the rules).
    pub(crate) fn merge(&mut self, over: Node) {
        let mut path = Vec::new();
        merge_at(self, over, &mut path);
    }

    /// Build a tree from a JSON value (the serialised built-in defaults), all `Src::Default`.
    pub(crate) fn from_json(v: &serde_json::Value, src: &Src) -> Node {
        use serde_json::Value as J;
        let v = match v {
            J::Null => Val::Null,
            J::Bool(b) => Val::Bool(*b),
            J::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
                (Some(u), _, _) => Val::UInt(u),
                (None, Some(i), _) => Val::Int(i),
                (None, None, Some(f)) => Val::Float(f),
                _ => Val::Null,
            },
            J::String(s) => Val::Str(s.clone()),
            J::Array(items) => Val::Seq(items.iter().map(|i| Node::from_json(i, src)).collect()),
            J::Object(map) => Val::Map(
                map.iter()
                    .map(|(k, v)| Entry { key: k.clone(), key_src: src.clone(), node: Node::from_json(v, src) })
                    .collect(),
            ),
        };
        Node { v, src: src.clone() }
    }

    /// A short name of the value's kind, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self.v {
            Val::Null => "null",
            Val::Bool(_) => "a boolean",
            Val::Int(_) | Val::UInt(_) => "an integer",
            Val::Float(_) => "a number",
            Val::Str(_) => "a string",
            Val::Seq(_) => "a list",
            Val::Map(_) => "a mapping",
        }
    }
}

fn merge_at(base: &mut Node, over: Node, path: &mut Vec<String>) {
    // An empty section (`gateway:` with every key commented out) changes nothing.
    if matches!(over.v, Val::Null) && matches!(base.v, Val::Map(_)) {
        return;
    }
    let user_map = is_user_map(&path.iter().map(String::as_str).collect::<Vec<_>>());
    let both_maps = matches!(base.v, Val::Map(_)) && matches!(over.v, Val::Map(_));
    if !both_maps || user_map {
        *base = over;
        return;
    }
    let (Val::Map(base_entries), Val::Map(over_entries)) = (&mut base.v, over.v) else { return };
    base.src = over.src;
    for entry in over_entries {
        match base_entries.iter_mut().find(|e| e.key == entry.key) {
            Some(existing) => {
                existing.key_src = entry.key_src;
                path.push(entry.key);
                merge_at(&mut existing.node, entry.node, path);
                path.pop();
            }
            None => base_entries.push(entry),
        }
    }
}

// ---------------------------------------------------------------------------
// YAML → Node
// ---------------------------------------------------------------------------

/// Maximum size of a configuration file (operations.md §1.2).
pub(crate) const MAX_CONFIG_BYTES: usize = 1024 * 1024;

/// A YAML syntax or structure error with its position.
#[derive(Debug)]
pub(crate) struct YamlError {
    pub message: String,
    pub line: u64,
    pub col: u64,
}

fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        duplicate_keys: DuplicateKeyPolicy::Error,
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        reject_unsupported_tags: true,
        with_snippet: false,
        budget: serde_saphyr::budget! {
            max_reader_input_bytes: Some(MAX_CONFIG_BYTES),
            max_documents: 1,
            max_depth: 64,
            max_nodes: 200_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_events: 500_000,
            max_total_scalar_bytes: MAX_CONFIG_BYTES,
        },
    }
}

/// Parse YAML text into a tree; `src` maps (line, column) to the node source.
pub(crate) fn parse_yaml(text: &str, src: &dyn Fn(u64, u64) -> Src) -> Result<Node, YamlError> {
    if text.len() > MAX_CONFIG_BYTES {
        return Err(YamlError { message: format!("larger than {MAX_CONFIG_BYTES} bytes"), line: 1, col: 1 });
    }
    let parsed: Spanned<Y> = serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
        let (line, col) = e.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        YamlError { message: yaml_message(&e), line, col }
    })?;
    Ok(convert(parsed, src))
}

fn yaml_message(e: &serde_saphyr::Error) -> String {
    if let serde_saphyr::Error::DuplicateMappingKey { key, .. } = e.without_snippet() {
        return match key {
            Some(k) => format!("duplicate key `{k}` (a repeated key is a typo, not an override)"),
            None => "duplicate key".to_string(),
        };
    }
    let text = e.render_with_options(serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off });
    // The plain rendering ends with " at line L, column C"; the caller prints the position itself.
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn convert(s: Spanned<Y>, src: &dyn Fn(u64, u64) -> Src) -> Node {
    let at = src(s.referenced.line(), s.referenced.column());
    let v = match s.value {
        Y::Null => Val::Null,
        Y::Bool(b) => Val::Bool(b),
        Y::Int(i) => Val::Int(i),
        Y::UInt(u) => Val::UInt(u),
        Y::Float(f) => Val::Float(f),
        Y::Str(s) => Val::Str(s),
        Y::Seq(items) => Val::Seq(items.into_iter().map(|i| convert(i, src)).collect()),
        Y::Map(entries) => Val::Map(
            entries
                .into_iter()
                .map(|(k, v)| Entry {
                    key_src: src(k.referenced.line(), k.referenced.column()),
                    key: k.value,
                    node: convert(v, src),
                })
                .collect(),
        ),
    };
    Node { v, src: at }
}

/// The YAML document as serde-saphyr hands it over, with positions.
enum Y {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Y>>),
    Map(Vec<(Spanned<String>, Spanned<Y>)>),
}

impl<'de> Deserialize<'de> for Y {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Y, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Y;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Y, E> {
                Ok(Y::Null)
            }
            fn visit_none<E>(self) -> Result<Y, E> {
                Ok(Y::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Y, D::Error> {
                Y::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Y, E> {
                Ok(Y::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Y, E> {
                Ok(if v >= 0 { Y::UInt(v as u64) } else { Y::Int(v) })
            }
            fn visit_u64<E>(self, v: u64) -> Result<Y, E> {
                Ok(Y::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Y, E> {
                Ok(Y::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Y, E> {
                Ok(Y::Str(v.to_string()))
            }
            fn visit_string<E>(self, v: String) -> Result<Y, E> {
                Ok(Y::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Y, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Y::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Y, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = a.next_key::<Spanned<String>>()? {
                    let value = a.next_value()?;
                    entries.push((key, value));
                }
                Ok(Y::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(l: u64, c: u64) -> Src {
        Src::File(l, c)
    }

    #[test]
    fn positions_and_strictness() {
        let t = parse_yaml("gateway:\n  listen: x\n  flag: yes\n", &file).unwrap();
        let listen = t.lookup(&parse_path("gateway.listen")).unwrap();
        assert_eq!(listen.src, Src::File(2, 11));
        assert_eq!(t.lookup(&parse_path("gateway.flag")).unwrap().v, Val::Str("yes".into()));
        let e = parse_yaml("a: 1\na: 2\n", &file).unwrap_err();
        assert_eq!((e.line, e.col), (2, 1));
        assert!(e.message.contains("duplicate key `a`"), "{}", e.message);
        let e = parse_yaml("a: [1\n", &file).unwrap_err();
        assert!(!e.message.contains("at line"), "{}", e.message);
        assert!(parse_yaml("a: 1\n---\nb: 2\n", &file).is_err());
        assert!(parse_yaml("a: !custom x\n", &file).is_err());
    }

    #[test]
    fn merge_rules() {
        let mut base = parse_yaml("a: {x: 1, y: [1, 2]}\nlog: {targets: {m: info}}\n", &file).unwrap();
        let over = parse_yaml("a: {y: [3]}\nlog: {targets: {n: debug}}\n", &file).unwrap();
        base.merge(over);
        assert_eq!(base.lookup(&parse_path("a.x")).unwrap().v, Val::UInt(1));
        assert_eq!(base.lookup(&parse_path("a.y[0]")).unwrap().v, Val::UInt(3));
        assert!(base.lookup(&parse_path("a.y[1]")).is_none());
        // user maps are replaced as a whole
        assert!(base.lookup(&parse_path("log.targets.m")).is_none());
        assert!(base.lookup(&parse_path("log.targets.n")).is_some());
        base.merge(parse_yaml("a:\n", &file).unwrap());
        assert_eq!(base.lookup(&parse_path("a.x")).unwrap().v, Val::UInt(1));
        assert!(base.remove(&parse_path("a.x")));
        assert!(!base.remove(&parse_path("a.x")));
    }

    #[test]
    fn paths() {
        let p = parse_path("admin.tokens[1].name");
        assert_eq!(
            p,
            vec![Seg::Key("admin".into()), Seg::Key("tokens".into()), Seg::Index(1), Seg::Key("name".into())]
        );
        assert_eq!(render_path(&p), "admin.tokens[1].name");
    }
}
