//! The official MCP conformance suite (npm `@modelcontextprotocol/conformance`, pinned in
//! `tests/interop/package-lock.json`, installed with Node 22 into `.deps/node` by
//! `tests/setup-deps`) run against a 2-shard gateway.
//!
//! Each scenario writes `checks.json` (one entry per check: `id`, `status` SUCCESS | FAILURE |
//! WARNING | INFO | SKIPPED, `errorMessage`). A check id can occur several times in a run; it fails
//! when any occurrence is a FAILURE. The test fails on every failed check that
//! `tests/interop/conformance-expected-failures.txt` does not list, and on every listed check that
//! did not fail (so the list only ever names real, current gaps). Warnings (SHOULDs) are printed.

mod common;
#[path = "interop/support.rs"]
mod support;

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Scenarios and the spec version each runs at (`None`: the suite's own choice, the newest
/// version the scenario applies to). Names are the suite's (`conformance list --server`).
const RUNS: &[(&str, Option<&str>)] = &[
    ("server-initialize", None),
    ("server-session-lifecycle", None),
    ("server-session-lifecycle", Some("2025-03-26")),
    ("ping", None),
    ("http-header-validation", None),
    ("dns-rebinding-protection", Some("2025-11-25")),
    ("dns-rebinding-protection", Some("2026-07-28")),
    ("server-stateless", None),
];

const EXPECTED_FAILURES: &str = "conformance-expected-failures.txt";

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

/// `scenario/check-id` → reason, from the expected-failures file (`#` comments, blank lines).
fn expected_failures() -> BTreeMap<String, String> {
    let path = support::interop_file(EXPECTED_FAILURES);
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
            .unwrap_or_else(|| panic!("{EXPECTED_FAILURES}:{}: no reason: {line}", index + 1));
        assert!(
            key.split_once('/')
                .is_some_and(|(s, c)| !s.is_empty() && !c.is_empty()),
            "{EXPECTED_FAILURES}:{}: want scenario/check-id, got {key}",
            index + 1
        );
        let previous = entries.insert(key.to_owned(), reason.trim().to_owned());
        assert!(
            previous.is_none(),
            "{EXPECTED_FAILURES}:{}: {key} listed twice",
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

#[test]
fn conformance_scenarios_pass_except_listed_fixture_gaps() {
    let expected = expected_failures();
    let gw = common::Gateway::start(&common::config_with(""), 2);
    let mut verdicts: BTreeMap<String, Verdict> = BTreeMap::new();
    println!("conformance against {} (2 shards)", gw.mcp_url);
    for &(scenario, spec_version) in RUNS {
        let checks = run_scenario(&gw.mcp_url, scenario, spec_version);
        let count = |status: &str| checks.iter().filter(|c| c.status == status).count();
        println!(
            "  {:<45} {:>3} checks: {} success, {} failure, {} warning",
            run_label(scenario, spec_version),
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
                let tag = run_label(scenario, spec_version);
                verdict
                    .messages
                    .push(format!("[{tag}] {}: {message}", check.status));
            }
        }
    }

    let mut unexpected = Vec::new();
    for (key, verdict) in &verdicts {
        match (verdict.failed, expected.get(key)) {
            (true, Some(reason)) => println!("  expected failure {key} ({reason})"),
            (true, None) => unexpected.push(format!(
                "{key}\n      {}",
                verdict.messages.join("\n      ")
            )),
            (false, _) if verdict.warned => {
                println!(
                    "  warning {key}\n      {}",
                    verdict.messages.join("\n      ")
                )
            }
            (false, _) => {}
        }
    }
    let stale: Vec<&String> = expected
        .keys()
        .filter(|key| !verdicts.get(*key).is_some_and(|v| v.failed))
        .collect();
    let failed = verdicts.values().filter(|v| v.failed).count();
    println!(
        "conformance: {} check ids, {} failed ({} expected), {} stale expected-failure entries",
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
        problems +=
            &format!("listed in {EXPECTED_FAILURES} but not failing (remove them): {stale:?}\n");
    }
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn expected_failures_name_only_scenarios_that_run() {
    for (key, reason) in expected_failures() {
        let scenario = key.split_once('/').unwrap().0;
        assert!(
            RUNS.iter().any(|&(name, _)| name == scenario),
            "{EXPECTED_FAILURES}: {key} names scenario {scenario}, which this test does not run"
        );
        assert!(
            !reason.is_empty(),
            "{EXPECTED_FAILURES}: {key} gives no reason"
        );
    }
}
