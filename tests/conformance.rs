//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned in
//! `tests/interop/package-lock.json`, installed with Node 22 into `.deps/node` by
//! `tests/setup-deps`) run against a 2-shard gateway, twice:
//!
//! - in front of the built-in demo upstream, for what the gateway answers itself (lifecycle,
//!   sessions, headers, DNS-rebinding protection, the stateless era's routing rules);
//! - in front of `tests/interop/fixtures/conformance_upstream.py` (the official Python SDK serving
//!   every tool, resource and prompt the suite's server scenarios call) as an unprefixed
//!   `kind = "http"` upstream, for everything the gateway forwards: tools, resources, prompts,
//!   logging, completion, sampling and elicitation, SSE resumption, input-required results.
//!
//! Each scenario writes `checks.json` (one entry per check: `id`, `status` SUCCESS | FAILURE |
//! WARNING | INFO | SKIPPED, `errorMessage`). A check id can occur several times in a run, and a
//! scenario can run at several spec versions; `scenario/check-id` fails when any occurrence is a
//! FAILURE. Each run fails on every failed check its expected-failures file does not list, and on
//! every listed check that did not fail (so a list only ever names real, current gaps). Warnings
//! (SHOULDs) are printed.

mod common;
#[path = "interop/support.rs"]
mod support;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// One run: a scenario (its name in `conformance list --server`) and the spec version it runs
/// at (`None`: the suite's own choice, 2026-07-28 for a scenario introduced there and 2025-11-25
/// for every other, so `None` and `STATELESS` are two different eras of the same scenario).
type Run = (&'static str, Option<&'static str>);

/// A set of runs against one gateway setup, judged against one expected-failures file.
struct Suite {
    runs: &'static [Run],
    /// A file in `tests/interop/`.
    expected_failures: &'static str,
}

/// The gateway with only its built-in demo upstream: scenarios that need no fixture tools.
const GATEWAY: Suite = Suite {
    runs: &[
        ("server-initialize", None),
        ("server-session-lifecycle", None),
        ("server-session-lifecycle", Some("2025-03-26")),
        ("ping", None),
        ("http-header-validation", None),
        ("dns-rebinding-protection", Some("2025-11-25")),
        ("dns-rebinding-protection", Some("2026-07-28")),
        ("server-stateless", None),
    ],
    expected_failures: "conformance-expected-failures.txt",
};

/// The protocol version of the stateless era.
const STATELESS: Option<&str> = Some("2026-07-28");

/// The gateway in front of the conformance fixture upstream: every scenario that calls a
/// fixture, at its default version and, where it also applies there, at the stateless era.
const FIXTURE: Suite = Suite {
    runs: &[
        ("tools-list", None),
        ("tools-list", STATELESS),
        ("tools-call-simple-text", None),
        ("tools-call-simple-text", STATELESS),
        ("tools-call-image", None),
        ("tools-call-image", STATELESS),
        ("tools-call-audio", None),
        ("tools-call-audio", STATELESS),
        ("tools-call-embedded-resource", None),
        ("tools-call-embedded-resource", STATELESS),
        ("tools-call-mixed-content", None),
        ("tools-call-mixed-content", STATELESS),
        ("tools-call-error", None),
        ("tools-call-error", STATELESS),
        ("tools-call-with-progress", None),
        ("tools-call-with-progress", STATELESS),
        ("tools-call-with-logging", None),
        ("tools-call-sampling", None),
        ("tools-call-elicitation", None),
        ("elicitation-sep1034-defaults", None),
        ("elicitation-sep1330-enums", None),
        ("json-schema-2020-12", None),
        ("json-schema-2020-12", STATELESS),
        ("logging-set-level", None),
        ("completion-complete", None),
        ("completion-complete", STATELESS),
        ("resources-list", None),
        ("resources-list", STATELESS),
        ("resources-read-text", None),
        ("resources-read-text", STATELESS),
        ("resources-read-binary", None),
        ("resources-read-binary", STATELESS),
        ("resources-templates-read", None),
        ("resources-templates-read", STATELESS),
        ("resources-subscribe", None),
        ("resources-unsubscribe", None),
        ("sep-2164-resource-not-found", None),
        ("prompts-list", None),
        ("prompts-list", STATELESS),
        ("prompts-get-simple", None),
        ("prompts-get-simple", STATELESS),
        ("prompts-get-with-args", None),
        ("prompts-get-with-args", STATELESS),
        ("prompts-get-embedded-resource", None),
        ("prompts-get-embedded-resource", STATELESS),
        ("prompts-get-with-image", None),
        ("prompts-get-with-image", STATELESS),
        // The SSE scenarios check priming events, `retry:` and resumption only on an SSE answer;
        // a JSON answer (what the gateway sends when the upstream relays no notification) is
        // reported as INFO and passes.
        ("server-sse-polling", None),
        ("server-sse-multiple-streams", None),
        ("server-sse-multiple-streams", STATELESS),
        ("caching", None),
        ("http-custom-header-server-validation", None),
        ("server-stateless", None),
        ("input-required-result-basic-elicitation", None),
        ("input-required-result-basic-sampling", None),
        ("input-required-result-basic-list-roots", None),
        ("input-required-result-request-state", None),
        ("input-required-result-multiple-input-requests", None),
        ("input-required-result-multi-round", None),
        ("input-required-result-missing-input-response", None),
        ("input-required-result-non-tool-request", None),
        ("input-required-result-result-type", None),
        ("input-required-result-unsupported-methods", None),
        ("input-required-result-tampered-state", None),
        ("input-required-result-capability-check", None),
        ("input-required-result-ignore-extra-params", None),
        ("input-required-result-validate-input", None),
    ],
    expected_failures: "conformance-fixture-expected-failures.txt",
};

/// The fixture upstream, in `tests/interop/fixtures/`.
const FIXTURE_SCRIPT: &str = "conformance_upstream.py";

#[derive(Deserialize)]
struct Check {
    id: String,
    status: String,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
}

/// What one check id came to over every run of its scenario.
#[derive(Default)]
struct Verdict {
    failed: bool,
    warned: bool,
    messages: Vec<String>,
}

/// `scenario/check-id` → reason, from `tests/interop/<file>` (`#` comments, blank lines).
fn expected_failures(file: &str) -> BTreeMap<String, String> {
    let path = support::interop_file(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut entries = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, reason) = line
            .split_once(char::is_whitespace)
            .unwrap_or_else(|| panic!("{file}:{}: no reason: {line}", index + 1));
        assert!(
            key.split_once('/')
                .is_some_and(|(s, c)| !s.is_empty() && !c.is_empty()),
            "{file}:{}: want scenario/check-id, got {key}",
            index + 1
        );
        let previous = entries.insert(key.to_owned(), reason.trim().to_owned());
        assert!(
            previous.is_none(),
            "{file}:{}: {key} listed twice",
            index + 1
        );
    }
    entries
}

fn run_label(scenario: &str, spec_version: Option<&str>) -> String {
    match spec_version {
        Some(version) => format!("{scenario}@{version}"),
        None => scenario.to_owned(),
    }
}

/// Runs one scenario with Node 22 and returns its checks.
fn run_scenario(url: &str, scenario: &str, spec_version: Option<&str>) -> Vec<Check> {
    let label = run_label(scenario, spec_version);
    let out_dir = common::TempDir::new("conformance");
    let mut cmd = Command::new(support::dep("node/node_modules/.bin/node"));
    cmd.arg(support::dep(
        "node/node_modules/@modelcontextprotocol/conformance/dist/index.js",
    ))
    .args([
        "server",
        "--url",
        url,
        "--scenario",
        scenario,
        "--timeout",
        "30000",
    ])
    .arg("--output-dir")
    .arg(&out_dir.0)
    .current_dir(&out_dir.0)
    .env("NO_COLOR", "1");
    if let Some(version) = spec_version {
        cmd.args(["--spec-version", version]);
    }
    let out = support::run_with_deadline(&label, cmd, Duration::from_secs(120));
    let Some(checks_file) = find_checks_file(&out_dir.0) else {
        panic!(
            "conformance {label} wrote no checks.json (status {})\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let text = std::fs::read_to_string(&checks_file).expect("read checks.json");
    let checks: Vec<Check> = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not a list of checks: {e}", checks_file.display()));
    assert!(!checks.is_empty(), "conformance {label} ran no checks");
    checks
}

/// The suite writes `<output-dir>/server-<scenario>-<timestamp>/checks.json`.
fn find_checks_file(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("checks.json"))
        .find(|path| path.is_file())
}

/// Runs every scenario of `suite` against `url` and merges the checks by `scenario/check-id`.
fn run_suite(url: &str, suite: &Suite) -> BTreeMap<String, Verdict> {
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    for &(scenario, spec_version) in suite.runs {
        let label = run_label(scenario, spec_version);
        let checks = run_scenario(url, scenario, spec_version);
        let count = |status: &str| checks.iter().filter(|c| c.status == status).count();
        println!(
            "  {label:<50} {:>3} checks: {} success, {} failure, {} warning",
            checks.len(),
            count("SUCCESS"),
            count("FAILURE"),
            count("WARNING")
        );
        for check in checks {
            let verdict = verdicts
                .entry(format!("{scenario}/{}", check.id))
                .or_default();
            let failed = check.status == "FAILURE";
            let warned = check.status == "WARNING";
            verdict.failed |= failed;
            verdict.warned |= warned;
            if failed || warned {
                let message = check.error_message.unwrap_or_default();
                verdict
                    .messages
                    .push(format!("[{label}] {}: {message}", check.status));
            }
        }
    }
    verdicts
}

/// Fails on every failed check `suite`'s expected-failures file does not list, and on every
/// listed check that did not fail; prints the expected failures and the warnings.
fn assert_verdicts(suite: &Suite, verdicts: &BTreeMap<String, Verdict>) {
    let file = suite.expected_failures;
    let expected = expected_failures(file);
    let mut unexpected = Vec::new();
    for (key, verdict) in verdicts {
        let messages = verdict.messages.join("\n      ");
        match (verdict.failed, expected.get(key)) {
            (true, Some(reason)) => println!("  expected failure {key} ({reason})"),
            (true, None) => unexpected.push(format!("{key}\n      {messages}")),
            (false, _) if verdict.warned => println!("  warning {key}\n      {messages}"),
            (false, _) => {}
        }
    }
    let stale: Vec<&String> = expected
        .keys()
        .filter(|key| !verdicts.get(*key).is_some_and(|v| v.failed))
        .collect();
    let failed = verdicts.values().filter(|v| v.failed).count();
    println!(
        "conformance: {} check ids, {} failed ({} expected), {} stale entries in {file}",
        verdicts.len(),
        failed,
        failed - unexpected.len(),
        stale.len()
    );
    let mut problems = String::new();
    if !unexpected.is_empty() {
        problems += &format!(
            "unexpected conformance failures:\n  {}\n",
            unexpected.join("\n  ")
        );
    }
    if !stale.is_empty() {
        problems += &format!("listed in {file} but not failing (remove them): {stale:?}\n");
    }
    assert!(problems.is_empty(), "{problems}");
}

/// A 2-shard gateway config whose only upstream is the fixture at `url`, its names unprefixed
/// so they reach the suite exactly as the scenarios spell them.
fn fixture_gateway_config(url: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\npath = \"/mcp\"\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         [[upstreams]]\nname = \"conformance\"\nkind = \"http\"\nurl = \"{url}\"\nprefix = \"\"\n"
    )
}

#[test]
fn conformance_scenarios_pass_except_listed_fixture_gaps() {
    let gw = common::Gateway::start(&common::config_with(""), 2);
    println!(
        "conformance against {} (2 shards, demo upstream)",
        gw.mcp_url
    );
    let verdicts = run_suite(&gw.mcp_url, &GATEWAY);
    assert_verdicts(&GATEWAY, &verdicts);
}

#[test]
fn conformance_through_gateway_with_fixture_upstream() {
    let upstream = support::FixtureServer::start_http(FIXTURE_SCRIPT);
    let gw = common::Gateway::start(&fixture_gateway_config(&upstream.url), 2);
    println!(
        "conformance against {} (2 shards, upstream {FIXTURE_SCRIPT} at {})",
        gw.mcp_url, upstream.url
    );
    let verdicts = run_suite(&gw.mcp_url, &FIXTURE);
    assert_verdicts(&FIXTURE, &verdicts);
}

#[test]
fn expected_failures_name_only_scenarios_that_run() {
    for suite in [&GATEWAY, &FIXTURE] {
        let file = suite.expected_failures;
        for (key, reason) in expected_failures(file) {
            let scenario = key.split_once('/').unwrap().0;
            assert!(
                suite.runs.iter().any(|&(name, _)| name == scenario),
                "{file}: {key} names scenario {scenario}, which its test does not run"
            );
            assert!(!reason.is_empty(), "{file}: {key} gives no reason");
        }
    }
}
