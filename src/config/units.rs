//! Value types of the configuration that are more than a plain number or string:
//! durations, byte sizes, listener addresses, CIDRs, the umask and the
//! `true | false | auto` switch — their parsers, their canonical spelling and
//! their serde glue (operations.md "Conventions").
//!
//! Owns: the grammar of these values and their error messages. Must not: do any
//! I/O, resolve names (no DNS: `localhost` is the only name and maps to
//! 127.0.0.1), or know which key a value belongs to (the caller adds the path).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// The error for a bare number where a duration is expected (operations.md Conventions).
pub const DURATION_NEEDS_UNIT: &str = "durations need a unit, e.g. \"30s\"";

// ---------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------

/// Parse `<int><unit>[<int><unit>…]` with units `ms s m h d` (`"500ms"`, `"1h30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    if text.is_empty() {
        return Err(format!("empty duration; {DURATION_NEEDS_UNIT}"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DURATION_NEEDS_UNIT.to_string());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total_ms: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("invalid duration {text:?}: expected a number at {:?}", &text[start..]));
        }
        let number: u64 = text[start..i].parse().map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let factor: u64 = match &text[unit_start..i] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("invalid duration {text:?}: {DURATION_NEEDS_UNIT}")),
            other => return Err(format!("invalid duration {text:?}: unknown unit {other:?} (units: ms s m h d)")),
        };
        let part = number.checked_mul(factor).ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
        total_ms = total_ms.checked_add(part).ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Canonical spelling: largest units first, zero parts omitted (`90s` → `"1m30s"`, zero → `"0s"`).
/// Sub-millisecond parts cannot be configured and are dropped.
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400_000u128), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        let n = ms / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            ms -= n * size;
        }
    }
    out
}

/// serde glue for `Duration` fields: `#[serde(with = "units::duration")]`.
pub mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_duration(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Duration, E> {
                Err(E::custom(DURATION_NEEDS_UNIT))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Duration, E> {
                Err(E::custom(DURATION_NEEDS_UNIT))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Duration, E> {
                Err(E::custom(DURATION_NEEDS_UNIT))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Sizes
// ---------------------------------------------------------------------------

/// Parse a byte size: digits (bytes), or digits + `B KiB MiB GiB` (`"512KiB"`).
/// Decimal units (`KB`, `MB`, `GB`, …) are rejected as ambiguous.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    if digits_end == 0 {
        return Err(format!("invalid size {text:?}: expected bytes or a number with B, KiB, MiB or GiB"));
    }
    let number: u64 = t[..digits_end].parse().map_err(|_| format!("invalid size {text:?}: number too large"))?;
    let unit = t[digits_end..].trim_start();
    let factor: u64 = match unit {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" | "K" | "k" | "MB" | "M" | "GB" | "G" | "TB" | "T" | "Kb" | "Mb" | "Gb" => {
            return Err(format!(
                "invalid size {text:?}: unit {unit:?} is ambiguous (decimal or binary?); use B, KiB, MiB or GiB"
            ));
        }
        other => return Err(format!("invalid size {text:?}: unknown unit {other:?} (units: B KiB MiB GiB)")),
    };
    number.checked_mul(factor).ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// serde glue for byte sizes stored as `u64`: `#[serde(with = "units::size")]`.
/// Serialised as the plain number of bytes.
pub mod size {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*n)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = u64;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size: bytes, or a string such as \"512KiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
                parse_size(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
                Ok(v)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
                u64::try_from(v).map_err(|_| E::custom(format!("a size cannot be negative (got {v})")))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
                Err(E::custom(format!("a size is a whole number of bytes (got {v})")))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// Listener addresses
// ---------------------------------------------------------------------------

/// Parse `IP:port`, `[IPv6]:port` or `localhost:port` (→ 127.0.0.1). No DNS.
pub fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    if let Some(port) = text.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("invalid port in {text:?}"))?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    SocketAddr::from_str(text)
        .map_err(|_| format!("expected IP:port or localhost:port (no host names: no DNS at startup), got {text:?}"))
}

/// serde glue for listener addresses: `#[serde(with = "units::listen")]`.
pub mod listen {
    use super::*;

    pub fn serialize<S: Serializer>(a: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(a)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        parse_listen(&text).map_err(de::Error::custom)
    }
}

/// Loopback in the sense of security.md: 127.0.0.0/8 or ::1 (also ::ffff:127.x.y.z).
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

// ---------------------------------------------------------------------------
// CIDRs
// ---------------------------------------------------------------------------

/// An IP network (`10.0.0.0/8`, `::1/128`); a bare address means a single host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses are compared as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => mask_eq(u32::from(net).into(), u32::from(ip).into(), self.prefix, 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => mask_eq(u128::from(net), u128::from(ip), self.prefix, 128),
            _ => false,
        }
    }
}

fn mask_eq(a: u128, b: u128, prefix: u8, bits: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(bits - prefix);
    (a >> shift) == (b >> shift)
}

impl From<IpAddr> for Cidr {
    /// A single-host network (`/32` or `/128`).
    fn from(addr: IpAddr) -> Cidr {
        Cidr { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (ip_text, prefix_text) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = ip_text.parse().map_err(|_| format!("invalid CIDR {text:?}: expected e.g. 10.0.0.0/8"))?;
        let bits: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits && !p.starts_with('+') => n,
                _ => return Err(format!("invalid CIDR {text:?}: prefix must be 0–{bits}")),
            },
        };
        let value: u128 = match addr {
            IpAddr::V4(v4) => u32::from(v4).into(),
            IpAddr::V6(v6) => v6.into(),
        };
        let host_bits = u32::from(bits - prefix);
        let host_mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        if value & host_mask != 0 {
            return Err(format!("invalid CIDR {text:?}: address has bits set beyond the /{prefix} prefix"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(de::Error::custom)
    }
}

// ---------------------------------------------------------------------------
// umask
// ---------------------------------------------------------------------------

/// A file-creation mask, written as a quoted octal string (`"0077"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Umask(pub u32);

impl Serialize for Umask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for Umask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Umask, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Umask;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal umask string such as \"0077\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Umask, E> {
                let digits = v.strip_prefix("0o").unwrap_or(v);
                if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(E::custom(format!("invalid umask {v:?}: expected octal digits such as \"0077\"")));
                }
                let n = u32::from_str_radix(digits, 8).map_err(E::custom)?;
                if n > 0o777 {
                    return Err(E::custom(format!("invalid umask {v:?}: at most \"0777\"")));
                }
                Ok(Umask(n))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Umask, E> {
                Err(E::custom(format!("umask must be a quoted octal string such as \"0077\" (got the number {v})")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Umask, E> {
                Err(E::custom(format!("umask must be a quoted octal string such as \"0077\" (got the number {v})")))
            }
        }
        d.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------
// enabled: true | false | auto
// ---------------------------------------------------------------------------

/// `workers.<type>.enabled`: YAML `true`, `false` or `"auto"` (enabled iff the command resolves).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Enabled {
    True,
    #[default]
    False,
    Auto,
}

impl Serialize for Enabled {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Enabled::True => s.serialize_bool(true),
            Enabled::False => s.serialize_bool(false),
            Enabled::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Enabled {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Enabled, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Enabled;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("true, false or \"auto\"")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Enabled, E> {
                Ok(if v { Enabled::True } else { Enabled::False })
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Enabled, E> {
                match v {
                    "auto" => Ok(Enabled::Auto),
                    _ => Err(E::custom(format!("expected true, false or \"auto\", got {v:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1m500ms"), Ok(Duration::from_millis(60_500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("30"), Err(DURATION_NEEDS_UNIT.to_string()));
        assert_eq!(parse_duration("0"), Err(DURATION_NEEDS_UNIT.to_string()));
        for bad in
            ["", "s", "1.5s", "-1s", "1 s", "1S", "1us", "1h30", "30sec", "99999999999999999999s", "213503982334601d"]
        {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(parse_duration("30").unwrap_err().contains("need a unit"));
    }

    #[test]
    fn duration_format_round_trips() {
        for (text, canon) in [("90s", "1m30s"), ("24h", "1d"), ("1500ms", "1s500ms"), ("0ms", "0s"), ("1h30m", "1h30m")]
        {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), canon);
            assert_eq!(parse_duration(canon), Ok(d));
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512KiB"), Ok(512 * 1024));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64B"), Ok(64));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert!(parse_size("1MB").unwrap_err().contains("ambiguous"));
        assert!(parse_size("1kB").unwrap_err().contains("ambiguous"));
        assert!(parse_size("1G").unwrap_err().contains("ambiguous"));
        for bad in ["", "MiB", "1.5MiB", "-1", "1mib", "1TiB", "99999999999GiB"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("localhost:8888"), Ok("127.0.0.1:8888".parse().unwrap()));
        assert_eq!(parse_listen("0.0.0.0:0"), Ok("0.0.0.0:0".parse().unwrap()));
        assert_eq!(parse_listen("[::1]:9999"), Ok("[::1]:9999".parse().unwrap()));
        assert!(parse_listen("example.com:80").is_err());
        assert!(parse_listen("127.0.0.1").is_err());
        assert!(parse_listen("localhost:99999").is_err());
        assert!(is_loopback("127.1.2.3".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("0.0.0.0".parse().unwrap()));
    }

    #[test]
    fn cidrs() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(c.contains("::ffff:10.0.0.5".parse().unwrap()));
        assert!(!c.contains("11.0.0.1".parse().unwrap()));
        let host: Cidr = "127.0.0.1".parse().unwrap();
        assert_eq!(host.to_string(), "127.0.0.1/32");
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd00:ec2::254".parse().unwrap()));
        assert!("10.0.0.5/8".parse::<Cidr>().is_err());
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
    }
}
