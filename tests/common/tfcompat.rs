//! Helpers for the Terraform-compatibility tests: load a directory of `tests/tf_corpus/` (or files written for
//! the test) as `kelpie monitors` does, and find a monitor by its address.

use kelpie_monitors::load::{load_dir, LoadOptions, Loaded};
use kelpie_monitors::model::Monitor;
use std::path::{Path, PathBuf};

/// The corpus directory `dir` (under `tests/tf_corpus/`).
pub fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tf_corpus")
        .join(dir)
}

/// Loads the corpus directory `dir` with `opts`; asserts that it loads without an error.
pub fn load_with(dir: &str, opts: &LoadOptions) -> Loaded {
    let l = load_dir(&corpus(dir), opts);
    let errors: Vec<String> = l.errors.iter().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{dir}: {errors:#?}");
    l
}

/// Loads the corpus directory `dir` with the default options; asserts that it loads without an error.
pub fn load(dir: &str) -> Loaded {
    load_with(dir, &LoadOptions::default())
}

/// The monitor at `address`; panics, naming the ones there are, when there is none.
pub fn get<'a>(l: &'a Loaded, address: &str) -> &'a Monitor {
    l.monitors
        .iter()
        .find(|m| m.address == address)
        .unwrap_or_else(|| {
            let all: Vec<&str> = l.monitors.iter().map(|m| m.address.as_str()).collect();
            panic!("no monitor {address}; have {all:?}")
        })
}

/// The errors of loading `files` (name, text), with the temporary directory's path cut off.
pub fn errors_of(files: &[(&str, &str)], opts: &LoadOptions) -> Vec<String> {
    let t = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = t.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let prefix = format!("{}/", t.path().display());
    load_dir(t.path(), opts)
        .errors
        .iter()
        .map(|d| d.to_string().replace(&prefix, ""))
        .collect()
}
