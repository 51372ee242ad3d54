//! Goal: the admin port answers health, readiness and a `/status` document with every gauge the
//! contract lists, per shard and in total, so operators and the bound tests can rely on it.
//!
//! Method: start the real binary on two shards, open a session and provoke one refusal, then
//! read `/healthz`, `/readyz` and `/status` over raw HTTP/1.1 and check fields and sums.

mod common;

use common::client::{oneshot, Request};
use common::mcp::{initialize_body, post, SESSION_VERSION_LATEST};
use common::{config_with, Gateway};
use serde_json::Value;

fn gateway() -> Gateway {
    Gateway::start(&config_with(""), 2)
}

#[test]
fn healthz_is_200_ok_and_readyz_is_200_when_every_shard_is_up() {
    let gw = gateway();
    let health = gw.admin_get("/healthz");
    assert_eq!(health.status, 200);
    assert_eq!(health.text().trim(), "ok");
    assert_eq!(
        gw.admin_get("/readyz").status,
        200,
        "both shards are up after ready"
    );
}

#[test]
fn unknown_admin_path_is_404() {
    let gw = gateway();
    assert_eq!(gw.admin_get("/nope").status, 404);
}

/// Sums `field` over the shards of a `/status` document.
fn shard_sum(status: &Value, field: &str) -> u64 {
    let shards = status["shards"].as_array().expect("shards array");
    shards
        .iter()
        .map(|shard| shard[field].as_u64().unwrap_or_else(|| panic!("{field}")))
        .sum()
}

#[test]
fn status_lists_every_shard_gauge_and_totals_are_their_sums() {
    let gw = gateway();
    gw.open_session(SESSION_VERSION_LATEST);
    let refused = gw.call(
        &post(&gw.mcp_path(), &initialize_body(1, SESSION_VERSION_LATEST))
            .header("Origin", "http://evil.example"),
    );
    assert_eq!(refused.status, 403);

    let status = gw.status();
    let shards = status["shards"].as_array().expect("shards array");
    assert_eq!(shards.len(), 2, "{status}");
    for (index, shard) in shards.iter().enumerate() {
        assert_eq!(shard["shard"], index as u64, "shards in order: {status}");
        for gauge in [
            "core",
            "connections",
            "connections_max",
            "sessions",
            "sessions_max",
            "epoch",
            "early_retires",
            "forwarded_in_flight",
        ] {
            assert!(
                shard[gauge].is_u64(),
                "shard {index} lacks {gauge}: {shard}"
            );
        }
        let arena = shard["arena"].as_array().expect("arena generations");
        assert!(!arena.is_empty(), "arena generations listed: {shard}");
        for generation in arena {
            for field in ["generation", "used_bytes", "allocated_bytes"] {
                assert!(generation[field].is_u64(), "arena {field}: {generation}");
            }
        }
        assert!(shard["refusals"].is_object(), "refusals map: {shard}");
    }
    let totals = &status["totals"];
    assert_eq!(totals["sessions"], shard_sum(&status, "sessions"));
    assert_eq!(totals["sessions"], 1, "the one open session: {status}");
    assert_eq!(totals["connections"], shard_sum(&status, "connections"));
    let forbidden: u64 = shards
        .iter()
        .map(|shard| shard["refusals"]["origin_forbidden"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(forbidden, 1, "the 403 is counted on its shard: {status}");
    assert_eq!(
        totals["refusals"]["origin_forbidden"], 1,
        "and in the totals: {status}"
    );
}

#[test]
fn admin_port_serves_http_1_1_with_connection_close() {
    let gw = gateway();
    let response = oneshot(&gw.admin_addr, &Request::new("GET", "/healthz"));
    assert_eq!(
        response.status, 200,
        "request without Connection: close is answered too"
    );
}
