//! MCP over Streamable HTTP: a tower service for the HTTP server to mount (taskflow-poem mounts
//! it at `/mcp` with poem's `tower-compat`).
//!
//! The service is **stateless**: every POST carries one JSON-RPC message and is answered on its
//! own with plain JSON (`Content-Type: application/json`), with no `Mcp-Session-Id` and no
//! server-sent events. Nothing lives between requests, so any server process sharing the
//! database can answer any request, and each call acts for the token that came with it.
//!
//! The service does no authentication itself. The server in front of it verifies the bearer
//! token (401 like `/api` otherwise) and puts the verified [`Caller`](crate::Caller) in the
//! request's extensions; [`TaskflowMcp`] reads it from there on every tool call.

use std::net::IpAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use crate::server::TaskflowMcp;

/// The tower service that serves `server` over Streamable HTTP.
pub type McpService = StreamableHttpService<TaskflowMcp, NeverSessionManager>;

/// The Streamable HTTP service for `server` (which should have no fixed caller: each request
/// brings its own). `allowed_hosts` guards against DNS rebinding: a request whose `Host` is not
/// listed is refused with 403; an empty list accepts any host ([`allowed_hosts`] picks the list
/// from the address the server listens on).
pub fn service(server: TaskflowMcp, allowed_hosts: Vec<String>) -> McpService {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_allowed_hosts(allowed_hosts);
    StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// The `Host` names `/mcp` accepts for a server listening on `host` (the server's `HOST`).
///
/// - On a loopback address (the default, and the only one dev auth allows): `localhost`,
///   `127.0.0.1` and `::1`, on any port. A web page that rebinds its own name to 127.0.0.1
///   cannot reach the server through the victim's browser.
/// - On any other address (`0.0.0.0` behind a load balancer, a LAN address): any host, since
///   the name clients use (`tasks.example.com`) cannot be known from the address, and every
///   request must carry a verified bearer token, which DNS rebinding cannot forge.
pub fn allowed_hosts(host: IpAddr) -> Vec<String> {
    if host.is_loopback() {
        ["localhost", "127.0.0.1", "::1"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_follow_the_listening_address() {
        let loopback = allowed_hosts("127.0.0.1".parse().unwrap());
        assert_eq!(loopback, ["localhost", "127.0.0.1", "::1"]);
        assert_eq!(allowed_hosts("::1".parse().unwrap()), loopback);
        assert!(allowed_hosts("0.0.0.0".parse().unwrap()).is_empty());
        assert!(allowed_hosts("10.0.0.5".parse().unwrap()).is_empty());
    }
}
