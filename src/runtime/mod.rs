//! Shard bootstrap, pinning, the cross-shard mesh, signals, the epoch clock and graceful drain.
//!
//! [`serve`] checks the platform, resolves the listen ports, starts one pinned glommio executor
//! per core (each a [`shard::Shard`]), waits until every shard listens, reports readiness, and
//! returns once every shard has drained after SIGINT/SIGTERM.

pub mod admin;
pub mod listener;
pub mod mesh;
pub mod plan;
pub mod platform;
pub mod shard;
pub mod signals;
pub mod status;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{self, Config};
use crate::epoch::{index_bytes, EpochTable};
use crate::mcp::router::{Probe, Router, StartFailure};
use crate::mcp::session::Session;
use crate::pipeline::McpFront;
use crate::support::clock::ShardClock;
use crate::upstream::sessions;
use admin::AdminFront;
use glommio::channels::local_channel::LocalSender;
use mesh::{Mesh, MeshMessage};
use plan::{Plan, PlanTerm};
use platform::StartupError;
use shard::{Front, Shard};

/// Where the gateway listens once every shard is up.
pub struct Ready {
    pub mcp: SocketAddr,
    pub admin: SocketAddr,
    pub shards: usize,
}

/// Everything one shard needs to start, moved onto its executor thread.
struct ShardPlan {
    id: u8,
    shards: u8,
    core: usize,
    config: Arc<Config>,
    mesh: MeshBuilder<MeshMessage, Full>,
    mcp: SocketAddr,
    admin: SocketAddr,
    started: mpsc::Sender<Result<(), StartupError>>,
    clock: ShardClock,
    /// Shards still serving; a drained shard keeps answering the mesh until this reaches zero,
    /// so requests forwarded to it during the drain still complete.
    serving: Arc<AtomicUsize>,
}

/// Runs the gateway on `cores` until a shutdown signal, calling `on_ready` once all shards listen.
pub fn serve(
    config: Arc<Config>,
    cores: Vec<usize>,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), StartupError> {
    platform::check_io_uring()?;
    platform::check_memlock(config.server.io_memory_bytes, cores.len())?;
    // Ports chosen by the kernel stay reserved until every shard listens on them.
    let (mcp, mcp_reservation) = platform::resolve_listen("server.listen", config.server.listen)?;
    let (admin, admin_reservation) = platform::resolve_listen("admin.listen", config.admin.listen)?;
    signals::install();
    let shards = cores.len();
    let mesh = MeshBuilder::full(shards, config.limits.mesh_messages_max as usize);
    let (started, startups) = mpsc::channel();
    let clock = ShardClock::start();
    let serving = Arc::new(AtomicUsize::new(shards));
    let mut handles = Vec::with_capacity(shards);
    for (id, core) in cores.iter().copied().enumerate() {
        let plan = ShardPlan {
            id: id as u8,
            shards: shards as u8,
            core,
            config: config.clone(),
            mesh: mesh.clone(),
            mcp,
            admin,
            started: started.clone(),
            clock,
            serving: serving.clone(),
        };
        let handle = LocalExecutorBuilder::new(Placement::Fixed(core))
            .name(&format!("shard-{id}"))
            .io_memory(config.server.io_memory_bytes as usize)
            .spawn(move || run_shard(plan))
            .map_err(|e| StartupError::Shard {
                shard: id,
                message: e.to_string(),
            })?;
        handles.push(handle);
    }
    drop(started);
    let mut failure = None;
    for _ in 0..shards {
        match startups.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => {
                failure = failure.or(Some(StartupError::Shard {
                    shard: 0,
                    message: "a shard stopped before reporting".into(),
                }))
            }
        }
    }
    drop((mcp_reservation, admin_reservation));
    match failure {
        None => on_ready(&Ready { mcp, admin, shards }),
        Some(_) => signals::request_shutdown(),
    }
    for (id, handle) in handles.into_iter().enumerate() {
        if let Err(e) = handle.join() {
            failure = failure.or(Some(StartupError::Shard {
                shard: id,
                message: e.to_string(),
            }));
        }
    }
    failure.map_or(Ok(()), Err)
}

async fn run_shard(plan: ShardPlan) {
    let started = plan.started.clone();
    let shard = match start_shard(&plan).await {
        Ok(shard) => shard,
        Err(e) => {
            let _ = started.send(Err(e));
            signals::request_shutdown();
            plan.serving.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    };
    let (shard, listener, admin) = shard;
    let _ = started.send(Ok(()));
    glommio::spawn_local(signals::watch(shard.clone())).detach();
    let clock = shard.clone();
    glommio::spawn_local(async move { clock.epoch_clock().await }).detach();
    if let Some(admin) = admin {
        let shards = plan.shards;
        let front = shard.clone();
        glommio::spawn_local(async move {
            front
                .accept_loop(admin, Front::Admin, |shard| AdminFront { shard, shards })
                .await
        })
        .detach();
    }
    shard
        .accept_loop(listener, Front::Mcp, |shard| McpFront { shard })
        .await;
    shard.drain().await;
    shard
        .pipeline
        .endpoint
        .router()
        .upstreams()
        .shutdown()
        .await;
    plan.serving.fetch_sub(1, Ordering::SeqCst);
    while plan.serving.load(Ordering::SeqCst) > 0 {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}

type Started = (Rc<Shard>, TcpListener, Option<TcpListener>);

async fn start_shard(plan: &ShardPlan) -> Result<Started, StartupError> {
    let fail = |message: String| StartupError::Shard {
        shard: plan.id as usize,
        message,
    };
    let (senders, mut receivers) = plan
        .mesh
        .clone()
        .join()
        .await
        .map_err(|_| fail("cannot join the shard mesh".into()))?;
    let mesh = Mesh::new(senders, plan.config.limits.forwarded_requests_max).map_err(fail)?;
    let shard = Shard::new(
        plan.id,
        plan.shards,
        plan.core,
        plan.config.clone(),
        mesh,
        plan.clock,
    )
    .map_err(fail)?;
    let shard = Rc::new(shard);
    // Dispatchers first: a stdio upstream's handshake answer arrives through its dispatcher.
    let router = shard.pipeline.endpoint.router();
    router.upstreams().spawn_dispatchers();
    if let Err(failure) = router.start(plan.config.server.startup_timeout_ms).await {
        // Its children stop now: glommio drops no task of an executor that returned.
        router.upstreams().shutdown().await;
        return Err(match failure {
            StartFailure::RequiredDown(message) => fail(message),
            StartFailure::Collision(message) => StartupError::NamesCollide(message),
        });
    }
    let bind = |key: &'static str, addr: SocketAddr| {
        listener::bind_shared(addr).map_err(|error| StartupError::Bind { key, addr, error })
    };
    let listener = bind("server.listen", plan.mcp)?;
    let admin = match plan.id {
        0 => Some(bind("admin.listen", plan.admin)?),
        _ => None,
    };
    for (peer, receiver) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(message) = receiver.recv().await {
                let shard = shard.clone();
                glommio::spawn_local(
                    async move { shard.on_mesh_message(peer as u8, message).await },
                )
                .detach();
            }
        })
        .detach();
    }
    Ok((shard, listener, admin))
}

/// What `check` learns, from one unpinned thread: first what `serve` checks of this machine
/// before it starts shards (io_uring, RLIMIT_MEMLOCK for `shards` shards, both listen
/// addresses free), then, by connecting to every upstream at once as a shard's start does,
/// a line per upstream (what it offers, or why it is not up), which required ones are down,
/// and whether merged names collide. `Err` names a machine problem that would stop `serve`
/// (exit 1), or says the probe itself could not run.
pub fn probe_upstreams(config: Arc<Config>, shards: usize) -> Result<Probe, String> {
    platform::check_io_uring().map_err(|e| e.to_string())?;
    platform::check_memlock(config.server.io_memory_bytes, shards).map_err(|e| e.to_string())?;
    for (key, addr) in [
        ("server.listen", config.server.listen),
        ("admin.listen", config.admin.listen),
    ] {
        // A port 0 reservation is released at once: `serve` picks its own.
        platform::resolve_listen(key, addr).map_err(|e| e.to_string())?;
    }
    let io_memory = config.server.io_memory_bytes as usize;
    LocalExecutorBuilder::new(Placement::Unbound)
        .name("check")
        .io_memory(io_memory)
        .spawn(move || async move {
            let router = Router::new(&config, 0, ShardClock::start())?;
            // A stdio upstream's handshake answer arrives through its dispatcher.
            router.upstreams().spawn_dispatchers();
            let probed = router.probe(config.server.startup_timeout_ms).await;
            router.upstreams().shutdown().await;
            Ok(probed)
        })
        .map_err(|e| format!("cannot start the probe thread: {e}"))?
        .join()
        .map_err(|e| format!("the probe thread failed: {e}"))?
}

/// The memory plan of `config` on `shards` shards: the config's fixed terms plus the tables
/// this runtime builds, sized from their real structures.
pub fn plan(config: &Config, shards: u16) -> Plan {
    let limits = crate::mcp::session::table_limits(config);
    let ceiling = EpochTable::<u128, Session>::memory_ceiling(&limits);
    let forwarded_max = config.limits.forwarded_requests_max;
    let forwarded_index = index_bytes::<(mesh::Ticket, LocalSender<MeshMessage>)>(
        Mesh::index_capacity(forwarded_max),
    );
    // Each forwarded request carries a copy of its body over, and its answer back.
    let forwarded_copies = u64::from(forwarded_max)
        * (config.limits.request_body_bytes_max + config.limits.response_body_bytes_max);
    // The secrets of sessions that ended, waiting for the router to close their upstream
    // sessions: one per session at most.
    let ended_bytes = u64::from(limits.entries_max) * std::mem::size_of::<u128>() as u64;
    let mut terms = vec![
        PlanTerm {
            name: "session table".into(),
            per_shard_bytes: ceiling.total() + ended_bytes,
            explanation: format!(
                "sessions_max {} → slab {} + index {} + key lists {} + ended list {} bytes; \
                 arenas generations {} × session_arena_bytes_max {} + chunk overhead {} bytes",
                limits.entries_max,
                ceiling.slab_bytes,
                ceiling.index_bytes,
                ceiling.key_lists_bytes,
                ended_bytes,
                limits.generations,
                limits.arena_bytes_max,
                ceiling.arena_overhead_bytes,
            ),
        },
        PlanTerm {
            name: "forwarded requests".into(),
            per_shard_bytes: forwarded_index + forwarded_copies,
            explanation: format!(
                "ticket index {forwarded_index} bytes + limits.forwarded_requests_max \
                 {forwarded_max} × (request_body_bytes_max + response_body_bytes_max) copied \
                 between shards"
            ),
        },
        PlanTerm {
            name: "executor thread".into(),
            per_shard_bytes: EXECUTOR_THREAD_BYTES,
            explanation:
                "the shard thread's stack (2 MiB, the Rust default) and its io_uring rings".into(),
        },
        PlanTerm::mesh_message(
            std::mem::size_of::<MeshMessage>() as u64,
            "one cross-shard message; the bodies it carries are the forwarded requests row".into(),
        ),
    ];
    terms.extend(client_session_terms(config));
    let image_bytes = std::env::current_exe()
        .and_then(std::fs::metadata)
        .map_or(0, |meta| meta.len());
    plan::plan(config, shards, &terms).with_process_term(PlanTerm {
        name: "program image".into(),
        per_shard_bytes: image_bytes + PROCESS_THREADS_BYTES,
        explanation: format!(
            "once per process: the executable ({image_bytes} bytes, all of it as if resident) \
             and the main and signal threads' stacks"
        ),
    })
}

/// One row per `session_mode = "per_client"` upstream: its table of upstream sessions, one per
/// client session (`sessions.sessions_max`), each keeping its upstream's session id.
fn client_session_terms(config: &Config) -> Vec<PlanTerm> {
    let sessions_max = config.sessions.sessions_max;
    config
        .upstreams
        .iter()
        .filter(|upstream| {
            matches!(&upstream.kind, config::UpstreamKind::Http(http)
                if http.session_mode == config::SessionMode::PerClient)
        })
        .map(|upstream| PlanTerm {
            name: format!("upstream {} sessions", upstream.name).into(),
            per_shard_bytes: sessions::memory_ceiling_bytes(sessions_max),
            explanation: format!(
                "session_mode per_client: sessions.sessions_max {sessions_max} → index + \
                 {} bytes of session id each",
                sessions::SESSION_ID_BYTES_MAX
            ),
        })
        .collect()
}

/// A shard thread's stack (std's 2 MiB default) plus glommio's three rings of 128 entries
/// (64-byte submissions, two 16-byte completions each).
const EXECUTOR_THREAD_BYTES: u64 = 2 * 1024 * 1024 + 3 * 128 * (64 + 2 * 16);

/// The main thread's stack (8 MiB, the usual `ulimit -s`) and the signal thread's (2 MiB).
const PROCESS_THREADS_BYTES: u64 = 10 * 1024 * 1024;
