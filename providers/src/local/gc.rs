//! Garbage collection of the local storage: mark every blob a stored manifest references, sweep the others.
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
//! `BLOB_UPLOAD_UNKNOWN` for them already) and staging files that interrupted writes left behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regbridge::oci::Digest;
use regbridge::{Error, Result};
use serde::Serialize;

use super::mtime::idle;

use super::fence;

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
    /// Stray staging files removed (in a dry run, that would be): left by writes that were interrupted.
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
}

impl Default for GcOptions {
    /// One hour of grace, uploads expiring after [`super::storage::DEFAULT_UPLOAD_EXPIRY`], deleting.
    fn default() -> Self {
        Self { grace: Duration::from_secs(3600), upload_expiry: super::storage::DEFAULT_UPLOAD_EXPIRY, dry_run: false }
    }
}

/// A staging file is in use only for the moment a write takes, but never removed younger than this,
/// even with no grace period, so a collection never breaks a write in progress.
pub const MIN_TEMP_AGE: Duration = Duration::from_secs(60);

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("gc: {what} {}", path.display()), e)
}

/// Files directly inside `dir` (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.map(|e| e.path()).map_err(|e| io("read", dir, e))).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("read", dir, e)),
    }
}

/// Every repository directory under `repositories/` (nested names included).
fn repository_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("repositories")];
    while let Some(dir) = stack.pop() {
        for path in entries(&dir)? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && !name.starts_with('_') {
                if path.join("_meta.json").exists() || path.join("_manifests").exists() {
                    out.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    Ok(out)
}

/// `<alg>/<hex>` entries under `dir` as digests.
fn digests_under(dir: &Path) -> Result<Vec<Digest>> {
    let mut out = Vec::new();
    for alg in entries(dir)? {
        let Some(alg_name) = alg.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        for file in entries(&alg)? {
            let Some(hex) = file.file_name().and_then(|n| n.to_str()) else { continue };
            if let Ok(d) = Digest::parse(&format!("{alg_name}:{hex}")) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join(d.algorithm().as_str()).join(&d.hex()[..2]).join(d.hex())
}

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

/// Marks what the manifests of every repository reference (and the manifests themselves), reading only
/// manifests not read yet: the mark, and after it the re-mark of manifests stored since. `between` runs
/// before each manifest is read. Returns how many manifest links there are.
fn mark(root: &Path, marked: &mut Marked, mut between: impl FnMut() -> Result<()>) -> Result<usize> {
    let mut links = 0;
    for repo in repository_dirs(root)? {
        for manifest in digests_under(&repo.join("_manifests"))? {
            links += 1;
            // The same manifest in another repository references the same content.
            if !marked.read.insert(manifest.clone()) {
                continue;
            }
            between()?;
            let path = blob_path(root, &manifest);
            match std::fs::read(&path) {
                Ok(bytes) => {
                    // A manifest that does not parse still keeps itself; it names nothing we can see.
                    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                        marked.keep.extend(references(&value));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io("read manifest", &path, e)),
            }
            marked.keep.insert(manifest);
        }
    }
    Ok(links)
}

/// Every blob file: its digest and path.
fn blob_files(root: &Path) -> Result<Vec<(Digest, PathBuf)>> {
    let mut blobs = Vec::new();
    for alg in entries(&root.join("blobs"))? {
        let Some(alg_name) = alg.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        for prefix in entries(&alg)? {
            for file in entries(&prefix)? {
                let hex = file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
                if let Ok(d) = Digest::parse(&format!("{alg_name}:{hex}")) {
                    blobs.push((d, file));
                }
            }
        }
    }
    Ok(blobs)
}

/// Runs a collection over the storage rooted at `root` (blocking: call it from a blocking thread).
/// `progress` is called with (blobs examined, blobs in all) while candidates are chosen.
///
/// Candidates are the blobs the mark did not reach and the grace period does not spare. Before deleting
/// any, the collection records its sweep and re-marks from the intents of manifest writes in progress and
/// from the manifests stored since the mark ([`super::fence`]), so a manifest stored meanwhile keeps what
/// it references.
pub fn collect(root: &Path, options: &GcOptions, mut progress: impl FnMut(usize, usize)) -> Result<GcReport> {
    let mut report = GcReport { dry_run: options.dry_run, ..GcReport::default() };
    fence::remove_dead_sweeps(root);
    let mut marked = Marked::default();
    report.manifests = mark(root, &mut marked, || Ok(()))?;
    let blobs = blob_files(root)?;
    let total = blobs.len();
    let mut candidates = Vec::new();
    for (i, (digest, path)) in blobs.into_iter().enumerate() {
        progress(i + 1, total);
        if marked.keep.contains(&digest) {
            continue;
        }
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("stat", &path, e)),
        };
        if idle(&meta) < options.grace {
            report.spared += 1;
            continue;
        }
        candidates.push((digest, path, meta.len()));
    }
    // A dry run deletes nothing, so it need not fence anything: it reports the candidates.
    let mut sweep = if options.dry_run { None } else { Some(fence::Sweep::begin(root)?) };
    if let Some(sweep) = sweep.as_mut() {
        marked.keep.extend(fence::intended(root)?);
        mark(root, &mut marked, || sweep.keep_alive())?;
    }
    report.referenced = marked.keep.len();
    let mut deleted = HashSet::new();
    for (digest, path, len) in candidates {
        if marked.keep.contains(&digest) {
            continue;
        }
        if let Some(sweep) = sweep.as_mut() {
            sweep.keep_alive()?;
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("delete", &path, e)),
            }
        }
        report.deleted_bytes += len;
        report.deleted.push(digest.to_string());
        deleted.insert(digest);
    }
    // Still inside the sweep: a write waiting for it must find the links gone too.
    if sweep.is_some() && !deleted.is_empty() {
        unlink(root, &deleted)?;
    }
    drop(sweep);
    let leftovers = remove_leftovers(root, options, &mut report)?;
    report.reclaimed_bytes = report.deleted_bytes + leftovers;
    Ok(report)
}

/// Removes upload sessions idle for longer than the upload expiry (an upload's `data` is written by
/// every chunk; a session without it, left by a crash, counts from its directory) and staging files
/// older than the grace period. Returns the bytes freed.
fn remove_leftovers(root: &Path, options: &GcOptions, report: &mut GcReport) -> Result<u64> {
    let mut freed = 0;
    for dir in entries(&root.join("uploads"))? {
        let data = std::fs::metadata(dir.join("data"));
        let meta = match &data {
            Ok(m) => m.clone(),
            Err(_) => match std::fs::metadata(&dir) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("stat", &dir, e)),
            },
        };
        if idle(&meta) <= options.upload_expiry {
            continue;
        }
        if !options.dry_run {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("remove upload", &dir, e)),
            }
        }
        report.uploads_removed += 1;
        freed += data.map(|m| m.len()).unwrap_or(0);
    }
    let min_age = options.grace.max(MIN_TEMP_AGE);
    for file in entries(&root.join("tmp"))? {
        let meta = match std::fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("stat", &file, e)),
        };
        if idle(&meta) <= min_age || !meta.is_file() {
            continue;
        }
        if !options.dry_run {
            match std::fs::remove_file(&file) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io("remove", &file, e)),
            }
        }
        report.temp_files_removed += 1;
        freed += meta.len();
    }
    Ok(freed)
}

/// Removes the repositories' links to deleted blobs.
fn unlink(root: &Path, deleted: &HashSet<Digest>) -> Result<()> {
    for repo in repository_dirs(root)? {
        for digest in digests_under(&repo.join("_layers"))? {
            // A blob uploaded again since it was deleted keeps its links.
            if deleted.contains(&digest) && !blob_path(root, &digest).exists() {
                let link = repo.join("_layers").join(digest.algorithm().as_str()).join(digest.hex());
                if let Err(e) = std::fs::remove_file(&link)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    return Err(io("unlink", &link, e));
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
}
