//! The admin listener, served by shard 0 only: `/healthz`, `/readyz`, `/status`.
//! `/status` and `/readyz` gather every shard's gauges over the mesh.

use std::rc::Rc;

use crate::http::{self, Request, ResponseWriter};
use crate::runtime::mesh::MeshMessage;
use crate::runtime::shard::Shard;
use crate::runtime::status::{self, ShardStatus};

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");

/// Admin HTTP handler on shard 0.
pub struct AdminFront {
    pub shard: Rc<Shard>,
    pub shards: u8,
}

impl AdminFront {
    /// Every shard's status, or the shards that did not answer.
    async fn gather(&self) -> Result<Vec<ShardStatus>, Vec<u8>> {
        let mut statuses = vec![self.shard.status()];
        let mut silent = Vec::new();
        for peer in 1..self.shards {
            let answer = self
                .shard
                .mesh
                .ask(peer, |ticket| MeshMessage::StatusQuery { ticket });
            match answer.await {
                Ok(MeshMessage::StatusReply { status, .. }) => statuses.push(*status),
                _ => silent.push(peer),
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
        let path = request.path().split('?').next().unwrap_or("");
        if request.method() != "GET" {
            let headers = [TEXT, ("Allow", "GET")];
            return response.json(405, &headers, b"the admin listener answers GET\n");
        }
        match path {
            "/healthz" => response.json(200, &[TEXT], b"ok\n"),
            "/readyz" => match self.gather().await {
                Ok(_) if !self.shard.shutdown.is_draining() => {
                    response.json(200, &[TEXT], b"ready\n")
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
