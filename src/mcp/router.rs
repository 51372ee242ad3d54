//! Routes an MCP request to the upstream that answers it, and builds the gateway's own answers
//! (`initialize`, `server/discover`, `ping`, the merged lists) from the shard's merged
//! [`Catalogue`].
//!
//! The route phase of the request pipeline is here: [`Router::route`] answers the gateway's own
//! methods and the merged lists, and for `tools/call`, `prompts/get`, `resources/read` and
//! `completion/complete` finds the merged name's upstream and original name, the [`Target`]
//! the upstream phases after it ([`Upstreams::admit`] and on) take. `logging/setLevel` goes to
//! every upstream that logs. The catalogue is rebuilt whenever an upstream's lists are fetched
//! anew or an upstream comes or goes.
//!
//! Ownership: one router per shard, built from the config at start-up; its catalogue and
//! upstreams are that shard's.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

use crate::config::Config;
use crate::mcp::call::{Call, Era};
use crate::mcp::catalogue::{Catalogue, CatalogueLimits, Listing, Naming, Omission};
use crate::support::clock::ShardClock;
use crate::support::event::Event;
use crate::support::log;
use crate::upstream::call::{NotAdmitted, Relay, Target};
use crate::upstream::link::SessionScope;
use crate::upstream::Upstreams;
use crate::wire::jsonrpc::{self, RpcError};
use crate::wire::kind::Kind;
use crate::wire::method::Method;
use crate::wire::params::{CallParams, Routing};
use crate::wire::version::ProtocolVersion;

/// How long a client may cache `server/discover` (and the lists) in the stateless era.
const DISCOVER_TTL_MS: u64 = 60_000;

/// Bounds of the merged catalogue per shard: entries per kind, and bytes of all lists.
const CATALOGUE_LIMITS: CatalogueLimits = CatalogueLimits {
    entries_max: 10_000,
    bytes_max: 16 * 1024 * 1024,
};

/// Why a shard's router cannot start.
#[derive(Debug)]
pub enum StartFailure {
    /// A required upstream is down or was not up within `server.startup_timeout_ms`; the
    /// message names it.
    RequiredDown(String),
    /// Two upstreams that are up offer one merged tool or prompt name: a configuration mistake.
    Collision(String),
}

/// What `check` learned by connecting to every upstream.
pub struct Probe {
    /// One line per upstream: what it offers, or why it is not up.
    pub lines: Vec<String>,
    /// The required upstreams that are not up: `serve` would not start.
    pub required_down: Vec<String>,
    /// Whether merged names collide, naming them.
    pub collisions: Result<(), String>,
}

/// How the router answers.
pub enum Answer {
    /// At once.
    Now(Result<Box<RawValue>, RpcError>),
    /// The pending table refused the request: a cap (HTTP 503 with Retry-After) or its id.
    /// `message` names the value, the key and the upstream.
    Full {
        refusal: crate::calls::pending::PendingRefusal,
        message: String,
    },
    /// An upstream call is under way: relay its notifications, then its answer.
    Relay(Relay),
}

impl From<NotAdmitted> for Answer {
    fn from(refused: NotAdmitted) -> Answer {
        match refused {
            NotAdmitted::Unavailable { error, .. } => Answer::Now(Err(error)),
            NotAdmitted::Full { refusal, message } => Answer::Full { refusal, message },
        }
    }
}

/// Where the route phase sends a call.
pub enum Routed<'r, 'm> {
    /// The gateway answers itself: its own methods, the merged lists, or an error.
    Answered(Result<Box<RawValue>, RpcError>),
    /// To the one upstream that owns the name the call carries.
    Upstream(Target<'r, 'm>),
    /// To an upstream that is down: refused as the admit phase refuses.
    Unavailable(NotAdmitted),
}

/// The merged catalogue and what watches it; shared with the task that rebuilds it.
struct CatalogueState {
    upstreams: Upstreams,
    catalogue: RefCell<Rc<Catalogue>>,
    /// Every upstream's entries, listed or not: routes calls, so a call to an upstream that
    /// dropped out of the lists gets an error naming it rather than "unknown tool".
    routes: RefCell<Rc<Catalogue>>,
    /// Whether each link was in the last catalogue, to rebuild when that changes.
    listed: RefCell<Vec<bool>>,
    clock: ShardClock,
    /// Fired (and replaced) when a merged list changes: session-era clients' GET streams wait
    /// on it to send `notifications/*/list_changed`.
    lists_changed: RefCell<Rc<Event>>,
    /// Which lists changed at the last firing, in [`Kind::ALL`] order.
    changed_kinds: Cell<[bool; 4]>,
}

/// Shard-local router. Built once per shard from the config.
pub struct Router {
    state: Rc<CatalogueState>,
    /// `{"name":"shardgate","version":"…"}`, rendered once.
    server_info: String,
}

impl CatalogueState {
    /// Rebuilds the catalogue from every listed link's cached lists, when the set changed or
    /// `force`.
    fn rebuild(&self, force: bool) {
        let links = self.upstreams.links();
        let now = self.clock.now_ms();
        let listed: Vec<bool> = links.iter().map(|l| l.is_listed(now)).collect();
        if !force && *self.listed.borrow() == listed {
            return;
        }
        let namings: Vec<Naming> = links
            .iter()
            .map(|l| Naming {
                prefix: l.config.prefix.clone(),
                separator: l.config.separator.clone(),
            })
            .collect();
        let lists: Vec<[Option<Box<RawValue>>; 4]> =
            links.iter().map(|l| l.cached_lists()).collect();
        let listings: Vec<Listing<'_>> = links
            .iter()
            .zip(namings.iter().zip(&lists))
            .map(|(link, (naming, lists))| Listing {
                upstream: link.index,
                name: link.name(),
                naming,
                lists: [0, 1, 2, 3].map(|i| lists[i].as_deref()),
            })
            .collect();
        let routes = Catalogue::build(&listings, CATALOGUE_LIMITS);
        let shown: Vec<Listing<'_>> = listings
            .into_iter()
            .zip(&listed)
            .filter_map(|(listing, listed)| listed.then_some(listing))
            .collect();
        let catalogue = Catalogue::build(&shown, CATALOGUE_LIMITS);
        for omission in catalogue.omissions() {
            log(format_args!("catalogue: {omission}"));
        }
        let previous = self.catalogue.replace(Rc::new(catalogue));
        let current = self.catalogue.borrow().clone();
        let changed = Kind::ALL.map(|kind| previous.list_json(kind) != current.list_json(kind));
        if changed.iter().any(|c| *c) {
            self.changed_kinds.set(changed);
            let fired = self.lists_changed.replace(Rc::default());
            fired.set();
        }
        *self.routes.borrow_mut() = Rc::new(routes);
        *self.listed.borrow_mut() = listed;
    }
}

/// Rebuilds the catalogue each time an upstream's lists are fetched anew, until the router is
/// gone.
async fn rebuild_on_refresh(state: Weak<CatalogueState>, upstreams: Upstreams) {
    loop {
        upstreams.refreshed().wait().await;
        let Some(state) = state.upgrade() else {
            return;
        };
        state.rebuild(true);
    }
}

impl Router {
    /// Builds the shard's upstreams (one link per `[[upstreams]]` entry, starting stdio
    /// children) and an empty catalogue.
    pub fn new(config: &Config, shard: u8, clock: ShardClock) -> Result<Router, String> {
        let upstreams = Upstreams::new(config, shard, clock)?;
        let server_info = json!({
            "name": "shardgate",
            "title": "shardgate MCP gateway",
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        let state = CatalogueState {
            listed: RefCell::new(vec![false; upstreams.links().len()]),
            upstreams,
            catalogue: RefCell::new(Rc::new(Catalogue::build(&[], CATALOGUE_LIMITS))),
            routes: RefCell::new(Rc::new(Catalogue::build(&[], CATALOGUE_LIMITS))),
            clock,
            lists_changed: RefCell::new(Rc::default()),
            changed_kinds: Cell::new([false; 4]),
        };
        Ok(Router {
            state: Rc::new(state),
            server_info,
        })
    }

    /// The shard's upstreams, for the phases after the route.
    pub fn upstreams(&self) -> &Upstreams {
        &self.state.upstreams
    }

    /// Connects every upstream and builds the first catalogue once every required one is up
    /// (see [`Upstreams::start`]); afterwards the catalogue follows the upstreams' lists.
    pub async fn start(&self, startup_timeout_ms: u64) -> Result<(), StartFailure> {
        let upstreams = self.state.upstreams.clone();
        let rebuilds = rebuild_on_refresh(Rc::downgrade(&self.state), upstreams.clone());
        glommio::spawn_local(rebuilds).detach();
        upstreams
            .start(startup_timeout_ms)
            .await
            .map_err(StartFailure::RequiredDown)?;
        self.state.rebuild(true);
        self.collisions().map_err(StartFailure::Collision)
    }

    /// For `check`: what [`Upstreams::probe`] learned, and whether merged names collide.
    pub async fn probe(&self, startup_timeout_ms: u64) -> Probe {
        let probed = self.state.upstreams.probe(startup_timeout_ms).await;
        self.state.rebuild(true);
        Probe {
            lines: probed.lines,
            required_down: probed.required_down,
            collisions: self.collisions(),
        }
    }

    /// Two upstreams offering one merged tool or prompt name (possible with empty prefixes) is
    /// a configuration mistake: one of them would be unreachable.
    fn collisions(&self) -> Result<(), String> {
        let routes = self.state.routes.borrow().clone();
        let collisions: Vec<String> = routes
            .omissions()
            .iter()
            .filter(|omission| {
                matches!(
                    omission,
                    Omission::Collision {
                        kind: Kind::Tools | Kind::Prompts,
                        ..
                    }
                )
            })
            .map(|omission| omission.to_string())
            .collect();
        match collisions.is_empty() {
            true => Ok(()),
            false => Err(format!(
                "merged names collide (upstreams[].prefix):\n  {}",
                collisions.join("\n  ")
            )),
        }
    }

    /// The epoch tick: the upstreams' (deadlines, idle connections, retries), then the
    /// catalogue, rebuilt when an upstream came or went.
    pub fn tick(&self) {
        self.state.upstreams.tick();
        self.state.rebuild(false);
    }

    /// The signal the next change of a merged list fires.
    pub fn lists_changed(&self) -> Rc<Event> {
        self.state.lists_changed.borrow().clone()
    }

    /// The `notifications/*/list_changed` methods of the last change (tools, prompts,
    /// resources; a template change is a resources change).
    pub fn changed_list_methods(&self) -> Vec<&'static str> {
        let [tools, prompts, resources, templates] = self.state.changed_kinds.get();
        [
            (tools, "notifications/tools/list_changed"),
            (prompts, "notifications/prompts/list_changed"),
            (
                resources || templates,
                "notifications/resources/list_changed",
            ),
        ]
        .into_iter()
        .filter(|(changed, _)| *changed)
        .map(|(_, method)| method)
        .collect()
    }

    /// Capabilities of the merged server. Clients hear of list changes in both eras: on a
    /// session's GET stream, or on a `subscriptions/listen` stream (2026-07-28).
    fn capabilities_json(&self) -> String {
        let any = |capability: &str| self.state.upstreams.any_has_capability(capability);
        let mut capabilities = Map::new();
        capabilities.insert("tools".into(), json!({ "listChanged": true }));
        capabilities.insert("prompts".into(), json!({ "listChanged": true }));
        capabilities.insert(
            "resources".into(),
            json!({ "subscribe": false, "listChanged": true }),
        );
        if any("logging") {
            capabilities.insert("logging".into(), json!({}));
        }
        if any("completions") {
            capabilities.insert("completions".into(), json!({}));
        }
        Value::Object(capabilities).to_string()
    }

    /// The `instructions` of `initialize` and `server/discover`, as a JSON string.
    fn instructions_json(&self) -> String {
        let names: Vec<String> = self
            .state
            .upstreams
            .links()
            .iter()
            .map(|l| match l.config.prefix.is_empty() {
                true => format!("{} (unprefixed)", l.name()),
                false => format!(
                    "{} (names {}{}…)",
                    l.name(),
                    l.config.prefix,
                    l.config.separator
                ),
            })
            .collect();
        let text = format!(
            "shardgate serves the tools, prompts and resources of these MCP servers as one: {}.",
            names.join(", ")
        );
        // Every `str` serializes.
        serde_json::to_string(&text).expect("a string serializes")
    }

    /// The `initialize` result for a session-era client at the negotiated `version`.
    pub fn initialize_result(&self, version: ProtocolVersion) -> Box<RawValue> {
        raw(format!(
            r#"{{"protocolVersion":"{}","capabilities":{},"serverInfo":{},"instructions":{}}}"#,
            version.as_str(),
            self.capabilities_json(),
            self.server_info,
            self.instructions_json(),
        ))
    }

    /// The route phase: the gateway's own methods and the merged lists are answered here; a
    /// routed method goes to the upstream that owns the name it carries.
    pub async fn route<'r, 'm>(&self, call: &'r Call<'m>) -> Routed<'r, 'm> {
        if let Some(kind) = call.method.listed_kind() {
            let catalogue = self.state.catalogue.borrow();
            return Routed::Answered(list_result(kind, &catalogue, call.params, call.era));
        }
        if let Some(params) = &call.routed {
            return match params {
                Ok(params) => self.target(call.method, params),
                Err(message) => Routed::Answered(Err(RpcError::invalid_params(message.clone()))),
            };
        }
        let answer = match (call.era, call.method) {
            (Era::Stateless, Method::ServerDiscover) => Ok(self.discover()),
            (Era::Session(_), Method::Ping) => Ok(raw("{}".to_owned())),
            (Era::Session(_), Method::LoggingSetLevel) => {
                let scope = SessionScope::of(call.client.route, call.client.log_level);
                self.set_level(call.params, scope).await
            }
            _ => Err(RpcError::method_not_found(call.method_name)),
        };
        Routed::Answered(answer)
    }

    /// The upstream a routed `method` goes to: the merged name in `params`, looked up among
    /// every upstream's entries.
    fn target<'r, 'm>(&self, method: Method, params: &'r CallParams<'m>) -> Routed<'r, 'm> {
        let Routing { kind, merged, .. } = params.routing();
        let route = self.state.routes.borrow().route(*kind, merged);
        let Some(route) = route else {
            return self.unknown(*kind, merged);
        };
        Routed::Upstream(Target {
            upstream: route.upstream,
            method,
            original: route.original,
            params,
        })
    }

    /// The answer for a name no route knows: unknown, or, when it carries the prefix of an
    /// upstream that is down, unavailable, naming that upstream.
    fn unknown<'r, 'm>(&self, kind: Kind, merged: &str) -> Routed<'r, 'm> {
        if let Some(refused) = self.state.upstreams.down_owner_of(merged) {
            return Routed::Unavailable(refused);
        }
        let (what, list) = match kind {
            Kind::Tools => ("tool", "tools/list"),
            Kind::Prompts => ("prompt", "prompts/list"),
            _ => ("resource", "resources/list"),
        };
        let error = RpcError::invalid_params(format!(
            "unknown {what} {merged:?}: no upstream offers it (see {list})"
        ));
        Routed::Answered(Err(match kind {
            Kind::Resources => error.with_data(raw(json!({ "uri": merged }).to_string())),
            _ => error,
        }))
    }

    /// `logging/setLevel`: the level checked here, then sent to every upstream that takes it.
    async fn set_level(
        &self,
        params: Option<&RawValue>,
        scope: SessionScope,
    ) -> Result<Box<RawValue>, RpcError> {
        let params: Value = params
            .and_then(|p| serde_json::from_str(p.get()).ok())
            .unwrap_or(Value::Null);
        let level = params.get("level").and_then(Value::as_str).unwrap_or("");
        let Some(level) = jsonrpc::LOG_LEVELS.iter().copied().find(|l| *l == level) else {
            return Err(RpcError::invalid_params(format!(
                "logging/setLevel needs params.level, one of {}; got {:?}",
                jsonrpc::LOG_LEVELS.join(", "),
                params.get("level")
            )));
        };
        self.state.upstreams.set_level(level, scope).await;
        Ok(raw("{}".to_owned()))
    }

    fn discover(&self) -> Box<RawValue> {
        let supported = ProtocolVersion::SUPPORTED_JSON;
        let capabilities = self.capabilities_json();
        let info = &self.server_info;
        let instructions = self.instructions_json();
        raw(format!(
            r#"{{"supportedVersions":{supported},"capabilities":{capabilities},"serverInfo":{info},"instructions":{instructions},"ttlMs":{DISCOVER_TTL_MS},"cacheScope":"public","_meta":{{"io.modelcontextprotocol/serverInfo":{info}}}}}"#
        ))
    }
}

/// A merged list as one page; a cursor cannot come from this gateway, so any is refused.
fn list_result(
    kind: Kind,
    catalogue: &Catalogue,
    params: Option<&RawValue>,
    era: Era,
) -> Result<Box<RawValue>, RpcError> {
    let cursor = params
        .and_then(|p| serde_json::from_str::<Value>(p.get()).ok())
        .and_then(|p| p.get("cursor").cloned());
    if let Some(cursor) = cursor.filter(|c| !c.is_null()) {
        return Err(RpcError::invalid_params(format!(
            "invalid cursor {cursor}: this server returns every entry in one page"
        )));
    }
    // Stateless clients may cache a list; the merged one changes when an upstream comes, goes
    // or announces a change, so the hint is as short as discover's.
    let caching = match era {
        Era::Stateless => format!(r#","ttlMs":{DISCOVER_TTL_MS},"cacheScope":"public""#),
        Era::Session(_) => String::new(),
    };
    Ok(raw(format!(
        r#"{{"{}":{}{caching}}}"#,
        kind.member(),
        catalogue.list_json(kind)
    )))
}

/// The router's own answers as raw values. It writes them from literals, values it printed
/// with serde_json and strings it escaped, never from text it was sent, so they are valid JSON.
fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json).expect("the router renders valid JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &RawValue) -> Value {
        serde_json::from_str(raw.get()).unwrap()
    }

    fn router() -> Router {
        Router::new(&Config::default(), 0, ShardClock::start()).unwrap()
    }

    #[test]
    fn initialize_result_names_the_negotiated_version_and_the_gateway() {
        let result = parse(&router().initialize_result(ProtocolVersion::V2025_06_18));
        assert_eq!(result["protocolVersion"], "2025-06-18");
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert!(result["capabilities"]["tools"].is_object());
        assert!(result["instructions"]
            .as_str()
            .unwrap()
            .contains("demo (names demo__…)"));
    }

    #[test]
    fn discover_lists_every_supported_version_with_caching_hints() {
        let router = router();
        let result = parse(&router.discover());
        let versions = result["supportedVersions"].as_array().unwrap();
        assert_eq!(versions.len(), ProtocolVersion::SUPPORTED.len());
        assert!(versions.iter().any(|v| v == "2026-07-28"));
        assert_eq!(result["cacheScope"], "public");
        assert!(result["ttlMs"].as_u64().unwrap() > 0);
        assert_eq!(result["serverInfo"]["name"], "shardgate");
        assert_eq!(
            result["_meta"]["io.modelcontextprotocol/serverInfo"],
            result["serverInfo"]
        );
    }
}
