//! The scripted Python SDK client (`tests/interop/gateway_client.py`) and readers for its JSON
//! report: one run of a script of steps against an MCP endpoint (a fixture directly, or the
//! gateway in front of fixtures), in the `legacy` (initialize handshake) or `auto` (probes the
//! 2026-07-28 era first) client mode.

use super::upstreams::{interop_file, run_with_deadline, venv_python};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Deadline for one run of the client script (it starts Python and the SDK first).
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(120);
/// The session-era version the SDK client settles on with these peers.
pub const SESSION_ERA: &str = "2025-11-25";
/// The stateless-era version an `auto` client adopts when the endpoint answers server/discover.
pub const STATELESS_ERA: &str = "2026-07-28";
/// The root `gateway_client.py` answers roots/list with.
pub const CLIENT_ROOT: &str = "file:///tmp/shardgate-root";
/// What `gateway_client.py` prefixes to the last user text when it answers a sampling request.
pub const CLIENT_SAMPLED_PREFIX: &str = "sampled-by-client: ";

/// Runs `gateway_client.py URL MODE SCRIPT` and returns its JSON report; panics when it could
/// not run the script or its report lacks a step.
pub fn run_client(url: &str, mode: &str, script: &Value) -> Value {
    run_client_answering(url, mode, script, None)
}

/// [`run_client`] with the client answering only the server requests named in `callbacks`
/// (a comma list of `sampling`, `roots`, `elicitation`; `Some("")` for none), so it declares
/// only those capabilities. `None` answers all three.
pub fn run_client_answering(
    url: &str,
    mode: &str,
    script: &Value,
    callbacks: Option<&str>,
) -> Value {
    let mut cmd = Command::new(venv_python());
    cmd.arg(interop_file("gateway_client.py"))
        .arg(url)
        .arg(mode)
        .arg(script.to_string());
    if let Some(callbacks) = callbacks {
        cmd.arg(callbacks);
    }
    let what = format!("gateway_client.py {url} {mode}");
    let out = run_with_deadline(&what, cmd, CLIENT_DEADLINE);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{what} printed no JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));
    let steps = report["steps"].as_array().expect("steps array");
    assert_eq!(steps.len(), script.as_array().unwrap().len(), "{report:#}");
    report
}

/// The result of step `index`, which must have succeeded.
pub fn ok_result(report: &Value, index: usize) -> &Value {
    let step = &report["steps"][index];
    assert_eq!(
        step["ok"], true,
        "step {index} failed: {step:#}\nreport: {report:#}"
    );
    &step["result"]
}

/// The error of step `index`, which must have failed: `{type, message, code?}`.
pub fn step_error(report: &Value, index: usize) -> &Value {
    let step = &report["steps"][index];
    assert_eq!(
        step["ok"], false,
        "step {index} succeeded: {step:#}\nreport: {report:#}"
    );
    &step["error"]
}

/// The text of the only content block of the tool result of step `index` (not an error).
pub fn tool_text(report: &Value, index: usize) -> &str {
    let result = ok_result(report, index);
    assert_eq!(result["isError"], false, "step {index}: {result:#}");
    let content = result["content"].as_array().expect("content array");
    assert_eq!(content.len(), 1, "step {index}: {result:#}");
    content[0]["text"].as_str().expect("text content")
}

/// The `data` of every log message the client received, in order.
pub fn log_texts(report: &Value) -> Vec<&str> {
    report["logs"]
        .as_array()
        .expect("logs array")
        .iter()
        .filter_map(|log| log["data"].as_str())
        .collect()
}

/// `(progress, total)` of each progress callback of step `index`, in order.
pub fn progress_pairs(report: &Value, index: usize) -> Vec<(f64, f64)> {
    report["steps"][index]["progress"]
        .as_array()
        .unwrap_or_else(|| panic!("step {index} has no progress array: {report:#}"))
        .iter()
        .map(|p| {
            (
                p["progress"].as_f64().expect("progress"),
                p["total"].as_f64().expect("total"),
            )
        })
        .collect()
}
