//! The ceiling for `scripts/bench-http`: a bare poem server with one route and no middleware.
//!
//! `GET /` answers `{"status":"ok"}`. It runs on the same poem and the same multi-threaded tokio
//! runtime as the real server (`examples/server.rs`), but with no auth, no store, no logging, no
//! CORS, no metrics and no connection limits, so what it serves per second on a machine is the
//! most any route of taskflow could. `scripts/bench-http` divides each scenario by it.
//!
//! `HOST` (default `127.0.0.1`) and `PORT` (default 0: a free port) choose where it listens; it
//! prints `ceiling listening on http://ADDR` once bound, and stops on Ctrl-C or SIGTERM.

use std::net::SocketAddr;

use poem::listener::{Acceptor as _, Listener as _, TcpListener};
use poem::web::Json;
use poem::{Route, Server, get, handler};
use serde_json::{Value, json};

#[handler]
fn hello() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let host = std::env::var("HOST").unwrap_or_else(|_| "127.0.0.1".to_owned());
    let port = std::env::var("PORT").unwrap_or_else(|_| "0".to_owned());
    let addr: SocketAddr = format!("{host}:{port}").parse()?;
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let local = acceptor
        .local_addr()
        .first()
        .and_then(|a| a.as_socket_addr().copied())
        .ok_or("the listener has no socket address")?;
    println!("ceiling listening on http://{local}");
    let app = Route::new().at("/", get(hello));
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, taskflow_poem::shutdown_signal(), None)
        .await?;
    Ok(())
}
