//! The shards' shared listening sockets.
//!
//! Every shard binds the same address with `SO_REUSEPORT` so the kernel spreads connections over
//! them. `SO_REUSEADDR` is set too (glommio's own `bind` sets only the first): without it the
//! connections a previous run left in TIME_WAIT would keep a restarted gateway off its port for
//! a minute, and the start-up port probe would blame another process.

use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};

use glommio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

/// Pending connections the kernel queues per shard before `accept`.
const BACKLOG: i32 = 1024;

/// Reserves a free port for `addr` (whose port is 0): a socket bound with `SO_REUSEPORT` but not
/// listening, so the shards can bind the same port while it is held, and no other process's
/// ephemeral bind is given it meanwhile (the kernel hands out only unused ports for port 0).
/// Hold it until every shard listens.
pub fn reserve_ephemeral(addr: SocketAddr) -> std::io::Result<(SocketAddr, Socket)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    let bound = socket.local_addr()?.as_socket().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not an IP socket address")
    })?;
    Ok((bound, socket))
}

/// Binds `addr` for one shard. Must run on the shard's executor (glommio ties the listener to it).
pub fn bind_shared(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    // SAFETY: `into_raw_fd` hands over sole ownership of a bound, listening TCP socket, which is
    // what `TcpListener::from_raw_fd` requires; nothing else holds or closes the descriptor.
    // Exercised by every integration test (all traffic arrives through these listeners).
    Ok(unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) })
}
