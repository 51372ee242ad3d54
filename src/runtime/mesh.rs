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
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use hashbrown::HashMap;

use crate::mcp::transport::{HttpMethod, HttpReply, McpHeaders, McpRequest};
use crate::pipeline::context::RequestContext;
use crate::runtime::status::ShardStatus;

/// Identifies one waiting request on the shard that sent it.
pub type Ticket = u64;

/// Relayed events one forwarded call may have waiting on the origin shard for its client;
/// more are dropped and counted ([`Mesh::relay_events_dropped`]). One more slot is kept for
/// the final answer, so it is never dropped.
const RELAY_EVENTS_QUEUED_MAX: usize = 64;

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
        /// What the owner's phases decided, for the origin's log phase.
        context: RequestContext,
    },
    /// Owner → origin: a notification or request of the upstream call that `Forward` with the
    /// same ticket started, for the client, ahead of the `Reply`.
    RelayEvent { ticket: Ticket, event: Vec<u8> },
    /// Origin → owner: the client of the forwarded call `ticket` left; abandon the call.
    RelayCancel { ticket: Ticket },
    /// Shard 0 → any: report your gauges.
    StatusQuery { ticket: Ticket },
    /// Any → shard 0: the gauges.
    StatusReply {
        ticket: Ticket,
        status: Box<ShardStatus>,
    },
    /// Any → every other shard: `[[upstreams]]` entry `upstream` announced a list change on
    /// this shard's connection to it (servers tell the session that changed the list, which is
    /// one shard's); refresh its lists there too.
    ListsChanged { upstream: u16 },
}

/// The parts of an MCP request the owning shard needs (origin and media types were checked
/// where the connection arrived).
pub struct ForwardedRequest {
    /// What the origin's phases decided so far (who is calling, once authentication lands).
    pub context: RequestContext,
    pub method: HttpMethod,
    pub session_id: Option<String>,
    pub protocol_version: Option<String>,
    pub body: Vec<u8>,
    /// `Mcp-Param-*` fields, for the upstream a call goes to.
    pub param_headers: Vec<(String, String)>,
    /// Only ask whether the session still lives (for a GET stream held by the asking shard);
    /// unlike a request, the check does not extend the session's idle deadline.
    pub stream_check: bool,
}

impl ForwardedRequest {
    pub fn from_request(request: &McpRequest<'_>, context: RequestContext) -> ForwardedRequest {
        let h = &request.headers;
        ForwardedRequest {
            context,
            method: request.method,
            session_id: h.session_id.map(str::to_owned),
            protocol_version: h.protocol_version.map(str::to_owned),
            body: request.body.to_vec(),
            param_headers: h.param_headers.to_vec(),
            stream_check: false,
        }
    }

    pub fn as_request(&self) -> McpRequest<'_> {
        McpRequest {
            method: self.method,
            headers: McpHeaders {
                session_id: self.session_id.as_deref(),
                protocol_version: self.protocol_version.as_deref(),
                param_headers: &self.param_headers,
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
    relay_events_dropped: Cell<u64>,
}

/// A message sent with a ticket, whose answers are awaited; dropping it stops waiting.
pub struct Asked<'a> {
    receiver: LocalReceiver<MeshMessage>,
    pub ticket: Ticket,
    shard: u8,
    _guard: TicketGuard<'a>,
}

impl Asked<'_> {
    /// The next message for this ticket.
    pub async fn next(&self) -> Result<MeshMessage, MeshError> {
        self.receiver
            .recv()
            .await
            .ok_or(MeshError::Closed { shard: self.shard })
    }
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
            relay_events_dropped: Cell::new(0),
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
    /// answers it (a `Reply` or a `StatusReply` with the same ticket), skipping relayed events.
    pub async fn ask(
        &self,
        shard: u8,
        build: impl FnOnce(Ticket) -> MeshMessage,
    ) -> Result<MeshMessage, MeshError> {
        let asked = self.ask_start(shard, build)?;
        loop {
            match asked.next().await? {
                MeshMessage::RelayEvent { .. } => {}
                answer => return Ok(answer),
            }
        }
    }

    /// Sends a message built from a fresh ticket to `shard`; the messages that answer it
    /// (relayed events, then the answer) come from [`Asked::next`].
    pub fn ask_start(
        &self,
        shard: u8,
        build: impl FnOnce(Ticket) -> MeshMessage,
    ) -> Result<Asked<'_>, MeshError> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket + 1);
        let (sender, receiver) = local_channel::new_bounded(RELAY_EVENTS_QUEUED_MAX + 1);
        {
            let mut waiting = self.waiting.borrow_mut();
            if waiting.len() >= self.waiting_max as usize {
                return Err(MeshError::TicketsFull {
                    forwarded_requests_max: self.waiting_max,
                });
            }
            waiting.insert(ticket, sender);
        }
        let guard = TicketGuard { mesh: self, ticket };
        self.send(shard, build(ticket))?;
        Ok(Asked {
            receiver,
            ticket,
            shard,
            _guard: guard,
        })
    }

    /// Relayed events dropped because a client did not take them fast enough.
    pub fn relay_events_dropped(&self) -> u64 {
        self.relay_events_dropped.get()
    }

    /// Sends without waiting for room: a full channel is an overload answer, not a queue.
    pub fn send(&self, shard: u8, message: MeshMessage) -> Result<(), MeshError> {
        self.senders
            .try_send_to(shard as usize, message)
            .map_err(|_| MeshError::ChannelFull { shard })
    }

    /// Sends `message()` to every other shard without waiting for room; returns how many
    /// channels were full (those shards miss it).
    pub fn broadcast(&self, message: impl Fn() -> MeshMessage) -> u32 {
        let own = self.senders.peer_id();
        let peers = (0..self.senders.nr_consumers()).filter(|peer| *peer != own);
        let full = peers.filter(|peer| self.senders.try_send_to(*peer, message()).is_err());
        full.count() as u32
    }

    /// Sends an answer, waiting for room: the asker is already waiting for it.
    pub async fn answer(&self, shard: u8, message: MeshMessage) -> Result<(), MeshError> {
        self.senders
            .send_to(shard as usize, message)
            .await
            .map_err(|_| MeshError::Closed { shard })
    }

    /// Hands a message to the task waiting on its ticket: relayed events while there is room
    /// (else they are dropped and counted), then the answer, which ends the wait. A ticket
    /// nobody waits on any more (the client left) drops it.
    pub fn deliver(&self, ticket: Ticket, message: MeshMessage) {
        if let MeshMessage::RelayEvent { .. } = message {
            let waiting = self.waiting.borrow();
            let Some(waiter) = waiting.get(&ticket) else {
                return;
            };
            match waiter.len() < RELAY_EVENTS_QUEUED_MAX {
                true => drop(waiter.try_send(message)),
                false => self
                    .relay_events_dropped
                    .set(self.relay_events_dropped.get() + 1),
            }
            return;
        }
        if let Some(waiter) = self.waiting.borrow_mut().remove(&ticket) {
            let _ = waiter.try_send(message);
        }
    }
}
