//! The HTTP accept loop: hyper HTTP/1 connections serving the router, with
//! what `axum::serve` leaves out.
//!
//! - A cap on open connections: one more is answered 503 and closed.
//! - A request-head deadline, from the head's first byte: a client that
//!   trickles its headers is cut off.
//! - An idle deadline for kept-alive connections with no request under way.
//! - A request-body deadline, enforced where the body is read
//!   ([`BodyTimeout`], answered 408).
//! - The client's address for each request ([`ConnectInfo`]).
//! - A shutdown deadline: on the signal no connection is accepted, the
//!   open ones finish their requests and close, and those still open when
//!   the deadline passes are closed mid-request.
//!
//! hyper's own `header_read_timeout` is not used: it runs from the moment a
//! connection is ready for a request, so on a kept-alive connection it is
//! an idle timeout too, and the two deadlines could not differ.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::extract::BodyTimeout;

/// Connections refused because the cap was reached.
pub(crate) const CONNECTIONS_REFUSED: &str = "metachat_http_connections_refused_total";
/// Connections closed by a deadline, by `reason` (`header`, `idle`,
/// `shutdown`).
pub(crate) const CONNECTIONS_TIMED_OUT: &str = "metachat_http_connections_timed_out_total";

/// What an over-the-cap connection is told before it is closed.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\n\
content-type: application/json\r\nx-content-type-options: nosniff\r\n\
connection: close\r\ncontent-length: 101\r\n\r\n\
{\"error\":{\"code\":\"busy\",\"message\":\"too many open connections, retry after 1 s\",\"retry_after_secs\":1}}";

/// Connection limits (see the `--*-timeout-secs` and `--max-connections`
/// flags for their meaning and defaults).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// From a request head's first byte to its end.
    pub(crate) header_timeout: Duration,
    /// For a handler to read a request body.
    pub(crate) body_timeout: Duration,
    /// For a kept-alive connection with no request under way.
    pub(crate) idle_timeout: Duration,
    /// Open connections at most.
    pub(crate) max_connections: usize,
    /// From the shutdown signal until the open connections are closed.
    pub(crate) shutdown_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` completes, then drains the
/// connections for at most `limits.shutdown_timeout` and closes the rest.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, or a connection reset
                        // before it was accepted: try again shortly.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                    tracing::debug!(%peer, "connection cap reached: refusing");
                    // Best effort, without waiting: a fresh socket's send
                    // buffer takes these few bytes.
                    let _ = stream.try_write(REFUSAL);
                    continue;
                };
                connections.spawn(connection(
                    stream,
                    peer,
                    app.clone(),
                    limits,
                    stop_rx.clone(),
                    permit,
                ));
            }
        }
    }
    drop(listener);
    tracing::info!(
        open = connections.len(),
        deadline_secs = limits.shutdown_timeout.as_secs(),
        "no longer accepting connections; finishing the open ones"
    );
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(limits.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = connections.len();
        metrics::counter!(CONNECTIONS_TIMED_OUT, "reason" => "shutdown").increment(left as u64);
        tracing::warn!(
            left,
            "shutdown deadline passed: closing the connections still open"
        );
        connections.shutdown().await;
    }
}

/// What one connection is doing, for its deadlines.
#[derive(Debug)]
struct Activity {
    state: Mutex<ActivityState>,
}

#[derive(Debug, Clone, Copy)]
struct ActivityState {
    /// Requests handed to the router and not answered yet.
    in_flight: usize,
    /// When the connection last became idle (accepted, or answered).
    idle_since: Instant,
    /// The first byte of the next request head, while idle.
    head_started: Option<Instant>,
}

/// Why a connection's deadline closes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expired {
    Header,
    Idle,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: Mutex::new(ActivityState {
                in_flight: 0,
                idle_since: Instant::now(),
                head_started: None,
            }),
        }
    }

    /// Bytes arrived.
    fn read(&self) {
        let mut s = self.state.lock();
        if s.in_flight == 0 && s.head_started.is_none() {
            s.head_started = Some(Instant::now());
        }
    }

    /// A request head was parsed and goes to the router.
    fn begin(self: &Arc<Self>) -> InFlight {
        let mut s = self.state.lock();
        s.in_flight += 1;
        s.head_started = None;
        InFlight(self.clone())
    }

    /// The deadline that expired at `now`, if one did; else when to look
    /// again (at most `tick` from now).
    fn check(&self, limits: &HttpLimits, now: Instant, tick: Duration) -> Result<Instant, Expired> {
        let s = *self.state.lock();
        let next = now + tick;
        if s.in_flight > 0 {
            return Ok(next);
        }
        let (deadline, why) = match s.head_started {
            Some(t) => (t + limits.header_timeout, Expired::Header),
            None => (s.idle_since + limits.idle_timeout, Expired::Idle),
        };
        if deadline <= now {
            Err(why)
        } else {
            Ok(deadline.min(next))
        }
    }
}

/// A request under way; dropped when its answer is ready.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut s = self.0.state.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        if s.in_flight == 0 {
            s.idle_since = Instant::now();
        }
    }
}

/// A socket that tells its [`Activity`] when bytes arrive.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        res
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Serves one connection until it closes, a deadline closes it, or the
/// shutdown stops it (gracefully; the serve loop's deadline aborts it).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: HttpLimits,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut req: hyper::Request<Incoming>| {
            let in_flight = activity.begin();
            req.extensions_mut().insert(ConnectInfo(peer));
            req.extensions_mut()
                .insert(BodyTimeout(limits.body_timeout));
            let answer = app.clone().oneshot(req.map(Body::new));
            async move {
                let res = answer.await;
                drop(in_flight);
                Ok::<_, Infallible>(match res {
                    Ok(r) => r,
                    Err(never) => match never {},
                })
            }
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let tick = limits
        .header_timeout
        .min(limits.idle_timeout)
        .div_f32(4.0)
        .max(Duration::from_millis(50));
    let mut stopping = false;
    let mut wake = Instant::now() + tick;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            () = tokio::time::sleep_until(wake) => {
                match activity.check(&limits, Instant::now(), tick) {
                    Ok(next) => wake = next,
                    Err(why) => {
                        let reason = match why {
                            Expired::Header => "header",
                            Expired::Idle => "idle",
                        };
                        metrics::counter!(CONNECTIONS_TIMED_OUT, "reason" => reason).increment(1);
                        tracing::debug!(%peer, reason, "connection deadline passed: closing");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4,
            shutdown_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_refusal_is_well_formed() {
        let text = std::str::from_utf8(REFUSAL).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON");
        assert_eq!(json["error"]["code"], "busy");
    }

    #[test]
    fn deadlines_follow_the_connection() {
        let l = limits();
        let tick = Duration::from_secs(1);
        let a = Arc::new(Activity::new());
        let t0 = a.state.lock().idle_since;
        let secs = Duration::from_secs;
        // Idle: closed after the idle timeout, not before.
        assert!(a.check(&l, t0 + secs(59), tick).is_ok());
        assert_eq!(a.check(&l, t0 + secs(60), tick), Err(Expired::Idle));
        // Never sleeps past the tick.
        assert_eq!(a.check(&l, t0, tick), Ok(t0 + tick));
        // A head started: the header deadline runs from its first byte.
        a.read();
        let t1 = a.state.lock().head_started.expect("a head started");
        assert!(a.check(&l, t1 + secs(9), tick).is_ok());
        assert_eq!(a.check(&l, t1 + secs(10), tick), Err(Expired::Header));
        // A request under way has no deadline here (the body's is
        // elsewhere), and its body bytes start no head.
        let req = a.begin();
        a.read();
        assert!(a.check(&l, t1 + secs(3_600), tick).is_ok());
        drop(req);
        // Answered: idle again from then.
        let s = *a.state.lock();
        assert!(s.head_started.is_none());
        assert!(a.check(&l, s.idle_since + secs(59), tick).is_ok());
        assert_eq!(
            a.check(&l, s.idle_since + secs(60), tick),
            Err(Expired::Idle)
        );
    }
}
