//! Strict base64 for credentials and key files (security.md §1.3): the URL-safe
//! alphabet without padding for JWT segments and JWKS members, the standard
//! alphabet with padding for PEM bodies. Both decoders accept only the one
//! canonical encoding of a byte string: no whitespace, no stray padding, length
//! mod 4 ≠ 1, and the unused low bits of the last character zero (a lenient
//! decoder would map several strings to the same bytes).
//!
//! Owns: encoding and decoding. Must not: allocate more than the output needs,
//! panic on any input, or accept a second spelling of the same bytes.

const URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Input that is not the canonical encoding of anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B64Error;

fn value(alphabet: &[u8; 64], c: u8) -> Option<u8> {
    // Table-free and branch-light; inputs are public (token text), so no constant-time need.
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        _ if c == alphabet[62] => 62,
        _ if c == alphabet[63] => 63,
        _ => return None,
    };
    Some(v)
}

fn decode_unpadded(alphabet: &[u8; 64], input: &[u8]) -> Result<Vec<u8>, B64Error> {
    if input.len() % 4 == 1 {
        return Err(B64Error);
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 2);
    for chunk in input.chunks(4) {
        let mut acc: u32 = 0;
        for &c in chunk {
            acc = (acc << 6) | u32::from(value(alphabet, c).ok_or(B64Error)?);
        }
        match chunk.len() {
            4 => out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]),
            3 => {
                // 18 bits: 16 data bits + 2 unused that must be zero
                if acc & 0b11 != 0 {
                    return Err(B64Error);
                }
                out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]);
            }
            2 => {
                // 12 bits: 8 data bits + 4 unused that must be zero
                if acc & 0b1111 != 0 {
                    return Err(B64Error);
                }
                out.push((acc >> 4) as u8);
            }
            _ => return Err(B64Error),
        }
    }
    Ok(out)
}

/// Strict base64url without padding (RFC 7515 §2 "Base64url Encoding"), canonical only.
pub fn decode_url(input: &[u8]) -> Result<Vec<u8>, B64Error> {
    decode_unpadded(URL, input)
}

/// Strict standard base64 with mandatory padding (PEM bodies once the line breaks are removed).
pub fn decode_std(input: &[u8]) -> Result<Vec<u8>, B64Error> {
    if input.len() % 4 != 0 {
        return Err(B64Error);
    }
    let pad = input.iter().rev().take_while(|&&c| c == b'=').count();
    if pad > 2 {
        return Err(B64Error);
    }
    decode_unpadded(STD, &input[..input.len() - pad])
}

fn encode(alphabet: &[u8; 64], input: &[u8], pad: bool) -> String {
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[((n >> (18 - 6 * i)) & 63) as usize]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// base64url without padding.
pub fn encode_url(input: &[u8]) -> String {
    encode(URL, input, false)
}

/// Standard base64 with padding.
pub fn encode_std(input: &[u8]) -> String {
    encode(STD, input, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4648_vectors() {
        for (raw, std) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode_std(raw.as_bytes()), std);
            assert_eq!(decode_std(std.as_bytes()).unwrap(), raw.as_bytes());
            let url = std.trim_end_matches('=');
            assert_eq!(encode_url(raw.as_bytes()), url);
            assert_eq!(decode_url(url.as_bytes()).unwrap(), raw.as_bytes());
        }
    }

    #[test]
    fn strictness() {
        assert!(decode_url(b"Zg==").is_err(), "padding");
        assert!(decode_url(b"Zh").is_err(), "non-zero unused bits");
        assert!(decode_url(b"Zm9").is_err(), "non-zero unused bits (3 chars)");
        assert!(decode_url(b"Zm8").is_ok());
        assert!(decode_url(b"Z").is_err(), "length mod 4 = 1");
        assert!(decode_url(b"Zm 9v").is_err(), "whitespace");
        assert!(decode_url(b"Zm+v").is_err(), "standard alphabet");
        assert!(decode_url(b"-_-_").is_ok());
        assert!(decode_std(b"Zg=").is_err());
        assert!(decode_std(b"Zg").is_err());
        assert!(decode_std(b"Zh==").is_err());
        assert!(decode_std(b"Z===").is_err());
        assert!(decode_std(b"Zg==Zg==").is_err(), "padding inside");
        assert!(decode_std(b"-_-_").is_err());
    }

    /// Differential against the `base64` crate's strict engines (URL_SAFE_NO_PAD and STANDARD,
    /// canonical trailing bits), the ones security.md §1.3 names.
    #[test]
    fn agrees_with_the_base64_crate() {
        use base64::Engine;
        use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
        let chars = b"AQgwZz09+/-_=a. \n";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let len = (next() % 12) as usize;
            let input: Vec<u8> = (0..len).map(|_| chars[(next() % chars.len() as u64) as usize]).collect();
            assert_eq!(
                decode_url(&input).ok(),
                URL_SAFE_NO_PAD.decode(&input).ok(),
                "{:?}",
                String::from_utf8_lossy(&input)
            );
            assert_eq!(decode_std(&input).ok(), STANDARD.decode(&input).ok(), "{:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn round_trip_all_lengths_and_bytes() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..data.len() {
            let s = &data[..n];
            assert_eq!(decode_url(encode_url(s).as_bytes()).unwrap(), s);
            assert_eq!(decode_std(encode_std(s).as_bytes()).unwrap(), s);
        }
    }
}
