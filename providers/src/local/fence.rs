//! The fence between manifest writes and a garbage collection's sweep: why a manifest PUT that returned
//! 201 never loses anything it references, whatever the grace period.
//!
//! Two kinds of records, both plain files in the storage (no lock a process holds), so that every
//! process using the storage — the server, `regbridge gc`, another replica — takes part:
//!
//! * an **intent** (`gc/intents/<uuid>`): written by a manifest write *before* it checks that what the
//!   manifest references exists, removed once the manifest is stored (or the write failed);
//! * a **sweep** (`gc/sweeps/<uuid>`): written by a collection before it deletes anything, refreshed
//!   while it deletes, removed when it is done.
//!
//! A manifest write: (1) records its intent, (2) waits until no live sweep exists, (3) checks its
//! references, (4) stores the manifest, (5) drops the intent. A sweep: (1) records itself, (2) reads every
//! intent, (3) re-reads the manifests stored since its mark, (4) deletes the candidates none of those
//! name, (5) removes itself. If the write's step 2 came before the sweep's step 1, its intent exists
//! before the sweep reads intents: either the sweep sees the intent, or the intent is gone because the
//! manifest was already stored, and step 3 sees the manifest. Otherwise step 2 waited for the sweep to
//! finish, so step 3 finds a deleted blob missing and the write fails with `MANIFEST_BLOB_UNKNOWN`
//! instead of succeeding. Either way nothing an acknowledged manifest names is deleted.
//!
//! A collection that dies leaves its sweep record behind; writes ignore a record not refreshed for
//! [`SWEEP_LEASE`], and a live sweep refreshes its record well before that (before every deletion once a
//! third of the lease has passed), so a record is never taken for dead while its sweep still deletes.
//! The same records work on object storage: create-only puts, listing and deletes, with the store's
//! last-modified time as the refresh time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use regbridge::oci::Digest;
use regbridge::{Error, Result};

use super::gc::collectable::Collectable;
use super::mtime::idle;

/// How long a sweep record counts as live without a refresh.
pub const SWEEP_LEASE: Duration = Duration::from_secs(30);

/// How long a manifest write waits for sweeps before it gives up with `TOOMANYREQUESTS`.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(120);

/// An intent this old belongs to a write that is long gone (writes wait at most [`MAX_WAIT`]).
pub(crate) const STALE_INTENT: Duration = Duration::from_secs(3600);

/// `gc/intents/` under the storage root.
pub(crate) fn intents_dir(root: &Path) -> PathBuf {
    root.join("gc").join("intents")
}

/// `gc/sweeps/` under the storage root.
pub(crate) fn sweeps_dir(root: &Path) -> PathBuf {
    root.join("gc").join("sweeps")
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("gc fence: {what} {}", path.display()), e)
}

/// The file contents of an intent naming `digests`.
pub(crate) fn intent_bytes(digests: &[&Digest]) -> Vec<u8> {
    digests.iter().map(|d| format!("{d}\n")).collect::<String>().into_bytes()
}

/// A manifest write's intent; the record is removed when this is dropped, so a failed or cancelled write
/// (a client that went away drops the request's future) removes it too.
#[derive(Debug)]
pub(crate) struct Intent(pub(crate) PathBuf);

impl Drop for Intent {
    fn drop(&mut self) {
        // One unlink; an intent left behind only makes collections keep a few blobs until it is stale.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Waits until no live sweep exists (step 2 of a write).
pub(crate) async fn wait_for_sweeps(root: &Path) -> Result<()> {
    let dir = sweeps_dir(root);
    let started = Instant::now();
    loop {
        let mut live = false;
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("read", &dir, e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(|e| io("read", &dir, e))? {
            let Ok(meta) = entry.metadata().await else { continue };
            if idle(&meta) < SWEEP_LEASE {
                live = true;
                break;
            }
        }
        if !live {
            return Ok(());
        }
        if started.elapsed() > MAX_WAIT {
            return Err(sweep_too_long());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The error of a manifest write that waited [`MAX_WAIT`] for sweeps.
pub(crate) fn sweep_too_long() -> Error {
    Error::TooManyRequests {
        message: "a garbage collection is deleting blobs; retry the manifest PUT".into(),
        retry_after: Some(Duration::from_secs(10)),
    }
}

/// Every digest named by an intent (step 2 of a sweep). Intents too old to belong to a running write are
/// removed instead.
pub(crate) fn intended(root: &Path) -> Result<Vec<Digest>> {
    let dir = intents_dir(root);
    let read = match std::fs::read_dir(&dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read", &dir, e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let path = entry.map_err(|e| io("read", &dir, e))?.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // Its write finished between the listing and now: the manifest is stored, step 3 sees it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("read", &path, e)),
        };
        if std::fs::metadata(&path).is_ok_and(|m| idle(&m) > STALE_INTENT) {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        out.extend(text.lines().filter_map(|l| Digest::parse(l.trim()).ok()));
    }
    Ok(out)
}

/// Writes a sweep record under `root` (the filesystem's [`Collectable::record_sweep`]).
pub(crate) fn record_sweep(root: &Path) -> Result<String> {
    let dir = sweeps_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
    let name = uuid::Uuid::new_v4().simple().to_string();
    let path = dir.join(&name);
    std::fs::write(&path, b"").map_err(|e| io("create", &path, e))?;
    Ok(name)
}

/// Refreshes sweep record `name` under `root` (its modification time is its refresh time).
pub(crate) fn refresh_sweep(root: &Path, name: &str) -> Result<()> {
    let path = sweeps_dir(root).join(name);
    let file = std::fs::File::options().write(true).open(&path).map_err(|e| io("refresh", &path, e))?;
    file.set_modified(SystemTime::now()).map_err(|e| io("refresh", &path, e))
}

/// A collection's sweep record, through any backend. Removed by [`Sweep::end`], which every path of a
/// collection calls: a record left behind makes manifest writes wait until it is [`SWEEP_LEASE`] old.
pub(crate) struct Sweep<'a> {
    storage: &'a dyn Collectable,
    name: String,
    refreshed: Instant,
}

impl<'a> Sweep<'a> {
    /// Records a sweep (step 1). Intents must be read only after this returns.
    pub(crate) async fn begin(storage: &'a dyn Collectable) -> Result<Sweep<'a>> {
        let name = storage.record_sweep().await?;
        Ok(Self { storage, name, refreshed: Instant::now() })
    }

    /// Call between the steps of a sweep, at least before each manifest it re-reads and each deletion:
    /// refreshes the record once a third of the lease has passed, so writes never take it for a dead
    /// collection's while this one works. Fails, and the sweep must stop deleting, when the record cannot
    /// be refreshed or half the lease passed since the last refresh (the process was stalled: a write may
    /// already have taken this sweep for dead).
    pub(crate) async fn keep_alive(&mut self) -> Result<()> {
        let since = self.refreshed.elapsed();
        if since < SWEEP_LEASE / 3 {
            return Ok(());
        }
        if since > SWEEP_LEASE / 2 {
            return Err(Error::internal(
                "gc: stalled for longer than its lease allows; stopped before deleting anything more",
                std::io::Error::other(format!("{since:?} since the sweep record was refreshed")),
            ));
        }
        self.storage.refresh_sweep(&self.name).await?;
        self.refreshed = Instant::now();
        Ok(())
    }

    /// Removes the record (step 5). Best effort: a record left behind is ignored once stale.
    pub(crate) async fn end(self) {
        let _ = self.storage.remove_sweep(&self.name).await;
    }
}

/// Removes sweep records of collections that died (not refreshed for a lease); they are ignored anyway.
pub(crate) fn remove_dead_sweeps(root: &Path) {
    let Ok(read) = std::fs::read_dir(sweeps_dir(root)) else { return };
    for entry in read.flatten() {
        if entry.metadata().is_ok_and(|m| idle(&m) > SWEEP_LEASE * 2) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
