//! One in-process shard, wired as `runtime::serve` wires each of its shards (mesh, router
//! dispatchers and start, epoch clock, MCP accept loop), on a glommio executor owned by the
//! fuzzing thread. The executor runs only while [`Gateway::run`] does: between inputs the
//! shard's tasks wait where they are, and the next input's run carries them on.

use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use shardgate::config::{Config, UpstreamKind};
use shardgate::http::HttpLimits;
use shardgate::mcp::router::StartFailure;
use shardgate::pipeline::McpFront;
use shardgate::runtime::mesh::Mesh;
use shardgate::runtime::shard::{Front, Shard};
use shardgate::support::clock::ShardClock;

/// The demo `sleep` tool's cap: a call the fuzzer asks to sleep ends within a few of these, so
/// one input never waits on the default minute.
const SLEEP_MS_MAX: u64 = 20;

/// The shard and the executor that runs it.
pub struct Gateway {
    executor: LocalExecutor,
    /// Where the shard's MCP front listens (loopback, a port the kernel picked).
    pub addr: SocketAddr,
    /// The shard's HTTP limits, to frame the client's bytes as the shard frames them.
    pub http_limits: HttpLimits,
    /// Where the shard's MCP endpoint is (`server.path`).
    pub path: String,
}

impl Gateway {
    /// Starts the shard on the default config, its demo upstream's `sleep` capped.
    pub fn start() -> Gateway {
        // Rust's runtime ignores SIGPIPE before `main`, so the real gateway's writes to a
        // closed socket fail with EPIPE; libFuzzer's `main` does not, and glommio sends
        // without MSG_NOSIGNAL.
        // SAFETY: installs SIG_IGN, no handler code; done before any socket exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        }
        let mut config = Config::default_embedded();
        for upstream in &mut config.upstreams {
            if let UpstreamKind::Builtin { sleep_ms_max } = &mut upstream.kind {
                *sleep_ms_max = SLEEP_MS_MAX;
            }
        }
        let config = Arc::new(config);
        let executor = LocalExecutorBuilder::new(Placement::Unbound)
            .io_memory(config.server.io_memory_bytes as usize)
            .make()
            .unwrap_or_else(|e| panic!("cannot make the shard's executor: {e}"));
        let addr = executor.run(start_shard(config.clone()));
        Gateway {
            executor,
            addr,
            http_limits: HttpLimits::from_config(&config),
            path: config.server.path.clone(),
        }
    }

    /// Runs the shard's executor until `future` is done.
    pub fn run<T>(&self, future: impl Future<Output = T>) -> T {
        self.executor.run(future)
    }
}

/// Builds shard 0 of 1, starts its upstreams and its MCP front; where the front listens.
async fn start_shard(config: Arc<Config>) -> SocketAddr {
    let mesh = MeshBuilder::full(1, config.limits.mesh_messages_max as usize);
    let (senders, _receivers) = mesh
        .join()
        .await
        .unwrap_or_else(|e| panic!("cannot join a mesh of one shard: {e}"));
    let mesh = Mesh::new(senders, config.limits.forwarded_requests_max)
        .unwrap_or_else(|e| panic!("cannot build the mesh: {e}"));
    let shard = Shard::new(0, 1, 0, config.clone(), mesh, ShardClock::start())
        .unwrap_or_else(|e| panic!("cannot build the shard: {e}"));
    let shard = Rc::new(shard);
    let router = shard.pipeline.endpoint.router();
    router.upstreams().spawn_dispatchers();
    if let Err(failure) = router.start(config.server.startup_timeout_ms).await {
        let (StartFailure::RequiredDown(message) | StartFailure::Collision(message)) = failure;
        panic!("the shard's upstreams did not start: {message}");
    }
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot listen on loopback: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("the listener has no address: {e}"));
    let clock = shard.clone();
    glommio::spawn_local(async move { clock.epoch_clock().await }).detach();
    glommio::spawn_local(async move {
        shard
            .accept_loop(listener, Front::Mcp, |shard| McpFront { shard })
            .await
    })
    .detach();
    addr
}
