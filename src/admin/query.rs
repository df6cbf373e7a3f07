//! Query strings of both HTTP APIs: `name=value` pairs, percent-decoded once
//! (`+` stays `+`, security.md §1.2 rule 3), each name at most once, and
//! every name consumed by the handler — a repeated, malformed or unknown
//! parameter is `400 invalid_parameter` naming it (operations.md §4.1).

use super::error::ApiError;

/// The parameters of one request, consumed by name.
#[derive(Debug, Default)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Split and decode `query` (the part after `?`, if any).
    pub fn parse(query: Option<&str>) -> Result<Params, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (raw_name, raw_value) = part.split_once('=').unwrap_or((part, ""));
            let name = crate::security::credentials::percent_decode(raw_name)
                .ok_or_else(|| ApiError::invalid_parameter(raw_name))?;
            let value = crate::security::credentials::percent_decode(raw_value)
                .ok_or_else(|| ApiError::invalid_parameter(&name))?;
            if pairs.iter().any(|(n, _)| *n == name) {
                return Err(ApiError::invalid_parameter(&name));
            }
            pairs.push((name, value));
        }
        Ok(Params { pairs })
    }

    /// Take a parameter's value.
    pub fn take(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(n, _)| n == name)?;
        Some(self.pairs.remove(i).1)
    }

    /// An integer in `min..=max`, `default` when absent.
    pub fn int(&mut self, name: &str, min: u64, max: u64, default: u64) -> Result<u64, ApiError> {
        match self.take(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) && !v.starts_with('+') => Ok(n),
                _ => Err(ApiError::invalid_parameter(name)),
            },
        }
    }

    /// A comma list whose items are all in `allowed` (`None` when absent; empty items rejected).
    pub fn list(&mut self, name: &str, allowed: &[&str]) -> Result<Option<Vec<String>>, ApiError> {
        let Some(v) = self.take(name) else { return Ok(None) };
        let mut out: Vec<String> = Vec::new();
        for item in v.split(',') {
            if !allowed.contains(&item) {
                return Err(ApiError::invalid_parameter(name));
            }
            if !out.iter().any(|o| o == item) {
                out.push(item.to_owned());
            }
        }
        Ok(Some(out))
    }

    /// Every parameter must have been taken.
    pub fn finish(self) -> Result<(), ApiError> {
        match self.pairs.first() {
            Some((n, _)) => Err(ApiError::invalid_parameter(n)),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_take_finish() {
        let mut p = Params::parse(Some("limit=5&state=idle,running&owner=a%7Cb+c")).unwrap();
        assert_eq!(p.int("limit", 1, 500, 50).unwrap(), 5);
        assert_eq!(p.int("offset", 0, u64::MAX, 0).unwrap(), 0);
        assert_eq!(p.list("state", &["idle", "running"]).unwrap(), Some(vec!["idle".into(), "running".into()]));
        assert_eq!(p.take("owner").as_deref(), Some("a|b+c"));
        p.finish().unwrap();
    }

    #[test]
    fn rejections_name_the_parameter() {
        let param = |e: ApiError| e.details.unwrap()["parameter"].as_str().unwrap().to_owned();
        assert_eq!(param(Params::parse(Some("a=1&a=2")).unwrap_err()), "a");
        assert_eq!(param(Params::parse(Some("a=%zz")).unwrap_err()), "a");
        let mut p = Params::parse(Some("limit=0&bogus=1")).unwrap();
        assert_eq!(param(p.int("limit", 1, 500, 50).unwrap_err()), "limit");
        assert_eq!(param(p.finish().unwrap_err()), "bogus");
        let mut p = Params::parse(Some("limit=-1&state=idle,,x&x=+5")).unwrap();
        assert!(p.int("limit", 0, 9, 0).is_err());
        assert!(p.list("state", &["idle"]).is_err());
        assert!(p.int("x", 0, 9, 0).is_err());
        assert!(Params::parse(None).unwrap().finish().is_ok());
    }
}
