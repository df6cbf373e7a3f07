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
