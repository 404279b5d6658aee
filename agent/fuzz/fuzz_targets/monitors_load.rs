//! Fuzzes the monitors loader (`kelpie monitors validate`): arbitrary bytes, or a mutated valid file, written
//! as `main.tf` of a directory and loaded. It must never panic or hang, and every error must be a sentence.
#![no_main]

use kelpie_monitors::load::{load_dir, LoadOptions};
use libfuzzer_sys::fuzz_target;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One scratch directory per fuzzing process, in memory when /dev/shm exists.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let d = base.join(format!("kelpie-fuzz-monitors-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch directory");
        d
    })
}

fuzz_target!(|data: &[u8]| {
    let d = dir();
    std::fs::write(d.join("main.tf"), data).expect("write main.tf");
    let loaded = load_dir(d, &LoadOptions::default());
    for e in &loaded.errors {
        assert!(!e.to_string().trim().is_empty());
    }
    for m in &loaded.monitors {
        let _ = m.payload("fuzz", "main.tf");
    }
});
