//! Data-plane workers: `gateway.workers` threads (one per core by default), each running a
//! current-thread runtime of its own that accepts from the listening socket and serves what
//! it accepted to the end.
//!
//! A connection, its requests, their exchanges and the pooled upstream connections they use
//! all live on one thread, so forwarding a request wakes no other thread (tokio's
//! work-stealing runtime moved tasks between cores and woke its parked workers on every
//! request). Every worker holds its own handle (a `dup`) of the one listening socket and all
//! of them wait on it: whichever worker is idle first accepts, so a busy one takes fewer new
//! connections. `SO_REUSEPORT` is not used: with it, a second gateway started by the same
//! user on the same address would silently take a share of the connections instead of failing
//! to bind.

use std::cell::Cell;
use std::io;
use std::sync::{Arc, mpsc};
use std::thread;

use tokio::net::TcpListener;
use tokio::runtime::Runtime;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio_rustls::TlsAcceptor;
use tokio_util::task::TaskTracker;

use super::{Handler, Limits};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
    /// Requests in flight on this data-plane worker; `None` on any other thread.
    static IN_FLIGHT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the data-plane worker running this thread (0 on any other thread).
pub(crate) fn worker_index() -> usize {
    INDEX.get()
}

/// True on a data-plane worker whose only request in flight is the caller's: blocking the
/// thread for a moment then holds up no other request.
pub(crate) fn alone() -> bool {
    IN_FLIGHT.get() == Some(1)
}

/// One request in flight on this thread, counted while it lives if the thread is a
/// data-plane worker (its requests, and the tasks they spawn, never move to another thread).
/// The pipeline holds it with the request's `gateway.max_in_flight` place, so it lives as long
/// as the exchange does (past a client that hung up, through a streamed export).
#[derive(Debug)]
pub(crate) struct InFlight(bool);

impl InFlight {
    /// Counts a request that starts now.
    pub(crate) fn enter() -> Self {
        match IN_FLIGHT.get() {
            Some(n) => {
                IN_FLIGHT.set(Some(n + 1));
                Self(true)
            }
            None => Self(false),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0
            && let Some(n) = IN_FLIGHT.get()
        {
            IN_FLIGHT.set(Some(n.saturating_sub(1)));
        }
    }
}

/// What every worker serves its connections with.
#[derive(Clone)]
pub(crate) struct Serving {
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) limits: Limits,
    pub(crate) handler: Handler,
    /// The listener's `max_connections`, shared by all workers.
    pub(crate) slots: Arc<Semaphore>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Exchanges spawned on a worker's runtime run to their end there: the worker keeps its
    /// runtime going until this tracker is closed and empty.
    pub(crate) exchanges: TaskTracker,
}

struct Start {
    serving: Serving,
    drained: oneshot::Sender<()>,
    finished: oneshot::Sender<()>,
}

/// A worker thread with its runtime and its listener handle, waiting to be started.
pub(crate) struct Worker {
    start: mpsc::SyncSender<Start>,
}

/// A started worker. Each receiver resolves (to anything) once that point is passed, or if the
/// worker's thread is gone.
pub(crate) struct Running {
    /// It accepts no more connections and its connections are closed (or the grace is over).
    pub(crate) drained: oneshot::Receiver<()>,
    /// Its exchanges are done and its runtime is dropped.
    pub(crate) finished: oneshot::Receiver<()>,
}

/// Creates `count` worker threads, each with a runtime and its own handle on `listener`.
/// They wait for [`Worker::start`]; dropped unstarted, they end.
pub(crate) fn spawn(listener: std::net::TcpListener, count: usize) -> io::Result<Vec<Worker>> {
    listener.set_nonblocking(true)?;
    (0..count)
        .map(|index| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let own = {
                let _entered = runtime.enter();
                TcpListener::from_std(listener.try_clone()?)?
            };
            let (start, started) = mpsc::sync_channel(1);
            thread::Builder::new()
                .name(format!("consentgate-worker-{index}"))
                .spawn(move || run(index, runtime, own, started))?;
            Ok(Worker { start })
        })
        .collect()
}

impl Worker {
    /// Starts serving with `serving`.
    pub(crate) fn start(self, serving: Serving) -> Running {
        let (drained, drained_rx) = oneshot::channel();
        let (finished, finished_rx) = oneshot::channel();
        // A thread that is gone drops the message, and with it both senders.
        let _ = self.start.send(Start {
            serving,
            drained,
            finished,
        });
        Running {
            drained: drained_rx,
            finished: finished_rx,
        }
    }
}

fn run(index: usize, runtime: Runtime, listener: TcpListener, started: mpsc::Receiver<Start>) {
    INDEX.set(index);
    IN_FLIGHT.set(Some(0));
    let Ok(Start {
        serving,
        drained,
        finished,
    }) = started.recv()
    else {
        return;
    };
    runtime.block_on(async move {
        let Serving {
            tls,
            limits,
            handler,
            slots,
            shutdown,
            exchanges,
        } = serving;
        super::serve(listener, tls, limits, handler, slots, shutdown).await;
        let _ = drained.send(());
        exchanges.wait().await;
    });
    // Dropping the runtime closes what is left on it: idle upstream connections, and
    // connections still open when the grace ran out.
    drop(runtime);
    let _ = finished.send(());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_worker_with_one_request_in_flight_is_alone() {
        thread::spawn(|| {
            // Not a data-plane worker: never alone, and nothing is counted.
            let guard = InFlight::enter();
            assert!(!alone());
            drop(guard);
            assert_eq!(IN_FLIGHT.get(), None);
            IN_FLIGHT.set(Some(0));
            assert!(!alone());
            let first = InFlight::enter();
            assert!(alone());
            let second = InFlight::enter();
            assert!(!alone());
            drop(first);
            assert!(alone());
            drop(second);
            assert!(!alone());
            assert_eq!(IN_FLIGHT.get(), Some(0));
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    }
}
