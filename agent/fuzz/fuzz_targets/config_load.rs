//! Fuzzes the agent's configuration loader: the input is a YAML file, optionally followed by a NUL byte and
//! environment lines (`DD_DOGSTATSD_PORT=8125`). Loading must never panic: it gives a configuration or one
//! error sentence. An API key (16+ letters and digits) never shows in the configuration's debug output or in an error.
#![no_main]

use kelpie_agent::config::Config;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        let base = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("kelpie-fuzz-config-{}.yaml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let (yaml, env) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let path = file();
    std::fs::write(path, yaml).expect("write the config file");
    let mut vars = BTreeMap::new();
    for line in String::from_utf8_lossy(env).lines() {
        if let Some((k, v)) = line.split_once('=') {
            vars.insert(k.to_string(), v.to_string());
        }
    }
    match Config::load_from(Some(path), vars) {
        Ok(cfg) => {
            // Only keys that look like keys (16+ letters and digits, Datadog's are 32 hex digits): a shorter
            // or punctuated one can be part of a field name by chance (the first finding, `apper_profiles:`
            // in `dogstatsd_mapper_profiles:`).
            if let Some(key) = cfg.api_key.as_ref().map(|k| k.expose().to_string()) {
                if key.len() >= 16 && key.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    assert!(!format!("{cfg:?}").contains(&key), "the API key in Debug");
                }
            }
        }
        Err(e) => assert!(!e.to_string().trim().is_empty()),
    }
});
