//! The cross-shard mesh: bounded SPSC channels between every pair of shards, wired at start-up.
//!
//! Only owned, `Send` messages cross it. A request for a session owned by another shard travels
//! as [`MeshMessage::Forward`] and its answer comes back as [`MeshMessage::Reply`] with the same
//! ticket; `/status` gathers shard gauges the same way. Each shard keeps the tickets it is
//! waiting on in a table bounded by `limits.forwarded_requests_max`: an entry lives exactly as
//! long as the task that waits for it (removed by a drop guard), so there is nothing for an epoch
//! to reclaim, and a full table refuses with 503.

use std::cell::{Cell, RefCell};

use glommio::channels::channel_mesh::Senders;
use glommio::channels::local_channel::{self, LocalSender};
use hashbrown::HashMap;

use crate::mcp::transport::{HttpMethod, HttpReply, McpHeaders, McpRequest};
use crate::runtime::status::ShardStatus;

/// Identifies one waiting request on the shard that sent it.
pub type Ticket = u64;

/// Everything that crosses between shards. The sending shard owns it until `send_to`; the
/// receiving shard owns and drops it.
pub enum MeshMessage {
    /// Origin → owner: handle this request for a session you own.
    Forward {
        ticket: Ticket,
        request: ForwardedRequest,
    },
    /// Owner → origin: the answer to `Forward` with the same ticket.
    Reply {
        ticket: Ticket,
        reply: ForwardedReply,
    },
    /// Shard 0 → any: report your gauges.
    StatusQuery { ticket: Ticket },
    /// Any → shard 0: the gauges.
    StatusReply {
        ticket: Ticket,
        status: Box<ShardStatus>,
    },
}

/// The parts of an MCP request the owning shard needs (origin and media types were checked
/// where the connection arrived).
pub struct ForwardedRequest {
    pub method: HttpMethod,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    pub accept: Option<String>,
    pub body: Vec<u8>,
}

impl ForwardedRequest {
    pub fn from_request(request: &McpRequest<'_>) -> ForwardedRequest {
        let h = &request.headers;
        ForwardedRequest {
            method: request.method,
            session_id: h.session_id.map(str::to_owned),
            protocol_version: h.protocol_version.map(str::to_owned),
            accept: h.accept.map(str::to_owned),
            body: request.body.to_vec(),
        }
    }

    pub fn as_request(&self) -> McpRequest<'_> {
        McpRequest {
            method: self.method,
            headers: McpHeaders {
                session_id: self.session_id.as_deref(),
                protocol_version: self.protocol_version.as_deref(),
                accept: self.accept.as_deref(),
                ..McpHeaders::default()
            },
            body: &self.body,
        }
    }
}

/// The owner's answer to a forwarded request.
pub enum ForwardedReply {
    Http(HttpReply),
    /// The session exists and its GET stream may stay open; the origin keeps the stream.
    StreamOpened,
}

/// Why a message could not be sent to, or answered by, another shard.
#[derive(Debug)]
pub enum MeshError {
    /// `limits.forwarded_requests_max` tickets are already waiting on this shard.
    TicketsFull { forwarded_requests_max: u32 },
    /// The channel to that shard holds `limits.mesh_messages_max` messages.
    ChannelFull { shard: u8 },
    /// The other shard has stopped.
    Closed { shard: u8 },
}

impl std::fmt::Display for MeshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TicketsFull {
                forwarded_requests_max,
            } => write!(
                f,
                "{forwarded_requests_max} requests already wait on other shards \
                 (limits.forwarded_requests_max)"
            ),
            Self::ChannelFull { shard } => write!(
                f,
                "the channel to shard {shard} is full (limits.mesh_messages_max)"
            ),
            Self::Closed { shard } => write!(f, "shard {shard} has stopped"),
        }
    }
}

/// This shard's end of the mesh: senders to every shard and the tickets it waits on.
pub struct Mesh {
    senders: Senders<MeshMessage>,
    waiting: RefCell<HashMap<Ticket, LocalSender<MeshMessage>>>,
    waiting_max: u32,
    next_ticket: Cell<Ticket>,
}

/// Removes a ticket from the waiting table when its waiter finishes or is dropped.
struct TicketGuard<'a> {
    mesh: &'a Mesh,
    ticket: Ticket,
}

impl Drop for TicketGuard<'_> {
    fn drop(&mut self) {
        self.mesh.waiting.borrow_mut().remove(&self.ticket);
    }
}

impl Mesh {
    pub fn new(senders: Senders<MeshMessage>, waiting_max: u32) -> Result<Mesh, String> {
        let mut waiting = HashMap::new();
        // Twice the entries, so removals' tombstones are rehashed in place and never grow it.
        waiting
            .try_reserve(Self::index_capacity(waiting_max))
            .map_err(|e| format!("cannot reserve {waiting_max} forwarded-request slots: {e}"))?;
        Ok(Mesh {
            senders,
            waiting: RefCell::new(waiting),
            waiting_max,
            next_ticket: Cell::new(1),
        })
    }

    /// The capacity the waiting table reserves for `waiting_max` tickets.
    pub fn index_capacity(waiting_max: u32) -> usize {
        2 * waiting_max as usize
    }

    /// Requests waiting on other shards right now.
    pub fn waiting(&self) -> usize {
        self.waiting.borrow().len()
    }

    /// Sends a message built from a fresh ticket to `shard` and waits for the message that
    /// answers it (a `Reply` or a `StatusReply` with the same ticket).
    pub async fn ask(
        &self,
        shard: u8,
        build: impl FnOnce(Ticket) -> MeshMessage,
    ) -> Result<MeshMessage, MeshError> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        let (sender, receiver) = local_channel::new_bounded(1);
        {
            let mut waiting = self.waiting.borrow_mut();
            if waiting.len() >= self.waiting_max as usize {
                return Err(MeshError::TicketsFull {
                    forwarded_requests_max: self.waiting_max,
                });
            }
            waiting.insert(ticket, sender);
        }
        let _guard = TicketGuard { mesh: self, ticket };
        self.send(shard, build(ticket))?;
        receiver.recv().await.ok_or(MeshError::Closed { shard })
    }

    /// Sends without waiting for room: a full channel is an overload answer, not a queue.
    pub fn send(&self, shard: u8, message: MeshMessage) -> Result<(), MeshError> {
        self.senders
            .try_send_to(shard as usize, message)
            .map_err(|_| MeshError::ChannelFull { shard })
    }

    /// Sends an answer, waiting for room: the asker is already waiting for it.
    pub async fn answer(&self, shard: u8, message: MeshMessage) -> Result<(), MeshError> {
        self.senders
            .send_to(shard as usize, message)
            .await
            .map_err(|_| MeshError::Closed { shard })
    }

    /// Hands an answer to the task waiting on its ticket; a ticket nobody waits on any more
    /// (the client left) is dropped.
    pub fn deliver(&self, ticket: Ticket, message: MeshMessage) {
        if let Some(waiter) = self.waiting.borrow_mut().remove(&ticket) {
            let _ = waiter.try_send(message);
        }
    }
}
