//! The configuration's tests: defaults, sources, checks and their messages, the example file, `--help` and
//! `kelpie config`.

use super::*;
use keys::KEYS;

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(yaml: Option<&str>, pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kelpie.yaml");
    match yaml {
        Some(y) => {
            std::fs::write(&path, y).unwrap();
            Config::load_from(Some(&path), env(pairs))
        }
        None => Config::load_from(Some(Path::new("/nonexistent/kelpie.yaml")), env(pairs)).or_else(
            |_| {
                std::fs::write(&path, "").unwrap();
                Config::load_from(Some(&path), env(pairs))
            },
        ),
    }
}

#[test]
fn defaults_match_spec() {
    let c = load(None, &[("DD_HOSTNAME", "h1")]).unwrap();
    assert_eq!(c.dogstatsd_port, 8125);
    assert_eq!(c.bind_host, "localhost");
    assert_eq!(c.dd_url, "https://api.datadoghq.com");
    assert_eq!(c.dogstatsd_buffer_size, 8192);
    assert_eq!(c.histogram_aggregates, ["max", "median", "avg", "count"]);
    assert_eq!(c.histogram_percentiles, [0.95]);
    assert_eq!(c.memory_limit, 256 * 1024 * 1024);
    assert_eq!(c.flush_interval, Duration::from_secs(10));
    assert_eq!(c.status_addr, "127.0.0.1:5002".parse().unwrap());
    assert_eq!(c.mode(), "local");
    assert_eq!(c.hostname, "h1");
    assert!(c.container_collection);
    assert_eq!(c.dogstatsd_expiry_seconds, 300);
}

#[test]
fn env_overrides_file() {
    let c = load(
        Some("dogstatsd_port: 9000\ntags: [a:b, c:d]\nsite: datadoghq.eu\napi_key: x\n"),
        &[("DD_DOGSTATSD_PORT", "9125"), ("DD_ENV", "prod")],
    )
    .unwrap();
    assert_eq!(c.dogstatsd_port, 9125);
    assert_eq!(c.host_tags, ["a:b", "c:d", "env:prod"]);
    assert_eq!(c.dd_url, "https://api.datadoghq.eu");
    assert_eq!(c.mode(), "forwarding");
    // The status-page history is for local mode; forwarding turns it off unless asked for.
    assert_eq!(c.history_memory, 0);
    let c = load(Some("api_key: x\n"), &[("KELPIE_HISTORY_MEMORY", "8MiB")]).unwrap();
    assert_eq!(c.history_memory, 8 << 20);
}

#[test]
fn env_lists_are_space_or_comma_separated() {
    let c = load(
        None,
        &[
            ("DD_TAGS", "team:infra  role:web,zone:a"),
            ("DD_HISTOGRAM_PERCENTILES", "0.5 0.99"),
            ("DD_HISTOGRAM_AGGREGATES", "max min sum"),
        ],
    )
    .unwrap();
    assert_eq!(c.host_tags, ["team:infra", "role:web", "zone:a"]);
    assert_eq!(c.histogram_percentiles, [0.5, 0.99]);
    assert_eq!(c.histogram_aggregates, ["max", "min", "sum"]);
}

#[test]
fn origin_options_default_like_the_datadog_agent() {
    let c = load(None, &[]).unwrap();
    assert_eq!(c.dogstatsd_tag_cardinality, TagCardinality::Low);
    assert!(!c.dogstatsd_origin_detection_client);
    let c = load(
        Some("dogstatsd_tag_cardinality: high\n"),
        &[("DD_DOGSTATSD_ORIGIN_DETECTION_CLIENT", "true")],
    )
    .unwrap();
    assert_eq!(c.dogstatsd_tag_cardinality, TagCardinality::High);
    assert!(c.dogstatsd_origin_detection_client);
    let e = load(None, &[("DD_DOGSTATSD_TAG_CARDINALITY", "medium")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid value for `dogstatsd_tag_cardinality` (from environment variable DD_DOGSTATSD_TAG_CARDINALITY): \"medium\" is not a tag cardinality (none, low, orchestrator or high)"
    );
}

#[test]
fn container_tag_rules_and_filters_from_yaml_and_json_env() {
    let c = load(
        Some(
            "container_labels_as_tags:\n  com.docker.compose.service: compose_service\n\
             container_exclude: [\"image:^redis\"]\n",
        ),
        &[
            ("DD_DOCKER_LABELS_AS_TAGS", r#"{"build":"+build_id"}"#),
            ("DD_CONTAINER_ENV_AS_TAGS", r#"{"DEPLOY_COLOR":"color"}"#),
            ("DD_CONTAINER_INCLUDE", "name:^keep name:x{1,2}"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.container_tag_rules.labels,
        [
            TagRules::rule("com.docker.compose.service", "compose_service"),
            TagRules::rule("build", "+build_id"),
        ]
    );
    assert_eq!(
        c.container_tag_rules.env,
        [TagRules::rule("DEPLOY_COLOR", "color")]
    );
    let f = &c.container_metrics_filter;
    assert!(f.excludes("cache", "redis:7"));
    assert!(!f.excludes("keep-cache", "redis:7"));
    assert!(
        f.excludes("t", "amazon/amazon-ecs-pause:0.1.0"),
        "pause excluded by default"
    );
    let e = load(None, &[("DD_CONTAINER_EXCLUDE", "name:ok label:x")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid value for `container_exclude` (from environment variable DD_CONTAINER_EXCLUDE): \"name:ok label:x\" holds `label:x` is not a container filter: it must start with name: or image:"
    );
    let c = load(
        Some("statsd_metric_blocklist_match_prefix: true\n"),
        &[("DD_STATSD_METRIC_BLOCKLIST", "app.debug app.noisy.")],
    )
    .unwrap();
    assert_eq!(c.statsd_metric_blocklist, ["app.debug", "app.noisy."]);
    assert!(c.statsd_metric_blocklist_match_prefix);
    let e = load(None, &[("DD_CONTAINER_LABELS_AS_TAGS", "team=team")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("is not a mapping of names to tag keys"), "{e}");
}

/// The value docs/kelpie.example.yaml gives `key` on its commented-out `# key: value  # comment` line.
fn example_value(text: &str, key: &str) -> Option<Value> {
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&format!("# {key}:")))?;
    let value = line.split(" #").next().unwrap_or("").trim();
    Some(serde_yaml::from_str(value).unwrap_or(Value::Null))
}

/// docs/kelpie.example.yaml lists every key of [`KEYS`] with the default the table defines (and names every
/// environment-only setting), and its documented defaults, uncommented, are valid and are the defaults.
#[test]
fn the_example_config_documents_every_key_with_its_default() {
    let text = include_str!("../../../docs/kelpie.example.yaml");
    for k in KEYS {
        if !k.in_file() {
            assert!(
                text.contains(k.name),
                "{} is not named in docs/kelpie.example.yaml",
                k.name
            );
            continue;
        }
        assert!(
            text.contains(&format!("\n# {}:", k.name)),
            "{} is missing from docs/kelpie.example.yaml",
            k.name
        );
        let example = example_value(text, k.name).unwrap();
        let shown = match &example {
            Value::Sequence(items) => items
                .iter()
                .map(sources::value_text)
                .collect::<Vec<_>>()
                .join(" "),
            Value::Mapping(m) if m.is_empty() => String::new(),
            v => sources::value_text(v),
        };
        match k.default {
            keys::KeyDefault::Value(d) => assert_eq!(
                shown, d,
                "docs/kelpie.example.yaml gives {} a default other than config::KEYS's",
                k.name
            ),
            keys::KeyDefault::None => assert_eq!(
                shown, "",
                "docs/kelpie.example.yaml gives {} a default, config::KEYS none",
                k.name
            ),
            // Worked out at start: the load below checks the example's value is what it works out to.
            keys::KeyDefault::Derived(_) => {}
        }
    }
    let uncommented: Vec<&str> = text
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(rest)
                if keys::file_keys().any(|k| k.name == rest.split(':').next().unwrap_or("")) =>
            {
                rest
            }
            _ => l,
        })
        .collect();
    let mut c = load(Some(&uncommented.join("\n")), &[]).unwrap();
    let d = load(None, &[]).unwrap();
    // Given or not, the same values.
    c.given.clear();
    assert!(c.unknown_keys.is_empty(), "{:?}", c.unknown_keys);
    assert_eq!(format!("{c:?}"), format!("{d:?}"));
    crate::memory::aggregator_config(&c).unwrap();
}

#[test]
fn bad_values_name_key_origin_and_value() {
    let e = load(None, &[("DD_DOGSTATSD_PORT", "70000")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid value for `dogstatsd_port` (from environment variable DD_DOGSTATSD_PORT): \"70000\" is not a UDP port number (0-65535)"
    );
    let e = load(None, &[("KELPIE_FLUSH_INTERVAL", "ten seconds")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("KELPIE_FLUSH_INTERVAL") && e.contains("ten seconds"),
        "{e}"
    );
    let e = load(None, &[("DD_DOGSTATSD_SOCKET", "/no/such/dir/dsd.socket")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dogstatsd_socket") && e.contains("/no/such/dir"),
        "{e}"
    );
    let e = load(Some("dogstatsd_non_local_traffic: maybe\n"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dogstatsd_non_local_traffic") && e.contains("kelpie.yaml"),
        "{e}"
    );
    let e = load(None, &[("DD_MEMORY_LIMIT", "lots")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("memory_limit"), "{e}");
    let e = load(None, &[("DD_HISTOGRAM_PERCENTILES", "0.95 95")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("histogram_percentiles") && e.contains("\"95\""),
        "{e}"
    );
}

#[test]
fn log_level_is_checked_like_every_other_value() {
    let e = load(None, &[("DD_LOG_LEVEL", "verbose")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "invalid value for `log_level` (from environment variable DD_LOG_LEVEL): \"verbose\" is not a log level (trace, debug, info, warn, error, critical or off)"
    );
    for (given, level) in [
        ("WARNING", "warn"),
        ("critical", "error"),
        ("debug", "debug"),
    ] {
        let c = load(None, &[("DD_LOG_LEVEL", given)]).unwrap();
        assert_eq!(c.log_level, level);
    }
    let c = load(Some("log_format_json: true\n"), &[]).unwrap();
    assert!(c.log_format_json);
}

#[test]
fn unknown_keys_and_misspelt_env_vars_get_did_you_mean() {
    let c = load(
        Some("dogstatsd_prot: 9000\nlogs_enabled: true\n"),
        &[
            ("DD_DOGSTATSD_NON_LOCAL_TRAFIC", "true"),
            ("DD_LOGS_ENABLED", "true"),
        ],
    )
    .unwrap();
    assert_eq!(
        c.unknown_key_warnings(),
        [
            "unknown configuration key `dogstatsd_prot` is ignored; did you mean `dogstatsd_port`?",
            "unknown configuration key `logs_enabled` is ignored",
            "environment variable DD_DOGSTATSD_NON_LOCAL_TRAFIC is not a kelpie setting and is ignored; did you mean DD_DOGSTATSD_NON_LOCAL_TRAFFIC?",
        ]
    );
}

#[test]
fn effective_config_says_where_each_value_came_from_and_hides_the_key() {
    let c = load(
        Some("dogstatsd_port: 9000\n"),
        &[
            ("DD_API_KEY", "0123456789abcdef"),
            ("DD_SITE", "datadoghq.eu"),
        ],
    )
    .unwrap();
    let eff = c.effective();
    let get = |k: &str| eff.iter().find(|(key, _, _)| key == k).cloned().unwrap();
    let (_, v, src) = get("api_key");
    assert_eq!(v, "************cdef");
    assert_eq!(src, "environment variable DD_API_KEY");
    let (_, v, src) = get("dogstatsd_port");
    assert_eq!(v, "9000");
    assert!(src.ends_with("kelpie.yaml"), "{src}");
    assert_eq!(get("dd_url").1, "https://api.datadoghq.eu");
    assert_eq!(get("bind_host").2, "default");
    let help = env_help();
    for k in KEYS {
        assert!(
            eff.iter().any(|(key, _, _)| key == k.name),
            "{} missing from kelpie config",
            k.name
        );
        assert!(
            help.contains(&format!("{:<42}", k.env_name())) && help.contains(k.doc),
            "{} missing from agent --help",
            k.name
        );
    }
    assert!(help.contains("DD_DOGSTATSD_PORT"));
}

#[test]
fn unknown_keys_are_collected_not_fatal() {
    let c = load(Some("api_key: k\nlogs_enabled: true\nfoo: 1\n"), &[]).unwrap();
    assert_eq!(c.unknown_keys, ["logs_enabled", "foo"]);
}

#[test]
fn broken_yaml_is_one_sentence() {
    let e = load(Some("tags: [a\n"), &[]).unwrap_err().to_string();
    assert!(
        e.starts_with("config file ") && e.contains("not valid YAML"),
        "{e}"
    );
}

/// The buffer-size cap is one constant: the listener's is the config's, and the error text names it.
#[test]
fn the_buffer_size_cap_is_the_listeners() {
    assert_eq!(
        MAX_DOGSTATSD_BUFFER_SIZE,
        crate::dogstatsd::listen::MAX_BUFFER_SIZE
    );
    let e = load(None, &[("DD_DOGSTATSD_BUFFER_SIZE", "1048577")])
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with(&format!(
            "\"1048577\" is not a buffer size in bytes (1-{MAX_DOGSTATSD_BUFFER_SIZE})"
        )),
        "{e}"
    );
    let c = load(None, &[("DD_DOGSTATSD_BUFFER_SIZE", "1048576")]).unwrap();
    assert_eq!(c.dogstatsd_buffer_size, MAX_DOGSTATSD_BUFFER_SIZE);
    let e = load(None, &[("DD_DOGSTATSD_BUFFER_SIZE", "0")])
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("\"0\" must be at least 1 byte"), "{e}");
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("256MiB"), Some(256 << 20));
    assert_eq!(parse_size("1GB"), Some(1_000_000_000));
    assert_eq!(parse_size("1024"), Some(1024));
    assert_eq!(parse_size("12 parsecs"), None);
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("1m"), Some(Duration::from_secs(60)));
    assert_eq!(parse_duration("20"), Some(Duration::from_secs(20)));
    assert_eq!(parse_duration("soon"), None);
}

mod key_file_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn load_with_mode(yaml: &str, mode: u32) -> (Config, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelpie.yaml");
        std::fs::write(&path, yaml).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let cfg = Config::load_from(Some(&path), BTreeMap::new()).unwrap();
        (cfg, path, dir)
    }

    #[test]
    fn a_world_readable_file_holding_the_key_is_warned_about_by_name() {
        let (cfg, path, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o644);
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains(&path.display().to_string()));
        assert!(cfg.warnings[0].contains("mode 644"), "{}", cfg.warnings[0]);
        assert!(!cfg.warnings[0].contains("0123456789abcdef"));
        // Readable by its owner (and group) only: fine.
        let (cfg, _, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o640);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // World-readable without a key: fine too.
        let (cfg, _, _d) = load_with_mode("site: datadoghq.eu\n", 0o644);
        assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
        // The key in Debug output: never.
        let (cfg, _, _d) = load_with_mode("api_key: 0123456789abcdef0123\n", 0o600);
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    /// From the config_load fuzz target's first finding (agent/fuzz/README.md): a key given by the
    /// environment next to odd YAML. The finding itself was the target's (a 15-character key that happened
    /// to be part of a field name); the key of such a load, and a real-looking one, stay out of Debug.
    #[test]
    fn a_key_from_the_environment_stays_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kelpie.yaml");
        std::fs::write(&path, "api_keysd_mprefix: 0\"\n").unwrap();
        for key in ["apper_profiles:", "0123456789abcdef0123456789abcdef"] {
            let env: BTreeMap<String, String> = [
                ("DD_API_KEY".to_string(), key.to_string()),
                (
                    "DD_ISHTOGRAM_PERCENTILES".to_string(),
                    "0.5 0.99".to_string(),
                ),
            ]
            .into();
            let cfg = Config::load_from(Some(&path), env).unwrap();
            assert_eq!(cfg.api_key.as_ref().map(|k| k.expose()), Some(key));
            let shown = format!("{cfg:?}").replace("dogstatsd_mapper_profiles:", "");
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains("0123456789abcdef"), "{shown}");
        }
    }
}
