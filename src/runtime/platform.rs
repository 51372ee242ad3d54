//! Start-up checks that turn platform problems into plain, actionable errors before any shard
//! starts: io_uring availability, RLIMIT_MEMLOCK, the core list, and ports already taken.

use std::fmt;
use std::net::SocketAddr;

use crate::config::Cores;

/// glommio refuses to start below this RLIMIT_MEMLOCK (it registers io buffers with io_uring).
const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// Why the gateway cannot start on this machine. Each message says what to change.
#[derive(Debug)]
pub enum StartupError {
    /// `io_uring_setup` failed: disabled by sysctl, blocked by seccomp, or not in the kernel.
    IoUringUnavailable(std::io::Error),
    /// RLIMIT_MEMLOCK is below what glommio needs for `io_memory_bytes`.
    MemlockTooLow { limit_bytes: u64, needed_bytes: u64 },
    /// A configured core is not in the process's affinity mask.
    CoreUnavailable { core: u16, available: Vec<usize> },
    /// `--cores N` asks for more cores than the process may run on.
    TooFewCores { wanted: u16, available: Vec<usize> },
    /// A listen address is already in use (or otherwise cannot be bound).
    Bind {
        key: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// A shard failed while starting (a required upstream down, among others).
    Shard { shard: usize, message: String },
    /// Two upstreams offer one merged tool or prompt name: the configuration is wrong.
    NamesCollide(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IoUringUnavailable(e) => {
                let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                    .map(|s| s.trim().to_owned())
                    .unwrap_or_else(|_| "unknown".to_owned());
                write!(
                    f,
                    "io_uring is unavailable: io_uring_setup failed: {e} \
                     (kernel.io_uring_disabled = {disabled}). shardgate needs io_uring: set \
                     `sysctl kernel.io_uring_disabled=0`, or in a container allow io_uring_setup, \
                     io_uring_enter and io_uring_register in the seccomp profile (Docker >= 25 \
                     blocks them by default: run with --security-opt seccomp=<profile> allowing them)"
                )
            }
            Self::MemlockTooLow {
                limit_bytes,
                needed_bytes,
            } => write!(
                f,
                "RLIMIT_MEMLOCK is {limit_bytes} bytes but each shard locks {needed_bytes} bytes \
                 (server.io_memory_bytes, at least {MEMLOCK_BYTES_MIN}): raise it with \
                 `ulimit -l` / LimitMEMLOCK= in the systemd unit, or lower server.io_memory_bytes"
            ),
            Self::CoreUnavailable { core, available } => write!(
                f,
                "core {core} from server.cores is not available to this process \
                 (allowed cores: {available:?}); pick cores from that list or use cores = \"all\""
            ),
            Self::TooFewCores { wanted, available } => write!(
                f,
                "{wanted} cores requested but this process may run on only {} ({available:?}); \
                 lower --cores / server.cores",
                available.len()
            ),
            Self::Bind { key, addr, error } => write!(
                f,
                "cannot listen on {addr} ({key}): {error}; is another process using the port? \
                 change {key} or stop the other process"
            ),
            Self::Shard { shard, message } => write!(f, "shard {shard} failed to start: {message}"),
            Self::NamesCollide(message) => write!(f, "invalid configuration:\n{message}"),
        }
    }
}

impl StartupError {
    /// The exit status `serve` ends with: 2 when the configuration is wrong (as for a file that
    /// does not validate), 1 when this machine or an upstream keeps it from starting.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::CoreUnavailable { .. } | Self::TooFewCores { .. } | Self::NamesCollide(_) => 2,
            _ => 1,
        }
    }
}

impl std::error::Error for StartupError {}

/// Proves io_uring works here by creating (and dropping) a tiny ring.
pub fn check_io_uring() -> Result<(), StartupError> {
    io_uring::IoUring::new(2)
        .map(drop)
        .map_err(StartupError::IoUringUnavailable)
}

/// Checks that RLIMIT_MEMLOCK leaves room for every shard's registered io memory.
pub fn check_memlock(io_memory_bytes: u64, shards: usize) -> Result<(), StartupError> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid, exclusively borrowed `limit`; no other invariant.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    if rc != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return Ok(());
    }
    // Each executor registers its io memory separately; the limit is per process.
    let needed = io_memory_bytes.max(MEMLOCK_BYTES_MIN) * shards as u64;
    if limit.rlim_cur < needed {
        return Err(StartupError::MemlockTooLow {
            limit_bytes: limit.rlim_cur,
            needed_bytes: needed,
        });
    }
    Ok(())
}

/// Shards one process runs at most: a shard's number is one byte in session ids and on the mesh.
pub const SHARDS_MAX: u16 = 256;

/// The cores to run shards on: the configured choice intersected with `available` (the
/// process affinity mask, read before any thread is pinned), in ascending order.
pub fn select_cores(configured: &Cores, available: &[usize]) -> Result<Vec<usize>, StartupError> {
    let mut available = available.to_vec();
    available.sort_unstable();
    if matches!(configured, Cores::All) {
        available.truncate(SHARDS_MAX as usize);
    }
    match configured {
        Cores::All => Ok(available),
        Cores::Count(wanted) if (*wanted as usize) <= available.len() => {
            Ok(available[..*wanted as usize].to_vec())
        }
        Cores::Count(wanted) => Err(StartupError::TooFewCores {
            wanted: *wanted,
            available,
        }),
        Cores::List(list) => list
            .iter()
            .map(|&core| match available.contains(&(core as usize)) {
                true => Ok(core as usize),
                false => Err(StartupError::CoreUnavailable {
                    core,
                    available: available.clone(),
                }),
            })
            .collect(),
    }
}

/// Finds out whether another process already serves `addr`, and resolves port 0 to a concrete
/// port every shard can then share. glommio's listeners use SO_REUSEPORT, so a second gateway
/// could otherwise silently share the port: a connect that succeeds means someone listens. A
/// plain probe bind cannot tell instead, because the TIME_WAIT connections of a previous run
/// on the same port make it fail for a minute after every restart.
pub fn resolve_listen(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(SocketAddr, Option<socket2::Socket>), StartupError> {
    let bind_error = |error| StartupError::Bind { key, addr, error };
    if addr.port() == 0 {
        let (bound, reservation) = super::listener::reserve_ephemeral(addr).map_err(bind_error)?;
        return Ok((bound, Some(reservation)));
    }
    let target = match addr.ip().is_unspecified() {
        true => SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port()),
        false => addr,
    };
    match std::net::TcpStream::connect_timeout(&target, PORT_PROBE_TIMEOUT) {
        Ok(_) => Err(bind_error(std::io::Error::from(
            std::io::ErrorKind::AddrInUse,
        ))),
        Err(_) => Ok((addr, None)),
    }
}

/// How long the port probe waits for a connect; loopback answers in microseconds.
const PORT_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_listen_reports_a_taken_port_with_its_config_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = resolve_listen("server.listen", addr).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.listen"), "{text}");
        assert!(text.contains(&addr.to_string()), "{text}");
    }

    #[test]
    fn resolve_listen_turns_port_zero_into_a_free_port() {
        let (addr, reservation) =
            resolve_listen("admin.listen", "127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(addr.port(), 0);
        let shard = super::super::listener::reserve_ephemeral(addr);
        assert!(
            shard.is_ok(),
            "a shard can bind the reserved port: {shard:?}"
        );
        // While it is held, the kernel hands the port to no other port-0 bind.
        let others: Vec<_> = (0..200)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        assert!(
            others
                .iter()
                .all(|other| other.local_addr().unwrap() != addr),
            "port {addr} was handed out while reserved"
        );
        drop((reservation, shard, others));
        std::net::TcpListener::bind(addr).expect("the resolved port is free again");
    }

    #[test]
    fn memlock_check_names_the_key_to_lower() {
        let err = StartupError::MemlockTooLow {
            limit_bytes: 65536,
            needed_bytes: 2 << 20,
        };
        assert!(err.to_string().contains("server.io_memory_bytes"));
    }

    #[test]
    fn select_cores_intersects_the_choice_with_the_affinity_mask() {
        let available = [3, 1, 2];
        assert_eq!(
            select_cores(&Cores::All, &available).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            select_cores(&Cores::Count(2), &available).unwrap(),
            vec![1, 2]
        );
        assert_eq!(
            select_cores(&Cores::List(vec![3, 1]), &available).unwrap(),
            vec![3, 1]
        );
        let err = select_cores(&Cores::List(vec![0]), &available).unwrap_err();
        assert!(err.to_string().contains("core 0"), "{err}");
        let err = select_cores(&Cores::Count(4), &available).unwrap_err();
        assert!(err.to_string().contains("4 cores requested"), "{err}");
    }

    #[test]
    fn io_uring_is_available_on_the_test_machine() {
        check_io_uring().expect("tests run where io_uring works");
    }
}
