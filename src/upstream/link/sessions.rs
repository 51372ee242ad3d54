//! The upstream sessions of an `http` upstream: the handshake that learns its era
//! (`server/discover`, else `initialize`), the shard's shared session, and under
//! `session_mode = "per_client"` one session per client session, opened at its first call and
//! closed with `DELETE` once it ends (`upstream::sessions` keeps their table). A session the
//! server says expired is initialized again once, for the request that found it expired.

use std::rc::Rc;

use serde_json::{json, Value};

use super::exchange::{ExchangeFailure, Mirrored};
use super::{
    failure_text, CallOutcome, HttpLink, LinkKind, SessionScope, UpstreamEra, UpstreamLink,
    SESSION_CLOSE_TIMEOUT_MS,
};
use crate::calls::inflight::{CallFailure, ClientRoute};
use crate::support::log;
use crate::upstream::pool::{Reply, RequestSpec};
use crate::upstream::sessions::{ClientSessions, Lookup, SESSION_ID_BYTES_MAX};
use crate::wire::gateway_client::{initialize_params, SESSION_ERA_VERSION};
use crate::wire::jsonrpc;
use crate::wire::version::ProtocolVersion;

impl UpstreamLink {
    /// The handshake of an `http` upstream: the 2026-07-28 era when it answers
    /// `server/discover` with that version, else the shared session of the session era.
    /// Returns the server's capabilities.
    pub(super) async fn http_handshake(&self, http: &HttpLink) -> Result<Value, String> {
        *http.era.borrow_mut() = UpstreamEra::Stateless;
        let discover = self
            .http_request(
                http,
                b"\"sg-discover\"",
                "server/discover",
                None,
                (self.control_timeout_ms(), SessionScope::Shared),
                &mut |message| self.unrelayed(message),
            )
            .await;
        if let Ok(result) = discover {
            let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
            let stateless = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .is_some_and(|v| v.iter().any(|v| v == ProtocolVersion::V2026_07_28.as_str()));
            if stateless {
                self.lists_ttl.note(&result);
                if http.clients.is_some() && !http.stateless_noted.replace(true) {
                    log(format_args!(
                        "upstream {} speaks 2026-07-28, which has no sessions: session_mode = \
                         \"per_client\" changes nothing for it",
                        self.name()
                    ));
                }
                return Ok(result.get("capabilities").cloned().unwrap_or(json!({})));
            }
        }
        self.http_initialize(http).await
    }

    /// Opens the shared session.
    async fn http_initialize(&self, http: &HttpLink) -> Result<Value, String> {
        *http.era.borrow_mut() = UpstreamEra::Session {
            version: SESSION_ERA_VERSION.as_str(),
            session: None,
        };
        let (version, session, capabilities) = self.open_session(http).await?;
        *http.era.borrow_mut() = UpstreamEra::Session { version, session };
        // A new session: the listen stream moves to it.
        self.session_changed();
        Ok(capabilities)
    }

    /// Opens an upstream session: `initialize`, then `notifications/initialized` under the
    /// session the server gave. Returns its version, its id and the server's capabilities.
    async fn open_session(
        &self,
        http: &HttpLink,
    ) -> Result<(&'static str, Option<String>, Value), String> {
        let opening = UpstreamEra::Session {
            version: SESSION_ERA_VERSION.as_str(),
            session: None,
        };
        let params = initialize_params();
        let body = jsonrpc::request_value_bytes(b"\"sg-init\"", "initialize", Some(&params));
        let mut session = None;
        let answer = self
            .http_exchange(
                http,
                &opening,
                &body,
                Mirrored::method("initialize"),
                self.control_timeout_ms(),
                b"\"sg-init\"",
                &mut |message| self.unrelayed(message),
                &mut session,
            )
            .await
            .map_err(|e| failure_text(&e.into_call(self.name())))?;
        let result = answer.map_err(|e| failure_text(&CallFailure::Rpc(e)))?;
        let result: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .and_then(ProtocolVersion::parse)
            .filter(|v| !v.is_stateless())
            .ok_or_else(|| {
                format!(
                    "initialize answered protocolVersion {:?}, which the gateway does not speak",
                    result.get("protocolVersion")
                )
            })?;
        let era = UpstreamEra::Session {
            version: version.as_str(),
            session: session.clone(),
        };
        let initialized = jsonrpc::notification_bytes("notifications/initialized", None);
        self.http_post(
            http,
            &era,
            &initialized,
            "notifications/initialized",
            self.control_timeout_ms(),
            &mut |message| self.unrelayed(message),
        )
        .await
        .map_err(|e| match e {
            ExchangeFailure::SessionExpired => "the session expired again right after \
                                                initializing (HTTP 404 to \
                                                notifications/initialized)"
                .to_owned(),
            ExchangeFailure::Call(other) => failure_text(&other),
        })?;
        let capabilities = result.get("capabilities").cloned().unwrap_or(json!({}));
        Ok((version.as_str(), session, capabilities))
    }

    /// Sends request `body` (id `id`) under the session `scope` names and reads its answer; a
    /// session the server says expired is re-initialized once. The body stands for the retry:
    /// a re-initialized session keeps the session era.
    pub(super) async fn http_send(
        &self,
        http: &HttpLink,
        id: &[u8],
        body: &[u8],
        mirrored: Mirrored<'_>,
        (timeout_ms, scope): (u64, SessionScope),
        on_event: &mut dyn FnMut(&[u8]) -> Option<Vec<u8>>,
    ) -> CallOutcome {
        let (mut era, own) = self.era_for(http, scope).await?;
        let mut reinitialized = false;
        loop {
            let mut session = None;
            let answer = self
                .http_exchange(
                    http,
                    &era,
                    body,
                    mirrored,
                    timeout_ms,
                    id,
                    on_event,
                    &mut session,
                )
                .await;
            match answer {
                Err(ExchangeFailure::SessionExpired) if !reinitialized => {
                    reinitialized = true;
                    era = match own {
                        true => self.reopen_client_session(http, &era, scope).await?,
                        false => self.reopen_shared_session(http).await?,
                    };
                }
                Err(ExchangeFailure::SessionExpired) => {
                    return Err(CallFailure::Unavailable(format!(
                        "upstream {}: its session expired again right after initializing",
                        self.name()
                    )))
                }
                Err(ExchangeFailure::Call(failure)) => return Err(failure),
                Ok(answer) => return answer.map_err(CallFailure::Rpc),
            }
        }
    }

    /// Initializes the shared session again after the server said it expired; the upstream
    /// is down when that fails.
    async fn reopen_shared_session(&self, http: &HttpLink) -> Result<UpstreamEra, CallFailure> {
        if let Err(e) = self.http_initialize(http).await {
            self.mark_down(format!("upstream {}: {e}", self.name()));
            return Err(CallFailure::Unavailable(format!(
                "upstream {}: its session expired and initializing again failed: {e}",
                self.name()
            )));
        }
        Ok(http.era.borrow().clone())
    }

    /// Whether the upstream keeps a session per client session: `per_client`, and it speaks
    /// the session era.
    pub(super) fn keeps_client_sessions(&self, http: &HttpLink) -> bool {
        http.clients.is_some() && matches!(*http.era.borrow(), UpstreamEra::Session { .. })
    }

    /// The era a request under `scope` goes out in, and whether that is a client session's own
    /// (opened now, at its first call).
    async fn era_for(
        &self,
        http: &HttpLink,
        scope: SessionScope,
    ) -> Result<(UpstreamEra, bool), CallFailure> {
        let (SessionScope::Client { secret, log_level }, Some(clients)) = (scope, &http.clients)
        else {
            return Ok((http.era.borrow().clone(), false));
        };
        if !self.keeps_client_sessions(http) {
            return Ok((http.era.borrow().clone(), false));
        }
        let era = self
            .client_session(http, clients, secret, log_level)
            .await
            .map_err(|e| {
                CallFailure::Unavailable(format!(
                    "upstream {}: cannot open a session for this client: {e}",
                    self.name()
                ))
            })?;
        Ok((era, true))
    }

    /// The era of the session `route`'s requests went out in: its own when it has one open,
    /// else the shared one. Opens nothing.
    pub(super) fn era_of_route(&self, http: &HttpLink, route: ClientRoute) -> UpstreamEra {
        if let (Some(clients), ClientRoute::Session(secret)) = (&http.clients, route) {
            if let Some((version, session)) = clients.open_session(secret) {
                return UpstreamEra::Session { version, session };
            }
        }
        http.era.borrow().clone()
    }

    /// The client session's upstream session: the open one, the one another call is opening,
    /// or a new one.
    async fn client_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        secret: u128,
        log_level: Option<&'static str>,
    ) -> Result<UpstreamEra, String> {
        let mut waited = false;
        loop {
            match clients.lookup(secret) {
                Lookup::Open { version, session } => {
                    return Ok(UpstreamEra::Session { version, session })
                }
                Lookup::Opening(done) if !waited => {
                    done.wait().await;
                    waited = true;
                }
                Lookup::Opening(_) => {
                    return Err("its session is being opened again after a failed attempt".into())
                }
                Lookup::Full { entries_max } => {
                    return Err(format!(
                        "{entries_max} upstream sessions are open on this shard, one per client \
                         session (sessions.sessions_max)"
                    ))
                }
                Lookup::Reserved(ticket) => {
                    return self
                        .open_client_session(http, clients, (secret, ticket), log_level)
                        .await
                }
            }
        }
    }

    /// Opens the upstream session reserved under `ticket` for client session `secret`, and
    /// sets its log level when the client chose one.
    async fn open_client_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        (secret, ticket): (u128, u64),
        log_level: Option<&'static str>,
    ) -> Result<UpstreamEra, String> {
        let (version, session) = match self.open_session(http).await {
            Ok((version, Some(id), _)) if id.len() > SESSION_ID_BYTES_MAX => {
                clients.open_failed(secret, ticket);
                self.close_session(http, clients, &id, version).await;
                return Err(format!(
                    "its Mcp-Session-Id is {} bytes, over the {SESSION_ID_BYTES_MAX} the \
                     gateway keeps per client session",
                    id.len()
                ));
            }
            Ok((version, session, _)) => (version, session),
            Err(e) => {
                clients.open_failed(secret, ticket);
                return Err(e);
            }
        };
        let era = UpstreamEra::Session {
            version,
            session: session.clone(),
        };
        if let Some(level) = log_level.filter(|_| self.has_capability("logging")) {
            // The client chose its level before this session existed.
            if let Err(e) = self.set_level_under(http, &era, level).await {
                log(format_args!(
                    "upstream {}: logging/setLevel {level} on a new client session: {}",
                    self.name(),
                    failure_text(&e)
                ));
            }
        }
        if !clients.opened(secret, ticket, version, session.as_deref()) {
            if let Some(session) = &session {
                self.close_session(http, clients, session, version).await;
            }
            return Err("the client session ended while its upstream session opened".into());
        }
        Ok(era)
    }

    /// The upstream said the client session's upstream session (`expired`) is gone: opens
    /// another one once.
    async fn reopen_client_session(
        &self,
        http: &HttpLink,
        expired: &UpstreamEra,
        scope: SessionScope,
    ) -> Result<UpstreamEra, CallFailure> {
        let (SessionScope::Client { secret, log_level }, Some(clients)) = (scope, &http.clients)
        else {
            return self.reopen_shared_session(http).await;
        };
        let stale = match expired {
            UpstreamEra::Session { session, .. } => session.as_deref(),
            _ => None,
        };
        clients.expired(secret, stale);
        self.client_session(http, clients, secret, log_level)
            .await
            .map_err(|e| {
                CallFailure::Unavailable(format!(
                    "upstream {}: its session for this client expired and opening another \
                     failed: {e}",
                    self.name()
                ))
            })
    }

    /// `logging/setLevel` under `era`'s session.
    pub(super) async fn set_level_under(
        &self,
        http: &HttpLink,
        era: &UpstreamEra,
        level: &str,
    ) -> Result<(), CallFailure> {
        let id = self.next_control_id();
        let params = json!({ "level": level });
        let body = jsonrpc::request_value_bytes(id.as_bytes(), "logging/setLevel", Some(&params));
        let answer = self
            .http_exchange(
                http,
                era,
                &body,
                Mirrored::method("logging/setLevel"),
                self.control_timeout_ms(),
                id.as_bytes(),
                &mut |message| self.unrelayed(message),
                &mut None,
            )
            .await
            .map_err(|e| e.into_call(self.name()))?;
        answer.map(|_| ()).map_err(CallFailure::Rpc)
    }

    /// Starts closer tasks, up to `pool_connections_max`, while sessions wait for `DELETE`.
    pub(super) fn spawn_closers(self: &Rc<Self>, http: &HttpLink, clients: &ClientSessions) {
        while clients.start_closer(http.closers_max) {
            let link = self.clone();
            glommio::spawn_local(async move { link.run_closer().await }).detach();
        }
    }

    /// One closer: `DELETE`s queued sessions until none wait.
    async fn run_closer(&self) {
        let LinkKind::Http(http) = &self.kind else {
            return;
        };
        let Some(clients) = &http.clients else {
            return;
        };
        while let Some(session) = clients.next_to_close() {
            let version = version_of(&http.era.borrow());
            self.close_session(http, clients, &session, version).await;
        }
    }

    /// Sends `DELETE` for upstream session `session` (best effort, at most
    /// [`SESSION_CLOSE_TIMEOUT_MS`]) and counts the outcome: closed on a 2xx or a 404 (the
    /// server no longer has it), failed otherwise (a 405 means the server keeps it until it
    /// expires).
    async fn close_session(
        &self,
        http: &HttpLink,
        clients: &ClientSessions,
        session: &str,
        version: &str,
    ) {
        let headers = [
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", version),
        ];
        let spec = RequestSpec {
            method: "DELETE",
            headers: &headers,
            body: None,
            timeout_ms: self.control_timeout_ms().min(SESSION_CLOSE_TIMEOUT_MS),
        };
        let closed = match http.pool.request(&spec).await {
            Ok(Reply::Buffered(response)) => {
                let status = response.head.status();
                (200..300).contains(&status) || status == 404
            }
            Ok(Reply::Stream(_)) => true,
            Err(_) => false,
        };
        clients.count_close(closed);
    }
}

/// The protocol version a session of `era` speaks (the gateway's own for any other era).
pub(super) fn version_of(era: &UpstreamEra) -> &'static str {
    match era {
        UpstreamEra::Session { version, .. } => version,
        _ => SESSION_ERA_VERSION.as_str(),
    }
}
