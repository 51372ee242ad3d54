//! The admin listener, served by shard 0 only: `/healthz`, `/readyz`, `/status`.
//! `/status` and `/readyz` gather every shard's gauges over the mesh.

use std::rc::Rc;

use crate::http::{self, Request, ResponseWriter};
use crate::runtime::mesh::MeshMessage;
use crate::runtime::shard::Shard;
use crate::runtime::status::{self, ShardStatus};

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");

/// How long `/status` and `/readyz` wait for a shard's gauges: a shard that cannot answer a
/// status query this fast is reported as not answering (and `/readyz` fails).
const PEER_REPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Admin HTTP handler on shard 0.
pub struct AdminFront {
    pub shard: Rc<Shard>,
    pub shards: u8,
}

impl AdminFront {
    /// Every shard's status, or the shards that did not answer within [`PEER_REPLY_TIMEOUT`].
    /// All peers are asked at once, so one slow shard costs one timeout, not one each.
    async fn gather(&self) -> Result<Vec<ShardStatus>, Vec<u8>> {
        let asks: Vec<_> = (1..self.shards)
            .map(|peer| {
                let shard = self.shard.clone();
                glommio::spawn_local(async move {
                    let ask = shard
                        .mesh
                        .ask(peer, |ticket| MeshMessage::StatusQuery { ticket });
                    let answer =
                        glommio::timer::timeout(PEER_REPLY_TIMEOUT, async { Ok(ask.await.ok()) });
                    (peer, answer.await.ok().flatten())
                })
            })
            .collect();
        let mut statuses = vec![self.shard.status()];
        let mut silent = Vec::new();
        for ask in asks {
            match ask.await {
                (_, Some(MeshMessage::StatusReply { status, .. })) => statuses.push(*status),
                (peer, _) => silent.push(peer),
            }
        }
        match silent.is_empty() {
            true => Ok(statuses),
            false => Err(silent),
        }
    }
}

impl http::Handler for AdminFront {
    async fn handle(
        &self,
        request: &Request<'_>,
        response: &mut ResponseWriter<'_>,
    ) -> std::io::Result<()> {
        // One request per connection: admin connections then never sit idle, and a drain (which
        // waits for every connection) is not held up by a monitoring client's keep-alive.
        response.close_after();
        let path = request.path().split('?').next().unwrap_or("");
        if request.method() != "GET" {
            let headers = [TEXT, ("Allow", "GET")];
            return response.json(405, &headers, b"the admin listener answers GET\n");
        }
        match path {
            "/healthz" => response.json(200, &[TEXT], b"ok\n"),
            "/readyz" => match self.gather().await {
                Ok(statuses) if !self.shard.pipeline.shutdown.is_set() => {
                    match required_down(&statuses) {
                        None => response.json(200, &[TEXT], b"ready\n"),
                        Some(why) => response.json(503, &[TEXT], why.as_bytes()),
                    }
                }
                Ok(_) => response.json(503, &[TEXT], b"draining\n"),
                Err(silent) => {
                    let body = format!("shards not answering: {silent:?}\n");
                    response.json(503, &[TEXT], body.as_bytes())
                }
            },
            "/status" => match self.gather().await {
                Ok(statuses) => response.json(200, &[], status::render(&statuses).as_bytes()),
                Err(silent) => {
                    let body = format!(r#"{{"error":"shards not answering: {silent:?}"}}"#);
                    response.json(503, &[], body.as_bytes())
                }
            },
            _ => response.json(404, &[TEXT], b"admin paths: /healthz /readyz /status\n"),
        }
    }
}

/// Why the gateway is not ready because a required upstream is down on some shard, if it is.
fn required_down(statuses: &[ShardStatus]) -> Option<String> {
    let (shard, upstream) = statuses.iter().find_map(|status| {
        let down = status.upstreams.iter().find(|u| u.required && !u.up)?;
        Some((status.shard, down))
    })?;
    let reason = upstream.last_error.as_deref().unwrap_or("no handshake yet");
    Some(format!(
        "required upstream {} is down on shard {shard}: {reason}\n",
        upstream.name
    ))
}
