//! `[admin]`: the admin listener, which must not share the client-facing one's address.

use super::Checker;
use crate::config::bounds;
use crate::config::raw::RawAdmin;
use crate::config::{Admin, Server};

impl Checker<'_> {
    pub(super) fn admin(&mut self, raw: &RawAdmin, server: &Server) -> Admin {
        let listen = self.address("admin.listen", &raw.listen);
        let both_valid = !self.has_error("admin.listen") && !self.has_error("server.listen");
        if both_valid && listen.port() != 0 && listen == server.listen {
            let reason =
                format!("{listen} is also server.listen; give the admin listener its own port");
            self.conflict("admin.listen", reason);
        }
        ranged!(self, "admin", raw, {
            connections_max: u32 = bounds::ADMIN_CONNECTIONS_MAX,
        });
        Admin {
            listen,
            connections_max,
        }
    }
}
