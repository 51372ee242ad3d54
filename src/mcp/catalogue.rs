//! The merged catalogue: the tools, prompts, resources and resource templates of every upstream
//! presented as one server, and the routes back from a merged name to the upstream that owns it.
//!
//! Tools and prompts are renamed `<prefix><separator><name>` (the prefix defaults to the
//! upstream's name, the separator to `__`); resources keep their URIs, which clients read back
//! verbatim, and are routed by exact URI, then by the longest literal prefix of a resource
//! template. A catalogue is built once per refresh (start-up, or an upstream's `list_changed`)
//! and is immutable afterwards; each shard owns its own.
//!
//! Limits: at most `entries_max` entries per kind over all upstreams and `bytes_max` bytes of
//! rendered lists; entries past either are left out and counted, never grown into. A merged name
//! that two upstreams both produce (possible only with empty prefixes) keeps the first
//! upstream's entry and reports the collision naming both.

use std::fmt;

use hashbrown::HashMap;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::wire::kind::Kind;

/// How one upstream's names appear in the merged catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naming {
    /// Prepended to tool and prompt names; may be empty.
    pub prefix: String,
    /// Between prefix and name; unused when the prefix is empty.
    pub separator: String,
}

impl Naming {
    fn merged(&self, name: &str) -> String {
        match self.prefix.is_empty() {
            true => name.to_owned(),
            false => format!("{}{}{name}", self.prefix, self.separator),
        }
    }
}

/// One upstream's lists, as the upstream returned them (each a JSON array, or absent when the
/// upstream lacks that capability).
pub struct Listing<'a> {
    /// The upstream's index in the config, which routes carry.
    pub upstream: u16,
    /// The upstream's name, for messages.
    pub name: &'a str,
    pub naming: &'a Naming,
    pub lists: [Option<&'a RawValue>; 4],
}

/// Where a merged name leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub upstream: u16,
    /// The name or URI as the upstream knows it.
    pub original: String,
}

/// Bounds of one catalogue.
#[derive(Clone, Copy, Debug)]
pub struct CatalogueLimits {
    /// Entries per kind over all upstreams (`catalogue_entries_max`).
    pub entries_max: u32,
    /// Bytes of all rendered lists together (`catalogue_bytes_max`).
    pub bytes_max: u64,
}

/// Something left out of the catalogue, reported once per refresh.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Omission {
    /// Two upstreams produce the same merged name; the first keeps it.
    Collision {
        kind: Kind,
        name: String,
        kept: String,
        dropped: String,
    },
    /// An upstream's list is not an array of objects with a string key field.
    Malformed {
        kind: Kind,
        upstream: String,
        detail: String,
    },
    /// `entries_max` or `bytes_max` reached.
    OverLimit {
        kind: Kind,
        upstream: String,
        limit: &'static str,
        value: u64,
    },
}

impl fmt::Display for Omission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Collision {
                kind,
                name,
                kept,
                dropped,
            } => write!(
                f,
                "{} {name:?} is offered by upstreams {kept:?} and {dropped:?}; {dropped:?}'s is \
                 left out (give one of them a prefix)",
                kind.member()
            ),
            Self::Malformed {
                kind,
                upstream,
                detail,
            } => {
                write!(
                    f,
                    "upstream {upstream:?} returned malformed {}: {detail}",
                    kind.member()
                )
            }
            Self::OverLimit {
                kind,
                upstream,
                limit,
                value,
            } => write!(
                f,
                "{} of upstream {upstream:?} left out: the catalogue holds {limit} {value}",
                kind.member()
            ),
        }
    }
}

/// The merged, immutable catalogue of one refresh.
pub struct Catalogue {
    /// Each kind's merged JSON array, rendered once.
    rendered: [String; 4],
    /// Merged name (tools, prompts) or URI (resources) → route, per kind.
    routes: [HashMap<String, Route>; 3],
    /// Resource templates as (literal prefix before the first `{`, upstream), longest first.
    template_prefixes: Vec<(String, u16)>,
    omissions: Vec<Omission>,
}

impl Catalogue {
    /// Merges the listings, in order; earlier upstreams win collisions.
    pub fn build(listings: &[Listing<'_>], limits: CatalogueLimits) -> Catalogue {
        let names = listings
            .iter()
            .map(|l| (l.upstream, l.name.to_owned()))
            .collect();
        let mut builder = Builder {
            limits,
            names,
            bytes: 0,
            catalogue: Catalogue::empty(),
        };
        for kind in Kind::ALL {
            let mut entries = Vec::new();
            for listing in listings {
                if let Some(list) = listing.lists[kind.index()] {
                    builder.merge(kind, listing, list, &mut entries);
                }
            }
            builder.catalogue.rendered[kind.index()] = Value::Array(entries).to_string();
        }
        let prefixes = &mut builder.catalogue.template_prefixes;
        prefixes.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        builder.catalogue
    }

    fn empty() -> Catalogue {
        Catalogue {
            rendered: Default::default(),
            routes: Default::default(),
            template_prefixes: Vec::new(),
            omissions: Vec::new(),
        }
    }

    /// The merged list of `kind` as a JSON array.
    pub fn list_json(&self, kind: Kind) -> &str {
        &self.rendered[kind.index()]
    }

    /// The upstream and original name behind a merged tool or prompt name, or a resource URI.
    pub fn route(&self, kind: Kind, merged: &str) -> Option<Route> {
        match kind {
            Kind::Tools | Kind::Prompts | Kind::Resources => {
                if let Some(route) = self.routes[kind.index()].get(merged) {
                    return Some(route.clone());
                }
                if kind != Kind::Resources {
                    return None;
                }
                self.template_prefixes
                    .iter()
                    .find(|(prefix, _)| merged.starts_with(prefix.as_str()))
                    .map(|(_, upstream)| Route {
                        upstream: *upstream,
                        original: merged.to_owned(),
                    })
            }
            Kind::ResourceTemplates => None,
        }
    }

    /// What this refresh left out, for logging and counting.
    pub fn omissions(&self) -> &[Omission] {
        &self.omissions
    }

    /// Entries routed per kind (tools, prompts, resources).
    pub fn routed(&self, kind: Kind) -> usize {
        match kind {
            Kind::ResourceTemplates => self.template_prefixes.len(),
            _ => self.routes[kind.index()].len(),
        }
    }
}

struct Builder {
    limits: CatalogueLimits,
    /// Upstream index → name, for collision messages.
    names: Vec<(u16, String)>,
    bytes: u64,
    catalogue: Catalogue,
}

impl Builder {
    fn merge(&mut self, kind: Kind, listing: &Listing<'_>, list: &RawValue, out: &mut Vec<Value>) {
        let malformed = |detail: String| Omission::Malformed {
            kind,
            upstream: listing.name.to_owned(),
            detail,
        };
        let entries: Vec<Map<String, Value>> = match serde_json::from_str(list.get()) {
            Ok(entries) => entries,
            Err(e) => return self.catalogue.omissions.push(malformed(e.to_string())),
        };
        for mut entry in entries {
            let Some(Value::String(key)) = entry.get(kind.key_field()).cloned() else {
                self.catalogue.omissions.push(malformed(format!(
                    "an entry has no string {:?}",
                    kind.key_field()
                )));
                continue;
            };
            let merged = match kind {
                Kind::Tools | Kind::Prompts => listing.naming.merged(&key),
                Kind::Resources | Kind::ResourceTemplates => key.clone(),
            };
            if let Some(omission) = self.admit(kind, listing, &merged, &entry) {
                self.catalogue.omissions.push(omission);
                continue;
            }
            entry.insert(kind.key_field().to_owned(), Value::String(merged.clone()));
            self.record(kind, listing.upstream, merged, key);
            out.push(Value::Object(entry));
        }
    }

    /// Checks the limits and collisions for one entry; `Some` when it must be left out.
    fn admit(
        &mut self,
        kind: Kind,
        listing: &Listing<'_>,
        merged: &str,
        entry: &Map<String, Value>,
    ) -> Option<Omission> {
        let over = |limit: &'static str, value: u64| Omission::OverLimit {
            kind,
            upstream: listing.name.to_owned(),
            limit,
            value,
        };
        if self.catalogue.routed(kind) >= self.limits.entries_max as usize {
            return Some(over(
                "catalogue_entries_max",
                u64::from(self.limits.entries_max),
            ));
        }
        let entry_bytes = serde_json::to_string(entry).map_or(0, |s| s.len() as u64);
        if self.bytes + entry_bytes > self.limits.bytes_max {
            return Some(over("catalogue_bytes_max", self.limits.bytes_max));
        }
        if kind != Kind::ResourceTemplates {
            if let Some(existing) = self.catalogue.routes[kind.index()].get(merged) {
                return Some(Omission::Collision {
                    kind,
                    name: merged.to_owned(),
                    kept: self.name_of(existing.upstream),
                    dropped: listing.name.to_owned(),
                });
            }
        }
        self.bytes += entry_bytes;
        None
    }

    fn name_of(&self, upstream: u16) -> String {
        let found = self.names.iter().find(|(index, _)| *index == upstream);
        found.map_or_else(|| format!("#{upstream}"), |(_, name)| name.clone())
    }

    fn record(&mut self, kind: Kind, upstream: u16, merged: String, original: String) {
        match kind {
            Kind::ResourceTemplates => {
                let literal = original.split('{').next().unwrap_or("").to_owned();
                self.catalogue.template_prefixes.push((literal, upstream));
            }
            _ => {
                self.catalogue.routes[kind.index()].insert(merged, Route { upstream, original });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn naming(prefix: &str) -> Naming {
        Naming {
            prefix: prefix.to_owned(),
            separator: "__".to_owned(),
        }
    }

    const LIMITS: CatalogueLimits = CatalogueLimits {
        entries_max: 100,
        bytes_max: 1 << 20,
    };

    fn names(catalogue: &Catalogue, kind: Kind) -> Vec<String> {
        let list: Vec<Value> = serde_json::from_str(catalogue.list_json(kind)).unwrap();
        list.iter()
            .map(|e| e[kind.key_field()].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn tools_and_prompts_are_prefixed_and_route_back_to_their_upstream() {
        let (a, b) = (naming("files"), naming("web"));
        let tools_a = raw(r#"[{"name":"read","inputSchema":{"type":"object"}}]"#);
        let tools_b = raw(r#"[{"name":"read","inputSchema":{"type":"object"}},{"name":"fetch"}]"#);
        let prompts_b = raw(r#"[{"name":"summarize"}]"#);
        let listings = [
            Listing {
                upstream: 0,
                name: "files",
                naming: &a,
                lists: [Some(&tools_a), None, None, None],
            },
            Listing {
                upstream: 1,
                name: "web",
                naming: &b,
                lists: [Some(&tools_b), Some(&prompts_b), None, None],
            },
        ];
        let catalogue = Catalogue::build(&listings, LIMITS);
        assert_eq!(
            names(&catalogue, Kind::Tools),
            ["files__read", "web__read", "web__fetch"]
        );
        assert_eq!(names(&catalogue, Kind::Prompts), ["web__summarize"]);
        let route = catalogue.route(Kind::Tools, "web__read").unwrap();
        assert_eq!(
            route,
            Route {
                upstream: 1,
                original: "read".into()
            }
        );
        assert_eq!(catalogue.route(Kind::Tools, "read"), None);
        assert_eq!(
            catalogue
                .route(Kind::Prompts, "web__summarize")
                .unwrap()
                .original,
            "summarize"
        );
        assert!(catalogue.omissions().is_empty());
        let entry: Vec<Value> = serde_json::from_str(catalogue.list_json(Kind::Tools)).unwrap();
        assert_eq!(
            entry[0]["inputSchema"]["type"], "object",
            "other fields pass through"
        );
    }

    #[test]
    fn empty_prefixes_that_collide_keep_the_first_and_name_both() {
        let none = naming("");
        let first = raw(r#"[{"name":"echo"}]"#);
        let second = raw(r#"[{"name":"echo"},{"name":"add"}]"#);
        let listings = [
            Listing {
                upstream: 0,
                name: "alpha",
                naming: &none,
                lists: [Some(&first), None, None, None],
            },
            Listing {
                upstream: 1,
                name: "beta",
                naming: &none,
                lists: [Some(&second), None, None, None],
            },
        ];
        let catalogue = Catalogue::build(&listings, LIMITS);
        assert_eq!(names(&catalogue, Kind::Tools), ["echo", "add"]);
        assert_eq!(catalogue.route(Kind::Tools, "echo").unwrap().upstream, 0);
        let message = catalogue.omissions()[0].to_string();
        assert!(
            message.contains("alpha") && message.contains("beta"),
            "{message}"
        );
    }

    #[test]
    fn resources_route_by_uri_then_by_the_longest_template_prefix() {
        let a = naming("a");
        let resources = raw(r#"[{"uri":"file:///readme","name":"readme"}]"#);
        let templates_a = raw(r#"[{"uriTemplate":"file:///{path}","name":"files"}]"#);
        let b = naming("b");
        let templates_b = raw(r#"[{"uriTemplate":"file:///logs/{day}","name":"logs"}]"#);
        let listings = [
            Listing {
                upstream: 0,
                name: "a",
                naming: &a,
                lists: [None, None, Some(&resources), Some(&templates_a)],
            },
            Listing {
                upstream: 1,
                name: "b",
                naming: &b,
                lists: [None, None, None, Some(&templates_b)],
            },
        ];
        let catalogue = Catalogue::build(&listings, LIMITS);
        assert_eq!(names(&catalogue, Kind::Resources), ["file:///readme"]);
        assert_eq!(
            catalogue
                .route(Kind::Resources, "file:///readme")
                .unwrap()
                .upstream,
            0
        );
        assert_eq!(
            catalogue
                .route(Kind::Resources, "file:///logs/monday")
                .unwrap()
                .upstream,
            1
        );
        assert_eq!(
            catalogue
                .route(Kind::Resources, "file:///notes.txt")
                .unwrap()
                .upstream,
            0
        );
        assert_eq!(
            catalogue.route(Kind::Resources, "https://example.com/"),
            None
        );
    }

    #[test]
    fn entries_past_entries_max_are_left_out_and_reported() {
        let a = naming("a");
        let tools = raw(r#"[{"name":"one"},{"name":"two"},{"name":"three"}]"#);
        let listings = [Listing {
            upstream: 0,
            name: "a",
            naming: &a,
            lists: [Some(&tools), None, None, None],
        }];
        let limits = CatalogueLimits {
            entries_max: 2,
            bytes_max: 1 << 20,
        };
        let catalogue = Catalogue::build(&listings, limits);
        assert_eq!(names(&catalogue, Kind::Tools), ["a__one", "a__two"]);
        let message = catalogue.omissions()[0].to_string();
        assert!(message.contains("catalogue_entries_max 2"), "{message}");
    }

    #[test]
    fn entries_past_bytes_max_are_left_out() {
        let a = naming("a");
        let tools = raw(
            r#"[{"name":"one","description":"0123456789012345678901234567890123456789"},{"name":"two"}]"#,
        );
        let listings = [Listing {
            upstream: 0,
            name: "a",
            naming: &a,
            lists: [Some(&tools), None, None, None],
        }];
        let catalogue = Catalogue::build(
            &listings,
            CatalogueLimits {
                entries_max: 10,
                bytes_max: 40,
            },
        );
        assert_eq!(names(&catalogue, Kind::Tools), ["a__two"]);
        assert!(catalogue.omissions()[0]
            .to_string()
            .contains("catalogue_bytes_max 40"));
    }

    #[test]
    fn malformed_lists_and_entries_are_reported_not_merged() {
        let a = naming("a");
        let not_array = raw(r#"{"name":"x"}"#);
        let nameless = raw(r#"[{"title":"no name"},{"name":"ok"}]"#);
        let listings = [Listing {
            upstream: 0,
            name: "a",
            naming: &a,
            lists: [Some(&not_array), Some(&nameless), None, None],
        }];
        let catalogue = Catalogue::build(&listings, LIMITS);
        assert_eq!(names(&catalogue, Kind::Tools), Vec::<String>::new());
        assert_eq!(names(&catalogue, Kind::Prompts), ["a__ok"]);
        assert_eq!(catalogue.omissions().len(), 2);
    }
}
