//! Goal: the session table is bounded. A client that opens sessions and never deletes them can
//! make the gateway refuse `initialize` with 503 + `Retry-After`, never hold more than
//! `sessions_max`, and never grow past the memory ceiling `shardgate plan` prints; idle sessions
//! are reclaimed wholesale within `session_idle_ttl_ms + generations × tick_ms`, arenas included.
//!
//! Method: one shard with sessions_max=50, ttl 2 s, tick 250 ms, 4 generations. Send 500
//! `initialize` calls in batches on keep-alive connections, polling `/status` and VmRSS between
//! batches; then wait out the TTL and poll until the table and every arena are empty.

mod common;

use std::time::{Duration, Instant};

use common::client::Conn;
use common::mcp::SESSION_VERSION_LATEST;
use common::{config_with, plan_total_bytes, rss_bytes, rss_peak_bytes, Gateway};
use serde_json::Value;

const SESSIONS_MAX: u64 = 50;
const SESSION_IDLE_TTL_MS: u64 = 2000;
const TICK_MS: u64 = 250;
const GENERATIONS: u64 = 4;
const RETRY_AFTER_S: u64 = 3;
const INITIALIZE_CALLS: u64 = 500;
const BATCH_CALLS: u64 = 50;
/// Slack for scheduling on a loaded 2-core CI machine.
const RECLAIM_MARGIN_MS: u64 = 3000;

/// Small connection limits keep the plan's connection-buffer term (connections_max × buffer
/// sizes) from dwarfing everything else, so the RSS ceiling is a tight bound worth asserting.
fn bounded_config() -> String {
    config_with(&format!(
        "[sessions]\nsessions_max = {SESSIONS_MAX}\nsession_idle_ttl_ms = {SESSION_IDLE_TTL_MS}\n\
         retry_after_s = {RETRY_AFTER_S}\n\n\
         [epoch]\ntick_ms = {TICK_MS}\ngenerations = {GENERATIONS}\n\n\
         [limits]\nconnections_max = 16\nheader_bytes_max = 8192\n\
         request_body_bytes_max = 65536\nresponse_body_bytes_max = 65536\n"
    ))
}

#[derive(Default, Debug)]
struct Tally {
    created: u64,
    refused: u64,
}

/// Sends one batch of `initialize` calls on one keep-alive connection, checking each answer.
fn initialize_batch(gw: &Gateway, first_id: u64, tally: &mut Tally) {
    let mut conn = Conn::connect(&gw.mcp_addr);
    for id in first_id..first_id + BATCH_CALLS {
        let response = gw.initialize_on(&mut conn, id, SESSION_VERSION_LATEST);
        match response.status {
            200 => {
                assert!(
                    response.header("Mcp-Session-Id").is_some(),
                    "200 without a session id"
                );
                tally.created += 1;
            }
            503 => {
                assert_eq!(
                    response.header("Retry-After"),
                    Some(RETRY_AFTER_S.to_string().as_str()),
                    "503 carries Retry-After = retry_after_s"
                );
                assert!(
                    response.header("Mcp-Session-Id").is_none(),
                    "refusal mints no session"
                );
                let body = response.json();
                let message = body["error"]["message"].as_str().unwrap_or("");
                assert!(
                    message.contains("sessions_max"),
                    "503 names sessions_max: {body}"
                );
                tally.refused += 1;
            }
            other => panic!("initialize {id}: unexpected {other}: {}", response.text()),
        }
    }
}

fn shard0(status: &Value) -> &Value {
    &status["shards"][0]
}

fn arenas_empty(status: &Value) -> bool {
    shard0(status)["arena"]
        .as_array()
        .expect("arena array on /status")
        .iter()
        .all(|generation| generation["used_bytes"] == 0)
}

/// Sends all `INITIALIZE_CALLS` in batches, asserting the sessions gauge after each batch.
fn flood_with_initialize(gw: &Gateway) -> Tally {
    let mut tally = Tally::default();
    for first_id in (0..INITIALIZE_CALLS).step_by(BATCH_CALLS as usize) {
        initialize_batch(gw, first_id, &mut tally);
        let status = gw.status();
        let sessions = shard0(&status)["sessions"]
            .as_u64()
            .expect("shard sessions gauge");
        assert!(
            sessions <= SESSIONS_MAX,
            "sessions gauge {sessions} > sessions_max"
        );
        assert_eq!(shard0(&status)["sessions_max"], SESSIONS_MAX);
    }
    assert_eq!(tally.created + tally.refused, INITIALIZE_CALLS);
    tally
}

/// Polls `/status` until the table and every arena generation are empty; returns that status.
fn wait_for_reclaim(gw: &Gateway) -> Value {
    let reclaim_by = Duration::from_millis(SESSION_IDLE_TTL_MS + GENERATIONS * TICK_MS);
    let deadline = Instant::now() + reclaim_by + Duration::from_millis(RECLAIM_MARGIN_MS);
    loop {
        let status = gw.status();
        if shard0(&status)["sessions"] == 0 && arenas_empty(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "not reclaimed within ttl + generations x tick + {RECLAIM_MARGIN_MS} ms: {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn session_table_stays_within_sessions_max_and_drains_after_ttl() {
    let gw = Gateway::start(&bounded_config(), 1);
    let ceiling_bytes = plan_total_bytes(&gw.config_path, 1);
    let rss_start = rss_bytes(gw.pid());
    let tally = flood_with_initialize(&gw);
    assert!(
        tally.created >= SESSIONS_MAX,
        "at least sessions_max were created: {tally:?}"
    );
    assert!(tally.refused > 0, "the excess was refused: {tally:?}");
    let status = gw.status();
    let counted = status["totals"]["refusals"]["sessions_full"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        counted, tally.refused,
        "refusals.sessions_full counts every 503: {status}"
    );
    let growth = rss_peak_bytes(gw.pid()).saturating_sub(rss_start);
    assert!(
        growth < ceiling_bytes,
        "VmHWM grew {growth} bytes over the flood, more than the plan ceiling {ceiling_bytes}"
    );

    let status = wait_for_reclaim(&gw);
    assert_eq!(status["totals"]["sessions"], 0);
    assert!(
        shard0(&status)["epoch"].as_u64().unwrap() > 0,
        "epoch clock advanced: {status}"
    );
}

#[test]
fn process_rss_stays_under_the_plan_total() {
    let gw = Gateway::start(&bounded_config(), 1);
    let ceiling_bytes = plan_total_bytes(&gw.config_path, 1);
    let rss_start = rss_bytes(gw.pid());
    flood_with_initialize(&gw);
    let rss_peak = rss_peak_bytes(gw.pid());
    assert!(
        rss_peak < ceiling_bytes,
        "VmHWM {rss_peak} bytes (VmRSS {rss_start} at ready) over the `plan` total \
         {ceiling_bytes} bytes"
    );
}

#[test]
fn session_idle_past_ttl_is_404_before_it_is_reclaimed() {
    let gw = Gateway::start(&bounded_config(), 1);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let ping = common::mcp::rpc(2, "ping", serde_json::json!({}));
    assert_eq!(
        gw.session_call(&session, &ping).status,
        200,
        "fresh session answers"
    );
    // Gone as soon as it is idle past the TTL, even while its entry still awaits reclamation.
    std::thread::sleep(Duration::from_millis(SESSION_IDLE_TTL_MS + TICK_MS));
    let response = gw.session_call(&session, &ping);
    assert_eq!(response.status, 404, "idle past ttl: {}", response.text());
}

#[test]
fn session_in_use_outlives_idle_ttl() {
    let gw = Gateway::start(&bounded_config(), 1);
    let session = gw.open_session(SESSION_VERSION_LATEST);
    let ping = common::mcp::rpc(2, "ping", serde_json::json!({}));
    // Touch it every half TTL for two TTLs: each use resets the idle clock.
    let until = Instant::now() + Duration::from_millis(SESSION_IDLE_TTL_MS * 2);
    while Instant::now() < until {
        let response = gw.session_call(&session, &ping);
        assert_eq!(
            response.status,
            200,
            "session in use expired: {}",
            response.text()
        );
        std::thread::sleep(Duration::from_millis(SESSION_IDLE_TTL_MS / 2));
    }
}
