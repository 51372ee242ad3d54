//! Goal: the admin port answers health, readiness and a `/status` document with every gauge the
//! contract lists, per shard and in total, so operators and the bound tests can rely on it.
//!
//! Method: start the real binary on two shards, open a session and provoke one refusal, then
//! read `/healthz`, `/readyz` and `/status` over raw HTTP/1.1 and check fields and sums.

mod common;

use std::time::Duration;

use common::client::{oneshot, CloseProbe, Conn, Request};
use common::mcp::{initialize_body, post, stateless_body, stateless_post, SESSION_VERSION_LATEST};
use common::{config_with, poll_until, Gateway};
use serde_json::{json, Value};

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

/// MCP and admin connection bounds of 2 each, and a head deadline long enough for idle
/// connections to stay open through the test.
fn small_bounds_gateway() -> Gateway {
    // `config_with` holds an `[admin]` table already; this config sets a key in it.
    let config = config_with("[limits]\nconnections_max = 2\nheader_read_timeout_ms = 60000\n")
        .replacen(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            "[admin]\nlisten = \"127.0.0.1:0\"\nconnections_max = 2\n",
            1,
        );
    assert!(config.contains("connections_max = 2\n\n[["), "{config}");
    Gateway::start(&config, 2)
}

/// A connection to `addr` that the gateway took on and left idle: one it answered at once
/// (refused) is dropped and another opened.
fn idle_connection(addr: &str) -> Conn {
    let accepted = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || {
            let mut conn = Conn::connect(addr);
            let probe = conn.probe_close(Duration::from_millis(300));
            (probe == CloseProbe::Open).then_some(conn)
        },
        Option::is_some,
    );
    accepted
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{addr} kept refusing a connection"))
}

#[test]
fn an_mcp_connection_flood_leaves_healthz_answering() {
    // Goal: shard 0 full of MCP connections still answers its liveness probe, from slots of
    // the admin listener's own.
    let gw = small_bounds_gateway();
    let mut flood = Vec::new();
    let shard0_full = poll_until(
        Duration::from_secs(10),
        Duration::from_millis(10),
        || {
            flood.push(Conn::connect(&gw.mcp_addr));
            gw.status()["shards"][0]["connections"].clone()
        },
        |connections| connections == 2,
    );
    assert!(
        shard0_full.is_ok(),
        "shard 0 never held 2 connections: {shard0_full:?}"
    );
    for _ in 0..3 {
        let health = gw.admin_get("/healthz");
        assert_eq!(health.status, 200, "{}", health.text());
    }
    let status = gw.status();
    assert_eq!(status["shards"][0]["connections"], 2, "{status}");
    assert_eq!(
        status["shards"][0]["admin_connections"], 1,
        "the /status request itself, apart from the MCP ones: {status}"
    );
}

#[test]
fn idle_admin_connections_take_no_mcp_slots_and_the_next_admin_one_is_refused() {
    // Goal: admin connections are bounded by admin.connections_max apart from the MCP
    // listener's connections_max: two idle admin connections fill the admin listener (the
    // next gets 503, counted) while MCP requests on either shard go on.
    let gw = small_bounds_gateway();
    let held = [
        idle_connection(&gw.admin_addr),
        idle_connection(&gw.admin_addr),
    ];
    let refused = oneshot(&gw.admin_addr, &Request::new("GET", "/healthz"));
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert!(
        refused.header("Retry-After").is_some(),
        "503 carries Retry-After"
    );
    assert!(
        refused.text().contains("admin.connections_max"),
        "{}",
        refused.text()
    );
    for id in 1..=8 {
        let body = stateless_body(id, "server/discover", json!({}));
        let response = gw.call(&stateless_post(&gw.mcp_path(), &body));
        assert_eq!(
            response.status,
            200,
            "MCP request {id}: {}",
            response.text()
        );
    }
    drop(held);
    let status = poll_until(
        Duration::from_secs(5),
        Duration::from_millis(50),
        || oneshot(&gw.admin_addr, &Request::new("GET", "/status")),
        |response| response.status == 200,
    )
    .expect("the admin listener answers again once its connections closed")
    .json();
    // The one refused above, and any poll that came before the held ones had closed.
    let refused_total = status["shards"][0]["refusals"]["admin_connections_full"].as_u64();
    assert!(refused_total >= Some(1), "{status}");
    assert!(
        status["shards"][0]["refusals"]["connections_full"].is_null(),
        "no MCP connection was refused: {status}"
    );
}
