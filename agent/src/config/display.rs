//! The configuration shown to people: `kelpie agent --help`'s list of settings, `kelpie config`'s table of the
//! values in force with where each came from, and the warnings for unknown keys and misspelt variables. All
//! of it is read from [`KEYS`], so a new setting shows up everywhere at once.

use super::keys::{Source, KEYS};
use super::{keys, Config};
use std::collections::BTreeMap;

/// The settings as `kelpie agent --help` lists them: environment variable, key, default and meaning.
pub fn env_help() -> String {
    let mut out = String::from(
        "Settings (YAML key in the --config file, or the environment variable, which wins; default in brackets):\n",
    );
    for k in KEYS {
        let env = k.env_name();
        let key = if k.in_file() { k.name } else { "" };
        let default = k.default_text();
        out.push_str(&format!(
            "  {env:<42} {key:<37} [{default}]\n      {}\n",
            k.doc
        ));
    }
    out.push_str(
        "\nkelpie config prints the configuration in force, with where each value came from.\n",
    );
    out
}

impl Config {
    /// One warning per unknown key of the file and per likely misspelt `DD_*` variable, with "did you mean".
    pub fn unknown_key_warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .unknown_keys
            .iter()
            .map(|key| match keys::suggest_key(key) {
                Some(k) => {
                    format!("unknown configuration key `{key}` is ignored; did you mean `{k}`?")
                }
                None => format!("unknown configuration key `{key}` is ignored"),
            })
            .collect();
        for (name, key) in &self.misspelt_env {
            out.push(format!(
                "environment variable {name} is not a kelpie setting and is ignored; did you mean {}?",
                keys::key(key).env_name()
            ));
        }
        out
    }

    /// The configuration in force, one `(setting, value, where it came from)` per entry of [`KEYS`], secrets
    /// redacted (`api_key` shows its last 4 characters only).
    pub fn effective(&self) -> Vec<(String, String, String)> {
        let derived: BTreeMap<&str, String> = [
            ("dd_url", self.dd_url.clone()),
            ("hostname", self.hostname.clone()),
            (
                "KELPIE_FLUSH_INTERVAL",
                humantime::format_duration(self.flush_interval).to_string(),
            ),
            ("KELPIE_STATUS_ADDR", self.status_addr.to_string()),
            (
                "KELPIE_PROFILES_ADDR",
                self.profiles_addr.map_or("off".into(), |a| a.to_string()),
            ),
            ("KELPIE_HISTORY_MEMORY", self.history_memory.to_string()),
            ("KELPIE_PPROF", self.pprof.to_string()),
            ("HOST_PROC", self.host_proc.display().to_string()),
            ("HOST_SYS", self.host_sys.display().to_string()),
            ("log_level", self.log_level.clone()),
        ]
        .into_iter()
        .collect();
        KEYS.iter()
            .map(|k| {
                let key = k.name;
                let env = k.env_name();
                let (value, source) = match self.given.get(key) {
                    Some((v, origin)) => (v.clone(), origin.clone()),
                    None if k.source == Source::Env
                        && std::env::var_os(&env).is_some()
                        && derived.contains_key(key) =>
                    {
                        (derived[key].clone(), format!("environment variable {env}"))
                    }
                    None => match derived.get(key) {
                        Some(v) if key == "dd_url" => (v.clone(), "from site".to_string()),
                        Some(v) if key == "hostname" => (v.clone(), "detected".to_string()),
                        _ => (k.default_text().to_string(), "default".to_string()),
                    },
                };
                let value = if key == "api_key" && value != "none" {
                    crate::secret::mask(&value)
                } else {
                    value
                };
                (key.to_string(), value, source)
            })
            .collect()
    }
}
