//! Config-level rules: defaults, ranges, unknown keys, cross-field checks, the tuning profiles.

use std::path::Path;

use super::*;

fn errors_of(text: &str) -> Vec<ConfigError> {
    match Config::from_toml_str(text, "t.toml") {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.iter().cloned().collect(),
    }
}

fn keys_of(text: &str) -> Vec<String> {
    errors_of(text).into_iter().map(|error| error.key).collect()
}

const fn assert_send_sync<T: Send + Sync>() {}
const _: () = assert_send_sync::<Config>();

#[test]
fn empty_file_gives_the_builtin_defaults() {
    assert_eq!(
        Config::from_toml_str("", "empty.toml"),
        Ok(Config::default())
    );
}

#[test]
fn embedded_default_file_equals_the_builtin_defaults() {
    let config = Config::default_embedded();
    assert_eq!(config, Config::default());
    assert_eq!(config.limits.header_bytes_max, 16_384);
    assert_eq!(config.server.cores, Cores::All);
    assert_eq!(config.epoch.session_arena_bytes_max, 10_000 * 2_048);
    assert!(config.epoch.session_arena_bytes_derived);
    assert_eq!(config.upstreams.len(), 1);
    assert_eq!(
        config.upstreams[0].kind,
        UpstreamKind::Builtin {
            sleep_ms_max: 60_000
        }
    );
}

#[test]
fn every_tuning_profile_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tuning");
    for name in ["default.toml", "2-core.toml", "16-core.toml"] {
        if let Err(errors) = Config::load(&dir.join(name)) {
            panic!("tuning/{name} is invalid:\n{errors}");
        }
    }
}

#[test]
fn numbers_are_accepted_at_both_range_edges_and_refused_one_past() {
    // (section, key, min, max, other keys the edge needs to be valid on its own)
    let arena = "[epoch]\nsession_arena_bytes_max = 65536\n";
    let cases: &[(&str, &str, i64, i64, &str)] = &[
        ("server", "drain_timeout_ms", 0, 600_000, ""),
        ("server", "io_memory_bytes", 65_536, 67_108_864, ""),
        ("limits", "connections_max", 1, 65_536, ""),
        ("limits", "header_bytes_max", 1_024, 1_048_576, ""),
        ("limits", "keepalive_idle_timeout_ms", 100, 3_600_000, ""),
        ("sessions", "sessions_max", 1, 10_000_000, arena),
        ("sessions", "retry_after_s", 1, 3_600, ""),
        ("epoch", "generations", 2, 16, ""),
        (
            "epoch",
            "session_arena_bytes_max",
            65_536,
            4_294_967_296,
            "",
        ),
    ];
    for &(section, key, min, max, extra) in cases {
        for value in [min, max] {
            let text = format!("{extra}[{section}]\n{key} = {value}\n");
            let result = Config::from_toml_str(&text, "t.toml");
            assert!(
                result.is_ok(),
                "{section}.{key} = {value}: {}",
                result.unwrap_err()
            );
        }
        for value in [min - 1, max + 1] {
            let text = format!("{extra}[{section}]\n{key} = {value}\n");
            let errors = errors_of(&text);
            assert_eq!(errors.len(), 1, "{section}.{key} = {value}: {errors:?}");
            assert_eq!(
                errors[0].to_string(),
                format!(
                    "t.toml: {section}.{key} = {value} is out of range (accepted {min}..={max})"
                )
            );
        }
    }
}

#[test]
fn unknown_keys_are_refused_with_their_path_and_location() {
    let text = "[limits]\nconections_max = 5\n\n[serverr]\n\n[[upstreams]]\nname = \"a\"\n\
                kind = \"builtin\"\nsleep_ms = 1\n";
    let errors = errors_of(text);
    let keys: Vec<&str> = errors.iter().map(|error| error.key.as_str()).collect();
    assert_eq!(
        keys,
        ["limits.conections_max", "serverr", "upstreams[0].sleep_ms"]
    );
    assert_eq!(errors[0].location, Some(Location { line: 2, column: 1 }));
    assert!(errors[0]
        .to_string()
        .starts_with("t.toml:2:1: unknown key limits.conections_max"));
    assert!(
        errors[0].to_string().contains("connections_max"),
        "lists the accepted keys"
    );
    assert!(errors
        .iter()
        .all(|error| matches!(error.kind, ConfigErrorKind::UnknownKey { .. })));
}

#[test]
fn every_unknown_key_in_one_section_is_reported() {
    assert_eq!(
        keys_of("[server]\nlisten_addr = \"x\"\nport = 1\n"),
        ["server.listen_addr", "server.port"]
    );
}

#[test]
fn all_validation_errors_are_reported_together() {
    let text = "[limits]\nheader_bytes_max = 512\nconnections_max = 0\n\
                [sessions]\nretry_after_s = 0\n[server]\npath = \"mcp\"\n";
    let errors = Config::from_toml_str(text, "tuning/x.toml").unwrap_err();
    let keys: Vec<&str> = errors.iter().map(|error| error.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.path",
            "limits.connections_max",
            "limits.header_bytes_max",
            "sessions.retry_after_s"
        ]
    );
    let rendered = errors.to_string();
    assert_eq!(rendered.lines().count(), 4);
    assert!(rendered.contains(
        "tuning/x.toml: limits.header_bytes_max = 512 is out of range (accepted 1024..=1048576)"
    ));
}

#[test]
fn type_errors_in_different_sections_are_all_reported() {
    let keys = keys_of("[limits]\nconnections_max = \"many\"\n[epoch]\ntick_ms = true\n");
    assert_eq!(keys, ["epoch.tick_ms", "limits.connections_max"]);
}

#[test]
fn syntax_errors_report_line_and_column() {
    let errors = errors_of("[server]\nlisten = \"127.0.0.1:8080\n");
    assert!(matches!(errors[0].kind, ConfigErrorKind::Syntax { .. }));
    let location = errors[0].location.expect("syntax errors carry a location");
    assert_eq!(location.line, 2);
    assert!(
        errors[0].to_string().starts_with("t.toml:2:"),
        "{}",
        errors[0]
    );
}

#[test]
fn non_loopback_listen_requires_allowed_origins() {
    let errors = errors_of("[server]\nlisten = \"0.0.0.0:8080\"\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "server.allowed_origins");
    let message = errors[0].to_string();
    assert!(
        message.contains("DNS rebinding") && message.contains("0.0.0.0:8080"),
        "{message}"
    );

    let text =
        "[server]\nlisten = \"0.0.0.0:8080\"\nallowed_origins = [\"https://app.example.com\"]\n";
    assert!(Config::from_toml_str(text, "t.toml").is_ok());
    assert!(Config::from_toml_str("[server]\nlisten = \"[::1]:8080\"\n", "t.toml").is_ok());
}

#[test]
fn malformed_origins_are_refused() {
    let text = "[server]\nallowed_origins = [\"https://ok.example\", \"app.example.com\", \
                \"https://app.example.com/\", \"https://APP.example.com\", \"http://a:99999\"]\n";
    assert_eq!(
        keys_of(text),
        [
            "server.allowed_origins[1]",
            "server.allowed_origins[2]",
            "server.allowed_origins[3]",
            "server.allowed_origins[4]"
        ]
    );
}

#[test]
fn empty_origin_list_allows_only_localhost_origins() {
    let server = Config::default().server;
    for origin in [
        "http://localhost",
        "http://localhost:3000",
        "https://127.0.0.1:8443",
        "http://[::1]:80",
    ] {
        assert!(server.origin_allowed(origin), "{origin}");
    }
    for origin in [
        "https://evil.example",
        "http://localhost.evil.example",
        "http://localhost:0",
        "null",
        "file://localhost",
    ] {
        assert!(!server.origin_allowed(origin), "{origin}");
    }
    let text = "[server]\nallowed_origins = [\"https://app.example.com\"]\n";
    let server = Config::from_toml_str(text, "t.toml").unwrap().server;
    assert!(server.origin_allowed("https://app.example.com"));
    assert!(!server.origin_allowed("http://localhost"));
}

#[test]
fn cores_accept_all_a_count_or_a_list() {
    let cores = |value: &str| {
        Config::from_toml_str(&format!("[server]\ncores = {value}\n"), "t.toml")
            .map(|config| config.server.cores)
    };
    assert_eq!(cores("\"all\""), Ok(Cores::All));
    assert_eq!(cores("4"), Ok(Cores::Count(4)));
    assert_eq!(cores("[0, 1]"), Ok(Cores::List(vec![0, 1])));
}

#[test]
fn bad_cores_are_refused() {
    let cases = [
        ("\"some\"", "server.cores"),
        ("0", "server.cores"),
        ("4097", "server.cores"),
        ("[]", "server.cores"),
        ("[0, 0]", "server.cores[1]"),
        ("[-1]", "server.cores[0]"),
        ("1.5", "server.cores"),
    ];
    for (value, key) in cases {
        let keys = keys_of(&format!("[server]\ncores = {value}\n"));
        assert_eq!(keys, [key], "cores = {value}");
    }
}

#[test]
fn duplicate_upstream_names_are_refused() {
    let text = "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n\
                [[upstreams]]\nname = \"b\"\nkind = \"builtin\"\n\
                [[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "upstreams[2].name");
    assert!(errors[0]
        .to_string()
        .contains("upstreams[0] already uses this name"));
}

#[test]
fn upstream_names_and_kinds_are_checked() {
    let text = "[[upstreams]]\nname = \"Bad Name\"\nkind = \"stdio\"\n";
    let errors = errors_of(text);
    let keys: Vec<&str> = errors.iter().map(|error| error.key.as_str()).collect();
    assert_eq!(keys, ["upstreams[0].name", "upstreams[0].kind"]);
    assert!(
        errors[1].to_string().contains("accepted: builtin"),
        "{}",
        errors[1]
    );
    assert_eq!(keys_of("upstreams = []\n"), ["upstreams"]);
}

#[test]
fn session_ttl_must_span_one_tick() {
    let text = "[sessions]\nsession_idle_ttl_ms = 1000\n[epoch]\ntick_ms = 2000\n";
    assert_eq!(keys_of(text), ["sessions.session_idle_ttl_ms"]);
    let text = "[sessions]\nsession_idle_ttl_ms = 2000\n[epoch]\ntick_ms = 2000\n";
    assert!(Config::from_toml_str(text, "t.toml").is_ok());
    // An out-of-range tick gives its own error, not a second one about the ttl.
    assert_eq!(keys_of("[epoch]\ntick_ms = 5\n"), ["epoch.tick_ms"]);
}

#[test]
fn session_arena_is_derived_or_explicit_and_never_below_one_payload() {
    let text = "[sessions]\nsessions_max = 100\nsession_payload_bytes_max = 1024\n";
    let epoch = Config::from_toml_str(text, "t.toml").unwrap().epoch;
    assert_eq!(epoch.session_arena_bytes_max, 102_400);
    assert!(epoch.session_arena_bytes_derived);

    let text = "[sessions]\nsessions_max = 1\nsession_payload_bytes_max = 256\n";
    let epoch = Config::from_toml_str(text, "t.toml").unwrap().epoch;
    assert_eq!(epoch.session_arena_bytes_max, 256);

    let text = "[epoch]\nsession_arena_bytes_max = 65536\n";
    let config = Config::from_toml_str(text, "t.toml").unwrap();
    assert_eq!(config.epoch.session_arena_bytes_max, 65_536);
    assert!(!config.epoch.session_arena_bytes_derived);
    assert!(config.epoch.session_arena_bytes_max >= config.sessions.session_payload_bytes_max);
}

#[test]
fn derived_session_arena_over_the_limit_is_refused() {
    let text = "[sessions]\nsessions_max = 10000000\nsession_payload_bytes_max = 65536\n";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "epoch.session_arena_bytes_max");
    assert!(
        errors[0].to_string().contains("655360000000 bytes"),
        "{}",
        errors[0]
    );
}

#[test]
fn admin_listener_must_not_share_the_server_address() {
    let text = "[admin]\nlisten = \"127.0.0.1:8080\"\n";
    assert_eq!(keys_of(text), ["admin.listen"]);
    assert_eq!(
        keys_of("[admin]\nlisten = \"localhost:9090\"\n"),
        ["admin.listen"]
    );
}

#[test]
fn missing_file_is_an_error_naming_the_path() {
    let errors = Config::load(Path::new("/nonexistent/shardgate.toml")).unwrap_err();
    assert!(errors
        .to_string()
        .starts_with("/nonexistent/shardgate.toml: cannot read config file"));
}

#[test]
fn summary_names_every_section() {
    let summary = Config::default().summary();
    for needle in [
        "server.listen",
        "127.0.0.1:8080",
        "limits.header_bytes_max",
        "16384",
        "sessions.sessions_max",
        "epoch.session_arena_bytes_max",
        "20480000 (derived",
        "upstreams[0]",
        "demo (builtin",
    ] {
        assert!(
            summary.contains(needle),
            "{needle} missing from:\n{summary}"
        );
    }
}

#[test]
fn decoding_and_validation_errors_are_reported_together() {
    let text = "[limits]\nfoo = 1\nheader_bytes_max = 512\n[server]\ncores = 1.5\n";
    assert_eq!(
        keys_of(text),
        ["limits.foo", "server.cores", "limits.header_bytes_max"]
    );
}

#[test]
fn a_section_that_did_not_decode_gets_no_errors_about_its_defaults() {
    // [sessions] fails to decode, so it is validated at its defaults; the default ttl
    // (1800000 ms) is shorter than this tick, but that is not what the file says.
    let text = "[sessions]\nsession_idle_ttl_ms = \"long\"\n[epoch]\ntick_ms = 600000\n\
                generations = 1\n";
    assert_eq!(
        keys_of(text),
        ["sessions.session_idle_ttl_ms", "epoch.generations"]
    );
}
