//! Environment overrides `HOTPLEX__SECTION__KEY=value` (operations.md §1.3),
//! applied as the top layer of the merged tree.
//!
//! Rules: segments are joined by `__`; a segment naming a struct field matches
//! case-insensitively, a segment that is a key of a user map (`workers.*.env`,
//! `workers.acpx.agents`, `log.targets`, `tracing.headers`) is taken verbatim;
//! the value is parsed as a YAML flow value, except that a key whose current
//! value is a string takes the text as is (so `0077` or `0.0.0.0:8888` stay
//! text). A variable that names no key is an error naming the variable.
//! Variables with a single underscore (`HOTPLEX_CONFIG`, secret sources) are
//! never overrides.
//!
//! Owns: this name/value mapping. Must not: read the process environment (the
//! snapshot is passed in) or log values (they may be secrets).

use super::error::{ConfigError, did_you_mean};
use super::tree::{Entry, Node, Src, Val, is_user_map, parse_yaml};

/// Prefix of an override variable.
pub const PREFIX: &str = "HOTPLEX__";

/// Apply every `HOTPLEX__…` variable of `env` to `tree` (in name order); return the errors.
pub(crate) fn apply_overrides(tree: &mut Node, env: &[(String, String)]) -> Vec<ConfigError> {
    let mut vars: Vec<&(String, String)> = env.iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
    // Last occurrence of a name wins, then name order for determinism.
    vars.reverse();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars.dedup_by(|a, b| a.0 == b.0);
    let mut errors = Vec::new();
    for (name, value) in vars {
        if let Err((key, message)) = apply_one(tree, name, value) {
            errors.push(ConfigError { key, message, source: Some(name.clone()) });
        }
    }
    errors
}

/// Apply one variable; on error return (key path as far as understood, message).
fn apply_one(root: &mut Node, var: &str, raw: &str) -> Result<(), (String, String)> {
    let rest = &var[PREFIX.len()..];
    let segs: Vec<&str> = rest.split("__").collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err((String::new(), format!("{var}: empty key segment (segments are joined by a double underscore)")));
    }
    let mut path: Vec<String> = Vec::new();
    let mut node: &mut Node = root;
    // Below a user-map entry or a null (unset optional section) there is no schema to
    // match against: new keys are lowercased and the final deserialisation checks them.
    let mut schemaless = false;
    for (i, seg) in segs.iter().enumerate() {
        let last = i + 1 == segs.len();
        let user_map = is_user_map(&path.iter().map(String::as_str).collect::<Vec<_>>());
        if matches!(node.v, Val::Null) {
            node.v = Val::Map(Vec::new());
            schemaless = true;
        }
        let kind = node.kind();
        let Val::Map(entries) = &mut node.v else {
            let shown = path.join(".");
            let var_hint = format!("HOTPLEX__{}", shown.to_uppercase().replace('.', "__"));
            return Err((
                shown.clone(),
                format!("{var} names no key: {shown} is {kind}, set it as a whole ({var_hint})"),
            ));
        };
        let found = if user_map {
            entries.iter().position(|e| e.key == *seg)
        } else {
            entries.iter().position(|e| e.key.eq_ignore_ascii_case(seg))
        };
        let idx = match found {
            Some(idx) => idx,
            None if user_map || schemaless => {
                let key = if user_map { seg.to_string() } else { seg.to_ascii_lowercase() };
                entries.push(Entry {
                    key,
                    key_src: Src::Env(var.to_string()),
                    node: Node {
                        v: if last { Val::Null } else { Val::Map(Vec::new()) },
                        src: Src::Env(var.to_string()),
                    },
                });
                if user_map {
                    schemaless = true;
                }
                entries.len() - 1
            }
            None => {
                let lower = seg.to_ascii_lowercase();
                let mut shown = path.clone();
                shown.push(lower.clone());
                let hint = did_you_mean(&lower, entries.iter().map(|e| e.key.as_str()))
                    .map(|s| format!("; did you mean `{s}`?"))
                    .unwrap_or_default();
                return Err((shown.join("."), format!("{var} names no configuration key{hint}")));
            }
        };
        let entry = &mut entries[idx];
        if user_map && found.is_some() {
            schemaless = true;
        }
        path.push(entry.key.clone());
        entry.key_src = Src::Env(var.to_string());
        node = &mut entry.node;
    }
    let is_string = matches!(node.v, Val::Str(_));
    let absent = matches!(node.v, Val::Null);
    *node = parse_value(var, raw, is_string, absent).map_err(|m| (path.join("."), m))?;
    Ok(())
}

/// Parse the variable's text as a YAML flow value. `is_string`: the key holds a string, so
/// a non-string scalar is taken verbatim; `is_string || absent`: unparsable text is kept as text.
fn parse_value(var: &str, raw: &str, is_string: bool, absent: bool) -> Result<Node, String> {
    let src = Src::Env(var.to_string());
    let text = || Node { v: Val::Str(raw.to_string()), src: src.clone() };
    if raw.is_empty() {
        return Ok(text());
    }
    match parse_yaml(raw, &|_, _| src.clone()) {
        Ok(node) => match node.v {
            Val::Str(_) | Val::Seq(_) | Val::Map(_) => Ok(node),
            _ if is_string => Ok(text()),
            _ => Ok(node),
        },
        Err(_) if is_string || absent => Ok(text()),
        Err(e) => Err(format!("value of {var} is not a valid YAML flow value ({})", e.message)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::parse_path;

    fn base() -> Node {
        parse_yaml(
            "gateway: {listen: '127.0.0.1:8888', reactors: 0}\nworkers: {pi: {env: {}}}\nsecurity: {worker: {run_as: null}}\n",
            &|_, _| Src::Default,
        )
        .unwrap()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn overrides() {
        let mut t = base();
        let errs = apply_overrides(
            &mut t,
            &env(&[
                ("HOTPLEX__GATEWAY__LISTEN", "0.0.0.0:9000"),
                ("HOTPLEX__gateway__Reactors", "4"),
                ("HOTPLEX__WORKERS__PI__ENV__PI_LOG", "1"),
                ("HOTPLEX__SECURITY__WORKER__RUN_AS__UID", "1000"),
                ("HOTPLEX_CONFIG", "/x"),
            ]),
        );
        assert!(errs.is_empty(), "{errs:?}");
        let at = |p: &str| t.lookup(&parse_path(p)).map(|n| n.v.clone());
        assert_eq!(at("gateway.listen"), Some(Val::Str("0.0.0.0:9000".into())));
        assert_eq!(at("gateway.reactors"), Some(Val::UInt(4)));
        assert_eq!(at("workers.pi.env.PI_LOG"), Some(Val::UInt(1)));
        assert_eq!(at("security.worker.run_as.uid"), Some(Val::UInt(1000)));
        assert_eq!(t.lookup(&parse_path("gateway.listen")).unwrap().src, Src::Env("HOTPLEX__GATEWAY__LISTEN".into()));
    }

    #[test]
    fn unknown_variables_are_errors() {
        let mut t = base();
        let errs = apply_overrides(
            &mut t,
            &env(&[("HOTPLEX__GATEWAY__LISTN", "x"), ("HOTPLEX__NOPE", "1"), ("HOTPLEX__GATEWAY__LISTEN__X", "1")]),
        );
        assert_eq!(errs.len(), 3);
        let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(
            lines.iter().any(|l| l.contains("gateway.listn")
                && l.contains("did you mean `listen`")
                && l.ends_with("[HOTPLEX__GATEWAY__LISTN]")),
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("[HOTPLEX__NOPE]")));
        assert!(lines.iter().any(|l| l.contains("is a string")));
    }
}
