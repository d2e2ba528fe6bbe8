//! Limits on client connections: a header-read timeout, an idle keep-alive timeout and a cap on
//! open connections, so that slow or idle clients cannot hold the server's connections.
//!
//! - **Header-read timeout** (`HEADER_READ_TIMEOUT_SECONDS`, default 10 s). poem's `Server` has
//!   none, so [`LimitedAcceptor`] wraps every accepted stream in a [`LimitedStream`] that watches
//!   the bytes going by. A timer starts when the connection opens; it stops when the end of the
//!   request headers (an empty line, `\r\n\r\n`, or `\n\n` as HTTP parsers also accept) has been
//!   read, or as soon as the server writes a response. On a kept-alive connection the timer
//!   starts again with the first byte of the next request, after a response was written. A
//!   stream whose timer runs out fails its next read with [`std::io::ErrorKind::TimedOut`], and
//!   the server closes the connection.
//!
//!   The timer never runs while a request body is read or a response is written: a streamed
//!   response (server-sent events, a slow download) or a slowly sent body lives as long as it
//!   needs. Connections that switch protocols (`101`, e.g. WebSocket) and HTTP/2 with prior
//!   knowledge (binary frames, no header text to watch) are exempt after their first exchange;
//!   the idle timeout still applies to them.
//! - **Idle timeout** (`IDLE_TIMEOUT_SECONDS`, default 60 s): poem's `Server::idle_timeout`. A
//!   connection with no traffic either way for this long is shut down gracefully: a kept-alive
//!   connection between requests is closed; a response in flight is finished first.
//! - **Connection cap** (`MAX_CONNECTIONS`, default 1024): at most this many connections are
//!   open at once. Over it, the server stops accepting: new connections wait in the kernel's
//!   listen backlog (their TCP handshake completes, but nothing reads them) and are accepted, in
//!   order, as open ones close. None is refused by the server; once the backlog is full too, the
//!   kernel drops new connection attempts and clients retry or time out.

use std::convert::Infallible;
use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

use crate::config::ServerConfig;
use crate::metrics::names;

/// The connection limits of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time allowed to send complete request headers.
    pub header_read_timeout: Duration,
    /// Time a connection may go without traffic.
    pub idle_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

impl From<&ServerConfig> for Limits {
    fn from(config: &ServerConfig) -> Self {
        Limits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            max_connections: config.max_connections,
        }
    }
}

/// A poem server on `acceptor` with `limits` applied: the acceptor wrapped in a
/// [`LimitedAcceptor`], and poem's idle timeout set. [`crate::serve`] builds its server with this.
pub fn server<A: Acceptor + 'static>(
    acceptor: A,
    limits: &Limits,
) -> poem::Server<Infallible, LimitedAcceptor<A>> {
    poem::Server::new_with_acceptor(LimitedAcceptor::new(acceptor, limits))
        .idle_timeout(limits.idle_timeout)
}

/// An [`Acceptor`] that holds at most `max_connections` connections open, and wraps each in a
/// [`LimitedStream`] with the header-read timeout.
pub struct LimitedAcceptor<A> {
    inner: A,
    permits: Arc<Semaphore>,
    header_read_timeout: Duration,
}

impl<A> LimitedAcceptor<A> {
    /// Wraps `inner` (a cap of 0 counts as 1).
    pub fn new(inner: A, limits: &Limits) -> Self {
        LimitedAcceptor {
            inner,
            permits: Arc::new(Semaphore::new(
                limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            header_read_timeout: limits.header_read_timeout,
        }
    }
}

impl<A: Acceptor> Acceptor for LimitedAcceptor<A> {
    type Io = LimitedStream<A::Io>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    fn accept(
        &mut self,
    ) -> impl Future<Output = io::Result<(Self::Io, LocalAddr, RemoteAddr, poem::http::uri::Scheme)>>
    + Send {
        let permits = Arc::clone(&self.permits);
        let timeout = self.header_read_timeout;
        let inner = &mut self.inner;
        async move {
            // Over the cap, wait here without accepting: new connections queue in the backlog.
            let permit = permits
                .acquire_owned()
                .await
                .map_err(|_| io::Error::other("the connection limit was closed"))?;
            let (io, local, remote, scheme) = inner.accept().await?;
            Ok((
                LimitedStream::new(io, permit, timeout),
                local,
                remote,
                scheme,
            ))
        }
    }
}

/// Where a connection is in its request/response cycle, as far as the header timer cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading request headers: the timer runs.
    Headers,
    /// Headers read; reading the body or computing the answer.
    Request,
    /// A response was written; the next byte read starts the next request.
    Responded,
    /// Upgraded or HTTP/2: no header text to watch.
    Exempt,
}

/// The start of the HTTP/2 connection preface.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

/// A connection stream with the header-read timeout. It also holds the connection's slot under
/// the cap until it is dropped, and counts itself in `taskflow_http_connections_open`.
pub struct LimitedStream<S> {
    inner: S,
    _permit: OwnedSemaphorePermit,
    timeout: Duration,
    phase: Phase,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Line ends in a row in the headers read so far (`\r` ignored); two end the headers.
    newlines: u8,
    /// Bytes of [`H2_PREFACE`] matched at the start of the connection; `None` once it differs.
    preface: Option<usize>,
}

impl<S> LimitedStream<S> {
    fn new(inner: S, permit: OwnedSemaphorePermit, timeout: Duration) -> Self {
        ::metrics::gauge!(names::CONNECTIONS_OPEN).increment(1.0);
        LimitedStream {
            inner,
            _permit: permit,
            timeout,
            phase: Phase::Headers,
            deadline: Some(Box::pin(tokio::time::sleep(timeout))),
            newlines: 0,
            preface: Some(0),
        }
    }

    /// Follows the request headers through the bytes just read.
    fn saw_read(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        if self.phase == Phase::Responded {
            self.phase = Phase::Headers;
            self.newlines = 0;
            self.deadline = Some(Box::pin(tokio::time::sleep(self.timeout)));
        }
        if self.phase != Phase::Headers {
            return;
        }
        if let Some(matched) = self.preface {
            let n = (H2_PREFACE.len() - matched).min(bytes.len());
            self.preface = if bytes[..n] == H2_PREFACE[matched..matched + n] {
                Some(matched + n)
            } else {
                None
            };
            if self.preface == Some(H2_PREFACE.len()) {
                self.exempt();
                return;
            }
        }
        for &b in bytes {
            match b {
                b'\n' => {
                    self.newlines += 1;
                    if self.newlines == 2 {
                        self.phase = Phase::Request;
                        self.deadline = None;
                        self.preface = None;
                        return;
                    }
                }
                b'\r' => {}
                _ => self.newlines = 0,
            }
        }
    }

    /// A response is being written: no header timer until the client sends again.
    fn saw_write(&mut self, bytes: &[u8]) {
        if bytes.is_empty() || self.phase == Phase::Exempt {
            return;
        }
        if bytes.starts_with(b"HTTP/1.1 101") || bytes.starts_with(b"HTTP/1.0 101") {
            self.exempt();
        } else if bytes.starts_with(b"HTTP/1.1 100 ") {
            // `100 Continue`: the body comes next, still part of this request.
        } else {
            self.phase = Phase::Responded;
            self.deadline = None;
            self.preface = None;
        }
    }

    fn exempt(&mut self) {
        self.phase = Phase::Exempt;
        self.deadline = None;
        self.preface = None;
    }

    /// `Err` once the header timer has run out (and registers for its wake-up otherwise).
    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if let Some(deadline) = &mut self.deadline
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.deadline = None;
            ::metrics::counter!(names::HEADER_READ_TIMEOUTS).increment(1);
            tracing::debug!("closing a connection whose request headers did not arrive in time");
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request headers not received in time",
            ));
        }
        Ok(())
    }
}

impl<S> Drop for LimitedStream<S> {
    fn drop(&mut self) {
        ::metrics::gauge!(names::CONNECTIONS_OPEN).decrement(1.0);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for LimitedStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Err(err) = this.check_deadline(cx) {
            return Poll::Ready(Err(err));
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.saw_read(&buf.filled()[before..]);
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for LimitedStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            this.saw_write(&buf[..n.min(buf.len())]);
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = result
            && let Some(first) = bufs.iter().find(|b| !b.is_empty())
        {
            this.saw_write(&first[..n.min(first.len())]);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> LimitedStream<()> {
        let permit = Arc::new(Semaphore::new(1))
            .try_acquire_owned()
            .expect("a permit");
        LimitedStream::new((), permit, Duration::from_secs(10))
    }

    #[tokio::test]
    async fn follows_headers_bodies_and_responses() {
        let mut s = stream();
        assert!(s.deadline.is_some(), "armed from the start");
        s.saw_read(b"GET / HTTP/1.1\r\nHost: a\r\n");
        assert_eq!(s.phase, Phase::Headers);
        s.saw_read(b"\r\n");
        assert_eq!(s.phase, Phase::Request);
        assert!(s.deadline.is_none());
        s.saw_read(b"body bytes, not headers");
        assert_eq!(s.phase, Phase::Request);
        s.saw_write(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert_eq!(
            s.phase,
            Phase::Request,
            "an interim answer is not the response"
        );
        s.saw_write(b"HTTP/1.1 200 OK\r\n");
        assert_eq!(s.phase, Phase::Responded);
        s.saw_write(b"data: more of a stream\n\n");
        assert!(s.deadline.is_none(), "no timer while only the server talks");
        s.saw_read(b"G");
        assert_eq!(s.phase, Phase::Headers);
        assert!(s.deadline.is_some(), "the next request starts the timer");
        s.saw_read(b"ET / HTTP/1.1\nHost: a\n\n");
        assert_eq!(s.phase, Phase::Request, "bare line feeds end headers too");
    }

    #[tokio::test]
    async fn upgrades_and_http2_are_exempt() {
        let mut s = stream();
        s.saw_read(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
        assert_eq!(s.phase, Phase::Exempt);
        let mut s = stream();
        s.saw_read(b"PRI * HT");
        s.saw_read(b"TP/2.0\r\n");
        assert_eq!(s.phase, Phase::Exempt, "a preface split over reads");
        let mut s = stream();
        s.saw_read(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n");
        s.saw_write(b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
        s.saw_read(b"\x81\x05hello");
        assert_eq!(s.phase, Phase::Exempt);
        assert!(s.deadline.is_none());
    }
}
