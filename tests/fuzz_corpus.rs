//! Replays every committed fuzz seed and every past crash through the fuzz
//! entry functions on stable (security.md §13): `fuzz/corpus/<target>/*` and
//! `fuzz/regressions/<target>/*`.

use std::path::Path;

#[test]
fn every_seed_and_regression_passes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut total = 0;
    for (name, run) in hotplex::fuzzing::TARGETS {
        let mut seeds = 0;
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else { continue };
            let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
            files.sort();
            for f in files {
                let data = std::fs::read(&f).unwrap();
                let r = std::panic::catch_unwind(|| run(&data));
                assert!(r.is_ok(), "{name}: {} panics", f.display());
                seeds += 1;
            }
        }
        assert!(seeds > 0, "{name}: no committed seeds");
        total += seeds;
    }
    eprintln!("replayed {total} fuzz inputs");
}

unsafe extern "C" {
    /// glibc's legacy parser, the reference the fuzz target's port must match.
    fn inet_aton(cp: *const std::ffi::c_char, inp: *mut u32) -> std::ffi::c_int;
}

fn glibc_inet_aton(s: &str) -> Option<std::net::Ipv4Addr> {
    let c = std::ffi::CString::new(s).ok()?;
    let mut addr = 0u32;
    // SAFETY: `c` is NUL-terminated; `struct in_addr` is one u32.
    let ok = unsafe { inet_aton(c.as_ptr(), &mut addr) };
    (ok != 0).then(|| std::net::Ipv4Addr::from(u32::from_be(addr)))
}

#[test]
fn inet_aton_port_matches_glibc() {
    let alphabet = b"0123456789xXafAF. 8";
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut checked = 0;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 14) as usize;
        let s: String = (0..len).map(|k| alphabet[((x >> (4 * k)) % alphabet.len() as u64) as usize] as char).collect();
        assert_eq!(hotplex::fuzzing::inet_aton(&s), glibc_inet_aton(&s), "{s:?}");
        checked += 1;
    }
    for s in ["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "4294967295", "4294967296", "0xffffffff", "1.0xffffff"]
    {
        assert_eq!(hotplex::fuzzing::inet_aton(s), glibc_inet_aton(s), "{s:?}");
    }
    assert!(checked > 0);
}
