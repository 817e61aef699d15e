//! The live policy set: atomic reloads that keep the last good set on error, and a file watch.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::errors::LoadErrors;
use super::loader::LoadOptions;
use super::set::PolicySet;

/// Quiet time after the last file event before reloading.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Holds the policy set in force. Readers take an `Arc<PolicySet>` with
/// [`PolicyRegistry::current`] and keep using it for the whole request, so a reload never
/// changes policies under a request in flight.
#[derive(Debug)]
pub struct PolicyRegistry {
    dir: PathBuf,
    opts: LoadOptions,
    current: ArcSwap<PolicySet>,
    last_error: Mutex<Option<LoadErrors>>,
    reloads: AtomicU64,
    failed_reloads: AtomicU64,
    reloading: Mutex<()>,
}

/// Keeps the file watch alive; dropping it stops watching.
#[derive(Debug)]
pub struct PolicyWatcher {
    _watcher: RecommendedWatcher,
}

impl PolicyRegistry {
    /// Loads `dir`; fails if the initial set is invalid.
    pub fn load(dir: &Path, opts: LoadOptions) -> Result<Self, LoadErrors> {
        let set = PolicySet::load_dir(dir, &opts)?;
        Ok(Self {
            dir: dir.to_owned(),
            opts,
            current: ArcSwap::from_pointee(set),
            last_error: Mutex::new(None),
            reloads: AtomicU64::new(0),
            failed_reloads: AtomicU64::new(0),
            reloading: Mutex::new(()),
        })
    }

    /// The policy folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The set in force.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Validates the whole folder again and swaps it in atomically. On error the current set
    /// keeps serving and the error is kept for [`PolicyRegistry::last_error`].
    pub fn reload(&self) -> Result<(), LoadErrors> {
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let result = PolicySet::load_dir(&self.dir, &self.opts);
        let mut last = self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(set) => {
                let regions = set.len();
                self.current.store(Arc::new(set));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                *last = None;
                tracing::info!(regions, "policies reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    errors = e.errors().len(),
                    "policy reload refused; the last good policies keep serving"
                );
                self.failed_reloads.fetch_add(1, Ordering::Relaxed);
                *last = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The errors of the last failed reload, cleared by a successful one.
    pub fn last_error(&self) -> Option<LoadErrors> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Number of successful reloads since start.
    pub fn reload_count(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    /// Number of refused reloads since start (the last good set kept serving).
    pub fn reload_failures(&self) -> u64 {
        self.failed_reloads.load(Ordering::Relaxed)
    }

    /// Reloads whenever files in the folder change (debounced by 200 ms, on a background
    /// thread). Watching stops when the returned guard is dropped.
    pub fn watch(self: Arc<Self>) -> Result<PolicyWatcher, notify::Error> {
        let (tx, rx) = channel::<()>();
        let mut watcher =
            notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(ev) = res
                    && !matches!(ev.kind, EventKind::Access(_))
                {
                    let _ = tx.send(());
                }
            })?;
        watcher.watch(&self.dir, RecursiveMode::NonRecursive)?;
        let registry = self;
        std::thread::Builder::new()
            .name("policy-watch".to_owned())
            .spawn(move || {
                while rx.recv().is_ok() {
                    loop {
                        match rx.recv_timeout(DEBOUNCE) {
                            Ok(()) => {}
                            Err(RecvTimeoutError::Timeout) => break,
                            Err(RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    // The outcome is logged and kept in `last_error`.
                    let _ = registry.reload();
                }
            })
            .map_err(notify::Error::io)?;
        Ok(PolicyWatcher { _watcher: watcher })
    }
}
