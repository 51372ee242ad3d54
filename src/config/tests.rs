//! Config-level rules: defaults, ranges, unknown keys, cross-field checks, the tuning profiles.

use std::path::Path;

use crate::config::limits::ClientLimits;
use crate::config::limits::PoolLimits;
use crate::config::limits::StdioLimits;

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
    let demo = &config.upstreams[0];
    assert_eq!(
        (demo.prefix.as_str(), demo.separator.as_str()),
        ("demo", "__")
    );
    assert!(demo.required);
    assert_eq!(
        (
            demo.request_timeout_ms,
            demo.breaker_failures,
            demo.breaker_open_ms
        ),
        (300_000, 3, 60_000)
    );
    assert_eq!(
        config.pending,
        Pending {
            pending_max: 1000,
            pending_per_upstream_max: 500,
            request_id_bytes_max: 128,
            request_timeout_ms: 300_000,
            stream_buffer_bytes_max: 65_536,
            input_rounds_max: 8,
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
        ("server", "startup_timeout_ms", 100, 3_600_000, ""),
        ("server", "io_memory_bytes", 65_536, 67_108_864, ""),
        ("limits", "connections_max", 1, 65_536, ""),
        ("admin", "connections_max", 1, 1_024, ""),
        ("limits", "header_bytes_max", 1_024, 1_048_576, ""),
        ("limits", "keepalive_idle_timeout_ms", 100, 3_600_000, ""),
        ("sessions", "sessions_max", 1, 10_000_000, arena),
        ("sessions", "retry_after_s", 1, 3_600, ""),
        ("epoch", "generations", 2, 16, ""),
        ("pending", "request_id_bytes_max", 16, 1_024, ""),
        ("pending", "request_timeout_ms", 100, 86_400_000, ""),
        ("pending", "input_rounds_max", 1, 64, ""),
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
fn json_depth_max_stays_below_the_depth_serde_json_reads() {
    let config = Config::from_toml_str("[limits]\njson_depth_max = 120\n", "t.toml").unwrap();
    assert_eq!(config.limits.json_depth_max, 120);
    assert_eq!(Config::default().limits.json_depth_max, 64);
    for value in [128, 15] {
        let text = format!("[limits]\njson_depth_max = {value}\n");
        let errors = Config::from_toml_str(&text, "t.toml").unwrap_err();
        assert_eq!(
            errors.to_string(),
            format!("t.toml: limits.json_depth_max = {value} is out of range (accepted 16..=120)")
        );
    }
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
fn malformed_allowed_hosts_are_refused() {
    let text = "[server]\nallowed_hosts = [\"gw.example:8080\", \"http://gw.example\", \
                \"gw.example/mcp\", \"[::1]:0\", \"[::1]\"]\n";
    assert_eq!(
        keys_of(text),
        [
            "server.allowed_hosts[1]",
            "server.allowed_hosts[2]",
            "server.allowed_hosts[3]"
        ]
    );
}

#[test]
fn hosts_are_checked_on_loopback_listens_and_where_a_list_is_given() {
    let server = |text: &str| Config::from_toml_str(text, "t.toml").unwrap().server;
    let loopback = server("[server]\nlisten = \"127.0.0.1:8080\"\n");
    for host in [
        "localhost",
        "LOCALHOST:8080",
        "127.0.0.1:9",
        "[::1]",
        "[::1]:8080",
    ] {
        assert!(loopback.host_allowed(Some(host)), "{host}");
    }
    for host in [
        "evil.example",
        "evil.example:8080",
        "localhost.evil.example",
        "127.0.0.2",
    ] {
        assert!(!loopback.host_allowed(Some(host)), "{host}");
    }
    assert!(
        !loopback.host_allowed(None),
        "no Host is no name of the listener"
    );

    let open = "[server]\nlisten = \"0.0.0.0:8080\"\nallowed_origins = [\"https://a.example\"]\n";
    let anywhere = server(open);
    assert!(anywhere.host_allowed(Some("evil.example")) && anywhere.host_allowed(None));
    let listed = server(&format!(
        "{open}allowed_hosts = [\"gw.example\", \"gw.example:8080\"]\n"
    ));
    assert!(listed.host_allowed(Some("GW.example:8080")));
    assert!(!listed.host_allowed(Some("gw.example:9090")));
    assert!(!listed.host_allowed(Some("localhost")));
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
    let text = "[[upstreams]]\nname = \"Bad Name\"\nkind = \"grpc\"\n";
    let errors = errors_of(text);
    let keys: Vec<&str> = errors.iter().map(|error| error.key.as_str()).collect();
    assert_eq!(keys, ["upstreams[0].name", "upstreams[0].kind"]);
    assert!(
        errors[1]
            .to_string()
            .contains("unknown kind (accepted: builtin, http, stdio)"),
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

/// One upstream entry of `kind` with its required keys, plus `extra` lines.
fn upstream_of(kind: &str, extra: &str) -> String {
    let required = match kind {
        "http" => "url = \"http://127.0.0.1:9000/mcp\"\n",
        "stdio" => "command = \"server\"\n",
        _ => "",
    };
    format!("[[upstreams]]\nname = \"u\"\nkind = \"{kind}\"\n{required}{extra}")
}

#[test]
fn upstream_numbers_are_accepted_at_both_range_edges_and_refused_one_past() {
    // (kind, key, min, max, other keys the edges need to be valid on their own)
    let cases: &[(&str, &str, i64, i64, &str)] = &[
        ("builtin", "request_timeout_ms", 100, 86_400_000, ""),
        ("builtin", "breaker_failures", 1, 1_000, ""),
        ("builtin", "breaker_open_ms", 100, 3_600_000, ""),
        ("builtin", "sleep_ms_max", 0, 3_600_000, ""),
        ("http", "pool_connections_max", 1, 4_096, ""),
        ("http", "pool_waiters_max", 0, 65_536, ""),
        ("http", "connect_timeout_ms", 1, 600_000, ""),
        ("http", "pool_idle_timeout_ms", 1, 3_600_000, ""),
        ("http", "pool_lifetime_ms", 1, 86_400_000, ""),
        ("http", "response_head_bytes_max", 1_024, 1_048_576, ""),
        ("http", "response_headers_count_max", 8, 1_024, ""),
        ("http", "sse_event_bytes_max", 1_024, 268_435_456, ""),
        ("stdio", "message_bytes_max", 1_024, 268_435_456, ""),
        ("stdio", "stderr_line_bytes_max", 64, 1_048_576, ""),
        ("stdio", "inbound_messages_max", 1, 65_536, ""),
        ("stdio", "outbound_messages_max", 1, 65_536, ""),
        (
            "stdio",
            "restart_backoff_ms",
            1,
            3_600_000,
            "restart_backoff_max_ms = 3600000\n",
        ),
        (
            "stdio",
            "restart_backoff_max_ms",
            1,
            3_600_000,
            "restart_backoff_ms = 1\n",
        ),
        ("stdio", "healthy_after_ms", 0, 3_600_000, ""),
        ("stdio", "kill_grace_ms", 0, 600_000, ""),
        ("stdio", "exit_poll_ms", 1, 600_000, ""),
    ];
    for &(kind, key, min, max, extra) in cases {
        for value in [min, max] {
            let text = upstream_of(kind, &format!("{extra}{key} = {value}\n"));
            let result = Config::from_toml_str(&text, "t.toml");
            assert!(
                result.is_ok(),
                "{kind} {key} = {value}: {}",
                result.unwrap_err()
            );
        }
        for value in [min - 1, max + 1] {
            let errors = errors_of(&upstream_of(kind, &format!("{extra}{key} = {value}\n")));
            assert_eq!(errors.len(), 1, "{kind} {key} = {value}: {errors:?}");
            assert_eq!(
                errors[0].to_string(),
                format!(
                    "t.toml: upstreams[0].{key} = {value} is out of range (accepted {min}..={max})"
                )
            );
        }
    }
}

#[test]
fn pending_max_is_accepted_at_its_edges_and_refused_one_past() {
    let text = |max: i64, per: i64| {
        format!("[pending]\npending_max = {max}\npending_per_upstream_max = {per}\n")
    };
    assert!(Config::from_toml_str(&text(1, 1), "t.toml").is_ok());
    assert!(Config::from_toml_str(&text(1_000_000, 1_000_000), "t.toml").is_ok());
    for max in [0, 1_000_001] {
        let errors = errors_of(&text(max, 1));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(
            errors[0].to_string(),
            format!("t.toml: pending.pending_max = {max} is out of range (accepted 1..=1000000)")
        );
    }
}

#[test]
fn pending_per_upstream_max_above_pending_max_is_refused_naming_both() {
    let errors = errors_of("[pending]\npending_max = 100\npending_per_upstream_max = 101\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "pending.pending_per_upstream_max");
    let message = errors[0].to_string();
    assert!(
        message.contains("101 is more than pending.pending_max 100"),
        "{message}"
    );
    // Equal is fine; an out-of-range pending_max gives its own error only.
    let text = "[pending]\npending_max = 100\npending_per_upstream_max = 100\n";
    assert!(Config::from_toml_str(text, "t.toml").is_ok());
    assert_eq!(
        keys_of("[pending]\npending_max = 0\npending_per_upstream_max = 5\n"),
        ["pending.pending_max"]
    );
}

#[test]
fn keys_of_another_kind_are_refused_naming_the_key_and_the_kind() {
    let text = upstream_of("stdio", "url = \"http://127.0.0.1/\"\nsleep_ms_max = 5\n");
    let errors = errors_of(&text);
    let keys: Vec<&str> = errors.iter().map(|error| error.key.as_str()).collect();
    // Keys of one table are reported in key order.
    assert_eq!(keys, ["upstreams[0].sleep_ms_max", "upstreams[0].url"]);
    let message = errors[1].to_string();
    assert!(
        message.starts_with("t.toml:5:1: key upstreams[0].url does not apply to kind = \"stdio\""),
        "{message}"
    );
    assert!(message.contains("command, args, env, cwd"), "{message}");
    assert!(matches!(
        errors[1].kind,
        ConfigErrorKind::KeyNotForKind { kind: "stdio", .. }
    ));

    for (kind, foreign) in [
        ("http", "command = \"x\"\n"),
        ("http", "sleep_ms_max = 5\n"),
        ("builtin", "url = \"http://x/\"\n"),
        ("builtin", "message_bytes_max = 4096\n"),
    ] {
        let errors = errors_of(&upstream_of(kind, foreign));
        assert_eq!(errors.len(), 1, "{kind}: {errors:?}");
        let message = errors[0].to_string();
        assert!(message.contains(&format!("kind = \"{kind}\"")), "{message}");
    }
    // A key no kind has is an unknown key, as before.
    let errors = errors_of(&upstream_of("http", "uri = \"http://x/\"\n"));
    assert!(matches!(errors[0].kind, ConfigErrorKind::UnknownKey { .. }));
}

#[test]
fn http_upstream_without_url_and_stdio_without_command_are_refused() {
    let errors = errors_of("[[upstreams]]\nname = \"a\"\nkind = \"http\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].to_string(),
        "t.toml: upstreams[0].url is missing: kind = \"http\" requires it \
         (http://host[:port][/path])"
    );
    let errors = errors_of("[[upstreams]]\nname = \"a\"\nkind = \"stdio\"\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "upstreams[0].command");
    assert!(errors[0]
        .to_string()
        .contains("is missing: kind = \"stdio\" requires it"));
    let errors = errors_of("[[upstreams]]\nname = \"a\"\nkind = \"stdio\"\ncommand = \"\"\n");
    assert_eq!(errors[0].key, "upstreams[0].command");
}

#[test]
fn upstream_urls_are_checked_for_form_without_resolving() {
    for bad in [
        "https://127.0.0.1/mcp",
        "http://",
        "http:///mcp",
        "http://u@127.0.0.1/",
        "http://127.0.0.1:0/",
        "http://127.0.0.1:99999/",
        "http://127.0.0.1:80x/",
        "http://127.0.0.1/#top",
        "http://[::1/mcp",
        "http://127.0.0.1/a b",
    ] {
        let text = format!("[[upstreams]]\nname = \"a\"\nkind = \"http\"\nurl = {bad:?}\n");
        let errors = errors_of(&text);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
        assert_eq!(errors[0].key, "upstreams[0].url", "{bad}");
        assert!(
            errors[0].to_string().contains("is invalid"),
            "{}",
            errors[0]
        );
    }
    // A name that does not resolve is accepted: resolution happens at start-up.
    for good in [
        "http://upstream.invalid:8080/mcp",
        "http://[::1]:9000",
        "http://localhost/mcp?x=1",
    ] {
        let text = format!("[[upstreams]]\nname = \"a\"\nkind = \"http\"\nurl = {good:?}\n");
        let config = Config::from_toml_str(&text, "t.toml");
        assert!(config.is_ok(), "{good}: {}", config.unwrap_err());
    }
}

#[test]
fn session_mode_prefix_and_separator_are_checked() {
    let cases = [
        (
            "http",
            "session_mode = \"per_session\"\n",
            "upstreams[0].session_mode",
        ),
        ("builtin", "prefix = \"has space\"\n", "upstreams[0].prefix"),
        (
            "builtin",
            "prefix = \"abcdefghijklmnopqrstuvwxyz0123456\"\n",
            "upstreams[0].prefix",
        ),
        ("builtin", "separator = \"\"\n", "upstreams[0].separator"),
        (
            "builtin",
            "separator = \"_____\"\n",
            "upstreams[0].separator",
        ),
        ("builtin", "separator = \"ab\"\n", "upstreams[0].separator"),
    ];
    for (kind, extra, key) in cases {
        assert_eq!(keys_of(&upstream_of(kind, extra)), [key], "{extra}");
    }
    let text = upstream_of(
        "http",
        "session_mode = \"shared\"\nprefix = \"\"\nseparator = \".\"\n",
    );
    let upstream = &Config::from_toml_str(&text, "t.toml").unwrap().upstreams[0];
    assert_eq!(
        (upstream.prefix.as_str(), upstream.separator.as_str()),
        ("", ".")
    );
    let UpstreamKind::Http(http) = &upstream.kind else {
        panic!("an http upstream: {upstream:?}");
    };
    assert_eq!(http.session_mode, SessionMode::Shared);
    let text = upstream_of("http", "session_mode = \"per_client\"\n");
    let upstream = &Config::from_toml_str(&text, "t.toml").unwrap().upstreams[0];
    let UpstreamKind::Http(http) = &upstream.kind else {
        panic!("an http upstream: {upstream:?}");
    };
    assert_eq!(http.session_mode, SessionMode::PerClient);
    let message =
        errors_of(&upstream_of("http", "session_mode = \"per_session\"\n"))[0].to_string();
    assert!(
        message.contains("\"shared\"") && message.contains("\"per_client\""),
        "{message}"
    );
    for kind in ["stdio", "builtin"] {
        let text = upstream_of(kind, "session_mode = \"per_client\"\n");
        let errors = errors_of(&text);
        assert_eq!(keys_of(&text), ["upstreams[0].session_mode"], "{kind}");
        let message = errors[0].to_string();
        assert!(
            message.contains(&format!("does not apply to kind = \"{kind}\"")),
            "{message}"
        );
    }
    let text = upstream_of("builtin", "prefix = \"My-Tools_2\"\nseparator = \"-:/.\"\n");
    assert!(Config::from_toml_str(&text, "t.toml").is_ok());
}

#[test]
fn same_prefix_and_separator_on_two_upstreams_is_refused_naming_both() {
    let text = "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\nprefix = \"x\"\n\
                [[upstreams]]\nname = \"b\"\nkind = \"builtin\"\nprefix = \"x\"\nseparator = \".\"\n\
                [[upstreams]]\nname = \"c\"\nkind = \"builtin\"\nprefix = \"x\"\n";
    let errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "upstreams[2].prefix");
    let message = errors[0].to_string();
    assert!(
        message.contains("\"x\" is also upstreams[0]'s prefix (upstream \"a\""),
        "{message}"
    );
    assert!(message.contains("merged names would collide"), "{message}");
    assert!(message.contains("\"c\""), "{message}");

    // Empty prefixes are left to the catalogue at start-up.
    let text = "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\nprefix = \"\"\n\
                [[upstreams]]\nname = \"b\"\nkind = \"builtin\"\nprefix = \"\"\n";
    assert!(Config::from_toml_str(text, "t.toml").is_ok());
    // A default prefix collides with an explicit one.
    let text = "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n\
                [[upstreams]]\nname = \"b\"\nkind = \"builtin\"\nprefix = \"a\"\n";
    assert_eq!(keys_of(text), ["upstreams[1].prefix"]);
    // A duplicate name is one error, not a second one about the prefix it defaults.
    let text = "[[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n\
                [[upstreams]]\nname = \"a\"\nkind = \"builtin\"\n";
    assert_eq!(keys_of(text), ["upstreams[1].name"]);
}

#[test]
fn restart_backoff_above_its_maximum_is_refused_naming_both() {
    let text = upstream_of(
        "stdio",
        "restart_backoff_ms = 5000\nrestart_backoff_max_ms = 1000\n",
    );
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "upstreams[0].restart_backoff_ms");
    assert!(
        errors[0]
            .to_string()
            .contains("5000 is more than upstreams[0].restart_backoff_max_ms 1000"),
        "{}",
        errors[0]
    );
    let text = upstream_of(
        "stdio",
        "restart_backoff_ms = 1000\nrestart_backoff_max_ms = 1000\n",
    );
    assert!(Config::from_toml_str(&text, "t.toml").is_ok());
}

#[test]
fn stdio_args_env_and_cwd_are_checked() {
    let text = upstream_of("stdio", "env = { A = 1 }\n");
    assert_eq!(keys_of(&text), ["upstreams[0].env"]);
    let text = upstream_of("stdio", "args = \"--flag\"\n");
    assert_eq!(keys_of(&text), ["upstreams[0].args"]);
    let text = upstream_of("stdio", "env = { \"A=B\" = \"1\" }\n");
    assert_eq!(keys_of(&text), ["upstreams[0].env.A=B"]);
    let text = upstream_of("stdio", "args = [\"a\\u0000b\"]\ncwd = \"\"\n");
    assert_eq!(keys_of(&text), ["upstreams[0].args[0]", "upstreams[0].cwd"]);
}

#[test]
fn absent_upstream_keys_take_their_defaults_from_the_sections_they_name() {
    let text = format!(
        "[limits]\nresponse_body_bytes_max = 2097152\n[pending]\nrequest_timeout_ms = 1000\n{}{}",
        upstream_of("http", ""),
        upstream_of("stdio", "").replace("\"u\"", "\"v\"")
    );
    let config = Config::from_toml_str(&text, "t.toml").unwrap();
    let [http, stdio] = &config.upstreams[..] else {
        panic!("two upstreams: {:?}", config.upstreams);
    };
    assert_eq!(http.request_timeout_ms, 1000);
    assert_eq!(stdio.request_timeout_ms, 1000);
    let (UpstreamKind::Http(http_keys), UpstreamKind::Stdio(stdio_keys)) =
        (&http.kind, &stdio.kind)
    else {
        panic!("an http and a stdio upstream: {config:?}");
    };
    assert_eq!(http_keys.pool.client.sse_event_bytes_max, 2_097_152);
    assert_eq!(stdio_keys.limits.message_bytes_max, 2_097_152);
    assert_eq!(
        (http.prefix.as_str(), http.separator.as_str(), http.required),
        ("u", "__", true)
    );
}

#[test]
fn full_http_and_stdio_example_parses_to_the_expected_structs() {
    let text = r#"
[[upstreams]]
name = "api"
kind = "http"
url = "http://10.0.0.5:8000/mcp"
session_mode = "shared"
prefix = "API"
separator = "."
required = false
request_timeout_ms = 20000
breaker_failures = 5
breaker_open_ms = 1000
pool_connections_max = 20
pool_waiters_max = 0
connect_timeout_ms = 500
pool_idle_timeout_ms = 10000
pool_lifetime_ms = 600000
response_head_bytes_max = 8192
response_headers_count_max = 32
sse_event_bytes_max = 65536

[[upstreams]]
name = "files"
kind = "stdio"
command = "/usr/bin/mcp-files"
args = ["--root", "/srv"]
env = { LOG = "info", HOME = "/srv" }
cwd = "/srv"
message_bytes_max = 524288
stderr_line_bytes_max = 1024
inbound_messages_max = 16
outbound_messages_max = 8
restart_backoff_ms = 200
restart_backoff_max_ms = 10000
healthy_after_ms = 0
kill_grace_ms = 0
exit_poll_ms = 250
"#;
    let config = Config::from_toml_str(text, "t.toml").unwrap();
    let expected = vec![
        Upstream {
            name: "api".to_owned(),
            kind: UpstreamKind::Http(HttpUpstream {
                url: "http://10.0.0.5:8000/mcp".to_owned(),
                session_mode: SessionMode::Shared,
                pool: PoolLimits {
                    pool_connections_max: 20,
                    pool_waiters_max: 0,
                    connect_timeout_ms: 500,
                    pool_idle_timeout_ms: 10_000,
                    pool_lifetime_ms: 600_000,
                    client: ClientLimits {
                        response_head_bytes_max: 8192,
                        response_headers_count_max: 32,
                        response_body_bytes_max: 1_048_576,
                        sse_event_bytes_max: 65_536,
                    },
                },
            }),
            prefix: "API".to_owned(),
            separator: ".".to_owned(),
            required: false,
            request_timeout_ms: 20_000,
            breaker_failures: 5,
            breaker_open_ms: 1000,
        },
        Upstream {
            name: "files".to_owned(),
            kind: UpstreamKind::Stdio(StdioUpstream {
                command: "/usr/bin/mcp-files".to_owned(),
                args: vec!["--root".to_owned(), "/srv".to_owned()],
                env: vec![
                    ("HOME".to_owned(), "/srv".to_owned()),
                    ("LOG".to_owned(), "info".to_owned()),
                ],
                cwd: Some("/srv".into()),
                limits: StdioLimits {
                    message_bytes_max: 524_288,
                    stderr_line_bytes_max: 1024,
                    inbound_messages_max: 16,
                    outbound_messages_max: 8,
                    restart_backoff_ms: 200,
                    restart_backoff_max_ms: 10_000,
                    healthy_after_ms: 0,
                    kill_grace_ms: 0,
                    exit_poll_ms: 250,
                },
            }),
            prefix: "files".to_owned(),
            separator: "__".to_owned(),
            required: true,
            request_timeout_ms: 300_000,
            breaker_failures: 3,
            breaker_open_ms: 60_000,
        },
    ];
    assert_eq!(config.upstreams, expected);

    let summary = config.summary();
    for needle in [
        "api (http http://10.0.0.5:8000/mcp, session shared, pool 20 conns / 0 waiters",
        "names \"API.<name>\", optional, timeout 20000 ms, breaker 5 failures / 1000 ms",
        "files (stdio \"/usr/bin/mcp-files\" [\"--root\", \"/srv\"], 2 env, cwd \"/srv\"",
        "backoff 200..10000 ms",
        "pending.pending_per_upstream_max",
    ] {
        assert!(
            summary.contains(needle),
            "{needle} missing from:\n{summary}"
        );
    }
}

#[test]
fn more_upstreams_than_the_cap_are_refused() {
    let count = bounds::UPSTREAMS_COUNT_MAX + 1;
    let text: String = (0..count)
        .map(|index| format!("[[upstreams]]\nname = \"u{index}\"\nkind = \"builtin\"\n"))
        .collect();
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{:?}", &errors[..errors.len().min(3)]);
    assert_eq!(errors[0].key, "upstreams");
    assert!(
        errors[0].to_string().contains("has 1025 entries"),
        "{}",
        errors[0]
    );
}
