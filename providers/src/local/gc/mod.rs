//! Garbage collection of the registry's storage: mark every blob a stored manifest references, sweep the
//! others. One implementation over [`Collectable`], so the filesystem and every object store are collected
//! the same way, with the same guarantees and the same [`GcReport`].
//!
//! **Safe while pushes run.** A manifest that was stored (its PUT answered 201) never loses anything it
//! references, by construction and whatever the grace period: the sweep and manifest writes are fenced
//! against each other ([`super::fence`]), and a write that comes too late to be seen by the sweep finds a
//! deleted blob missing and fails instead of succeeding.
//!
//! Blobs no manifest names yet are what a push uploads before its manifest; the grace period spares those
//! touched recently: a finished upload writes the blob, and linking an existing blob into a repository (a
//! repeated upload of the same content, or a mount) refreshes its modification time. With a grace period
//! of zero such a blob may go before its manifest arrives; the manifest PUT then answers
//! `MANIFEST_BLOB_UNKNOWN` and the client uploads it again.
//!
//! Deleting a blob also removes the repositories' links to it, so no repository claims a blob that is gone.
//!
//! A collection also removes upload sessions idle for longer than the upload expiry (the server answers
//! `BLOB_UPLOAD_UNKNOWN` for them already; on object storage their multipart uploads are aborted and their
//! tails deleted), what interrupted writes left behind (staging files, superseded tails), stale intents
//! and dead sweep records.
//!
//! **One collector at a time**, across processes and replicas: a collection that deletes holds the lease
//! ([`lease`]); another one refuses, naming the holder. A dry run deletes nothing and takes no lease.

pub(crate) mod collectable;
mod fs;
pub mod lease;

use std::collections::HashSet;
use std::time::Duration;

use regbridge::Result;
use regbridge::oci::Digest;
use serde::Serialize;

pub use collectable::{Collectable, LeaseVersion, StoredBlob, UploadSession};
use lease::Lease;

use super::fence::Sweep;

/// What a collection found and did.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcReport {
    /// Manifests read in the mark phase.
    pub manifests: usize,
    /// Blobs referenced by them (manifests included).
    pub referenced: usize,
    /// Unreferenced blobs spared because they were touched within the grace period.
    pub spared: usize,
    /// Unreferenced blobs deleted (or, in a dry run, that would be).
    pub deleted: Vec<String>,
    /// Their total size in bytes.
    pub deleted_bytes: u64,
    /// Upload sessions removed (in a dry run, that would be) because they were idle for longer than the
    /// upload expiry.
    pub uploads_removed: usize,
    /// Stray staging files (object storage: superseded upload tails) removed (in a dry run, that would be):
    /// left by writes that were interrupted.
    pub temp_files_removed: usize,
    /// Bytes freed in all: blobs, expired uploads and staging files.
    pub reclaimed_bytes: u64,
    /// Whether this was a dry run (nothing removed).
    pub dry_run: bool,
}

/// Options of a collection.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced blobs touched more recently than this are kept, and so are staging files (which
    /// are also kept for at least [`MIN_TEMP_AGE`]).
    pub grace: Duration,
    /// Upload sessions that received nothing for this long are removed: the server's setting
    /// ([`super::fs::FsStorage::with_upload_expiry`]).
    pub upload_expiry: Duration,
    /// Report without deleting.
    pub dry_run: bool,
    /// How long the collector lease lives without a refresh ([`lease::DEFAULT_LEASE`]); a collector that
    /// died blocks others for at most this long.
    pub lease: Duration,
}

impl Default for GcOptions {
    /// One hour of grace, uploads expiring after [`super::storage::DEFAULT_UPLOAD_EXPIRY`], deleting.
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(3600),
            upload_expiry: super::storage::DEFAULT_UPLOAD_EXPIRY,
            dry_run: false,
            lease: lease::DEFAULT_LEASE,
        }
    }
}

/// A staging file is in use only for the moment a write takes, but never removed younger than this,
/// even with no grace period, so a collection never breaks a write in progress.
pub const MIN_TEMP_AGE: Duration = Duration::from_secs(60);

/// The digests a manifest or index names: config, layers, blobs, child manifests and subject.
fn references(manifest: &serde_json::Value) -> Vec<Digest> {
    let digest_of =
        |v: &serde_json::Value| v.get("digest").and_then(|d| d.as_str()).and_then(|d| Digest::parse(d).ok());
    let mut out: Vec<Digest> =
        ["config", "subject"].iter().filter_map(|k| manifest.get(*k)).filter_map(digest_of).collect();
    for list in ["layers", "manifests", "blobs"] {
        if let Some(items) = manifest.get(list).and_then(|v| v.as_array()) {
            out.extend(items.iter().filter_map(digest_of));
        }
    }
    out
}

/// What a mark reached: the digests to keep, and the manifests already read.
#[derive(Default)]
struct Marked {
    keep: HashSet<Digest>,
    read: HashSet<Digest>,
}

/// The records a running collection keeps fresh: its lease, and during the sweep its sweep record.
struct Alive<'a> {
    lease: Option<Lease<'a>>,
    sweep: Option<Sweep<'a>>,
}

impl Alive<'_> {
    /// Call between steps: refreshes what is due, fails when the collection must stop.
    async fn tick(&mut self) -> Result<()> {
        if let Some(lease) = self.lease.as_mut() {
            lease.keep_alive().await?;
        }
        if let Some(sweep) = self.sweep.as_mut() {
            sweep.keep_alive().await?;
        }
        Ok(())
    }
}

/// Marks what the manifests of every repository reference (and the manifests themselves), reading only
/// manifests not read yet: the mark, and after it the re-mark of manifests stored since. Returns how many
/// manifest links there are.
async fn mark(storage: &dyn Collectable, marked: &mut Marked, alive: &mut Alive<'_>) -> Result<usize> {
    let mut links = 0;
    for repo in storage.gc_repositories().await? {
        for manifest in storage.manifest_digests(&repo).await? {
            links += 1;
            // The same manifest in another repository references the same content.
            if !marked.read.insert(manifest.clone()) {
                continue;
            }
            alive.tick().await?;
            // A manifest that does not parse still keeps itself; it names nothing we can see.
            if let Some(bytes) = storage.blob_content(&manifest).await?
                && let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
            {
                marked.keep.extend(references(&value));
            }
            marked.keep.insert(manifest);
        }
    }
    Ok(links)
}

/// Runs a collection over `storage`. `progress` is called with (blobs examined, blobs in all) while
/// candidates are chosen.
///
/// Unless it is a dry run, the collection first takes the lease, and refuses (`AlreadyExists`, naming the
/// holder and until when) while another collection holds it. Candidates are the blobs the mark did not
/// reach and the grace period does not spare. Before deleting any, the collection records its sweep and
/// re-marks from the intents of manifest writes in progress and from the manifests stored since the mark
/// ([`super::fence`]), so a manifest stored meanwhile keeps what it references.
pub async fn collect(
    storage: &dyn Collectable,
    options: &GcOptions,
    mut progress: impl FnMut(usize, usize) + Send,
) -> Result<GcReport> {
    let lease = if options.dry_run { None } else { Some(Lease::acquire(storage, options.lease).await?) };
    let mut alive = Alive { lease, sweep: None };
    let result = run(storage, options, &mut alive, &mut progress).await;
    // Every path ends the sweep and gives the lease back: a record left behind would hold up writes.
    if let Some(sweep) = alive.sweep.take() {
        sweep.end().await;
    }
    if let Some(lease) = alive.lease.take() {
        lease.release().await;
    }
    result
}

async fn run<'a>(
    storage: &'a dyn Collectable,
    options: &GcOptions,
    alive: &mut Alive<'a>,
    progress: &mut (impl FnMut(usize, usize) + Send),
) -> Result<GcReport> {
    let mut report = GcReport { dry_run: options.dry_run, ..GcReport::default() };
    if !options.dry_run {
        storage.remove_dead_sweeps().await?;
    }
    let mut marked = Marked::default();
    report.manifests = mark(storage, &mut marked, alive).await?;
    let blobs = storage.blobs().await?;
    let total = blobs.len();
    let mut candidates = Vec::new();
    for (i, blob) in blobs.into_iter().enumerate() {
        progress(i + 1, total);
        if marked.keep.contains(&blob.digest) {
            continue;
        }
        if blob.idle < options.grace {
            report.spared += 1;
            continue;
        }
        candidates.push(blob);
    }
    if options.dry_run {
        // A dry run deletes nothing, so it need not fence anything: it reports the candidates.
        report.referenced = marked.keep.len();
        for blob in candidates {
            report.deleted_bytes += blob.size;
            report.deleted.push(blob.digest.to_string());
        }
    } else {
        alive.sweep = Some(Sweep::begin(storage).await?);
        marked.keep.extend(storage.intended().await?);
        mark(storage, &mut marked, alive).await?;
        report.referenced = marked.keep.len();
        let mut deleted = HashSet::new();
        for blob in candidates {
            if marked.keep.contains(&blob.digest) {
                continue;
            }
            alive.tick().await?;
            if !storage.remove_blob(&blob.digest).await? {
                continue;
            }
            report.deleted_bytes += blob.size;
            report.deleted.push(blob.digest.to_string());
            deleted.insert(blob.digest);
        }
        // Still inside the sweep: a write waiting for it must find the links gone too.
        if !deleted.is_empty() {
            unlink(storage, &deleted, alive).await?;
        }
        if let Some(sweep) = alive.sweep.take() {
            sweep.end().await;
        }
    }
    let leftovers = remove_leftovers(storage, options, &mut report, alive).await?;
    report.reclaimed_bytes = report.deleted_bytes + leftovers;
    Ok(report)
}

/// Removes upload sessions idle for longer than the upload expiry, and what interrupted writes left
/// behind (older than the grace period and [`MIN_TEMP_AGE`]). Returns the bytes freed.
async fn remove_leftovers(
    storage: &dyn Collectable,
    options: &GcOptions,
    report: &mut GcReport,
    alive: &mut Alive<'_>,
) -> Result<u64> {
    let mut freed = 0;
    for upload in storage.uploads().await? {
        if upload.idle <= options.upload_expiry {
            continue;
        }
        if !options.dry_run {
            alive.tick().await?;
            storage.remove_upload(&upload.id).await?;
        }
        report.uploads_removed += 1;
        freed += upload.size;
    }
    let (strays, bytes) = storage.remove_strays(options.grace.max(MIN_TEMP_AGE), options.dry_run).await?;
    report.temp_files_removed += strays;
    Ok(freed + bytes)
}

/// Removes the repositories' links to deleted blobs.
async fn unlink(storage: &dyn Collectable, deleted: &HashSet<Digest>, alive: &mut Alive<'_>) -> Result<()> {
    for repo in storage.gc_repositories().await? {
        for digest in storage.blob_links(&repo).await? {
            // A blob uploaded again since it was deleted keeps its links.
            if deleted.contains(&digest) && !storage.has_blob(&digest).await? {
                alive.tick().await?;
                match storage.unlink_blob(&repo, &digest).await {
                    Ok(()) | Err(regbridge::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_cover_every_kind_of_descriptor() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let manifest = serde_json::json!({
            "config": {"digest": d('a')}, "layers": [{"digest": d('b')}], "subject": {"digest": d('c')},
            "manifests": [{"digest": d('d')}], "blobs": [{"digest": d('e')}],
        });
        let found: HashSet<String> = references(&manifest).iter().map(|d| d.to_string()).collect();
        assert_eq!(found.len(), 5);
        assert!(found.contains(&d('e')));
    }

    #[test]
    fn hostile_references_name_nothing() {
        // Manifest bytes come from clients: only well-formed digests are marked, nothing becomes a path.
        let manifest = serde_json::json!({
            "config": {"digest": "sha256:../../../etc/passwd"}, "layers": [{"digest": 7}, {"digest": "md5:abc"}],
            "subject": "sha256:aa", "manifests": {"digest": "sha256:bb"},
        });
        assert!(references(&manifest).is_empty());
    }
}
