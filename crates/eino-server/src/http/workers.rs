//! Connection threads: each runs its own single-threaded tokio runtime, and a connection
//! handed to one stays there with everything its requests do, the calls to upstream
//! model servers included (their clients keep a connection pool per runtime).
//!
//! Why: on tokio's shared work-stealing runtime, one proxied request woke tasks on both
//! of its worker threads (the server connection, the handler, the upstream connection),
//! three to four context switches per request; a tenth of the CPU of a proxied request
//! went to those hand-offs (docs/benchmarks.md, issue 22). A thread per core keeps both
//! cores busy without them. The price: a request that computes for long on its async
//! thread holds up that thread's other connections (work that computes for long, the
//! local models and the index builds, runs on blocking threads), which is why
//! `server.work_stealing` keeps the shared runtime on offer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use hyper_util::server::graceful::Watcher;
use tokio::sync::{mpsc, OwnedSemaphorePermit};
use tokio_util::sync::CancellationToken;

use super::Serving;

/// An accepted connection on its way to a connection thread: the socket, detached from
/// the accepting runtime, and what its connection holds while open.
struct Handoff {
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    slot: OwnedSemaphorePermit,
    watcher: Watcher,
}

/// A thread's count of open connections, one down when a connection ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

struct Thread {
    tx: mpsc::UnboundedSender<Handoff>,
    open: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

/// The connection threads of one server. Dropping them (the server's future dropped
/// without a shutdown, a test's server say) closes their channels, which ends their
/// runtimes and with them the connections still open; [`Workers::stop`] does the same
/// and waits for the threads.
pub(super) struct Workers {
    threads: Vec<Thread>,
    stop: CancellationToken,
}

impl Workers {
    /// Start `n` threads (at least one), each serving with `serving`.
    pub fn start(n: usize, serving: &Serving) -> std::io::Result<Self> {
        let stop = CancellationToken::new();
        let mut threads = Vec::with_capacity(n.max(1));
        for i in 0..n.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            let open = Arc::new(AtomicUsize::new(0));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (o, s, serving) = (open.clone(), stop.clone(), serving.clone());
            let handle = std::thread::Builder::new()
                .name(format!("eino-conn-{i}"))
                .spawn(move || runtime.block_on(run(rx, o, s, serving)))?;
            threads.push(Thread {
                tx,
                open,
                handle: Some(handle),
            });
        }
        Ok(Self { threads, stop })
    }

    /// Hand a connection to the thread with the fewest open ones (a long stream weighs
    /// as much as a busy keep-alive connection: both hold their thread's attention).
    pub fn dispatch(
        &self,
        tcp: tokio::net::TcpStream,
        peer: SocketAddr,
        slot: OwnedSemaphorePermit,
        watcher: Watcher,
    ) {
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::warn!(error = %e, %peer, "cannot hand a connection over");
                return;
            }
        };
        let Some(t) = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
        else {
            return;
        };
        t.open.fetch_add(1, Ordering::Relaxed);
        let handoff = Handoff {
            tcp,
            peer,
            slot,
            watcher,
        };
        if t.tx.send(handoff).is_err() {
            // The thread is gone (its runtime panicked); the connection closes.
            t.open.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// End the threads' runtimes (their remaining connections close) and wait for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let handles: Vec<_> = self
            .threads
            .iter_mut()
            .filter_map(|t| t.handle.take())
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
    }
}

/// A connection thread's loop: serve what is handed over until told to stop (or until the
/// server's handle on the thread is gone), then drop (with the runtime) the connections
/// still open. The accept loop's end is not a stop: open connections get the server's
/// grace period, and [`Workers::stop`] comes after it.
async fn run(
    mut rx: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    stop: CancellationToken,
    serving: Serving,
) {
    loop {
        let handoff = tokio::select! {
            h = rx.recv() => h,
            _ = stop.cancelled() => return,
        };
        // `None`: the server's threads were dropped (or never all started).
        let Some(h) = handoff else {
            return;
        };
        let held = (h.slot, Open(open.clone()));
        match tokio::net::TcpStream::from_std(h.tcp) {
            Ok(tcp) => serving.spawn(tcp, h.peer, h.watcher, held),
            Err(e) => tracing::warn!(error = %e, peer = %h.peer, "cannot register a connection"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn serving() -> Serving {
        Serving {
            app: axum::Router::new(),
            http: hyper::server::conn::http1::Builder::new(),
        }
    }

    #[tokio::test]
    async fn stopping_ends_and_joins_the_threads() {
        let workers = Workers::start(2, &serving()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), workers.stop())
            .await
            .expect("the threads ended");
    }

    /// A thread whose server is gone without a stop (a start that failed part-way) ends
    /// instead of waiting for a stop that never comes.
    #[tokio::test]
    async fn a_thread_ends_when_its_server_is_gone() {
        let (tx, rx) = mpsc::unbounded_channel();
        drop(tx);
        let never = CancellationToken::new();
        tokio::time::timeout(
            Duration::from_secs(5),
            run(rx, Arc::new(AtomicUsize::new(0)), never, serving()),
        )
        .await
        .expect("the loop ended");
    }
}
