//! [`Collectable`] for [`FsStorage`]: the enumerations walk the storage's directories (on a blocking
//! thread), and the filesystem's own leftovers are staging files under `tmp/`. The lease is a series of
//! generation files `gc/lease/<n>`, each created only if absent (a hard link of a complete staged file),
//! so writing generation `n + 1` is the compare-and-swap over version `n`.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, Result};

use super::collectable::{Collectable, LeaseVersion, StoredBlob, UploadSession};
use crate::local::fence;
use crate::local::fs::FsStorage;
use crate::local::mtime::idle;
use crate::local::storage::Storage;

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::internal(format!("gc: {what} {}", path.display()), e)
}

/// Runs `f` over the root on a blocking thread: directory walks must not hold up the runtime.
async fn blocking<T: Send + 'static>(root: &Path, f: impl FnOnce(&Path) -> Result<T> + Send + 'static) -> Result<T> {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || f(&root)).await.map_err(|e| Error::internal("gc: blocking task", e))?
}

/// Entries directly inside `dir` (none when it does not exist).
fn entries(dir: &Path) -> Result<Vec<PathBuf>> {
    match std::fs::read_dir(dir) {
        Ok(read) => read.map(|e| e.map(|e| e.path()).map_err(|e| io("read", dir, e))).collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io("read", dir, e)),
    }
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or_default()
}

/// Every repository directory under `repositories/` (nested names included), with or without metadata:
/// a directory holding manifests or links counts even if its `_meta.json` is gone (or was never written).
fn repository_dirs(root: &Path) -> Result<Vec<RepositoryName>> {
    let base = root.join("repositories");
    let mut out = Vec::new();
    let mut stack = vec![base.clone()];
    while let Some(dir) = stack.pop() {
        for path in entries(&dir)? {
            if path.is_dir() && !file_name(&path).starts_with('_') {
                if ["_meta.json", "_manifests", "_layers"].iter().any(|entry| path.join(entry).exists())
                    && let Some(name) = path.strip_prefix(&base).ok().and_then(|p| p.to_str())
                    && let Ok(name) = RepositoryName::parse(name)
                {
                    out.push(name);
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
        for file in entries(&alg)? {
            if let Ok(d) = Digest::parse(&format!("{}:{}", file_name(&alg), file_name(&file))) {
                out.push(d);
            }
        }
    }
    Ok(out)
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join(d.algorithm().as_str()).join(&d.hex()[..2]).join(d.hex())
}

fn repo_dir(root: &Path, repo: &RepositoryName) -> PathBuf {
    root.join("repositories").join(repo.as_str())
}

/// Removes the file at `path`: false when it was not there.
fn remove_optional(path: &Path) -> Result<bool> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io("delete", path, e)),
    }
}

/// Only names this module or the fence writes (uuids, generations) become paths.
fn plain_name(name: &str) -> Result<&str> {
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(Error::bad_input(format!("gc: {name:?} is not a record name")));
    }
    Ok(name)
}

fn lease_dir(root: &Path) -> PathBuf {
    root.join("gc").join("lease")
}

/// The newest lease generation and its path.
fn newest_lease(root: &Path) -> Result<Option<(u64, PathBuf)>> {
    Ok(entries(&lease_dir(root))?.into_iter().filter_map(|p| Some((file_name(&p).parse().ok()?, p))).max())
}

#[async_trait]
impl Collectable for FsStorage {
    async fn gc_repositories(&self) -> Result<Vec<RepositoryName>> {
        blocking(self.root(), repository_dirs).await
    }

    async fn manifest_digests(&self, repo: &RepositoryName) -> Result<Vec<Digest>> {
        let repo = repo.clone();
        blocking(self.root(), move |root| digests_under(&repo_dir(root, &repo).join("_manifests"))).await
    }

    async fn blob_links(&self, repo: &RepositoryName) -> Result<Vec<Digest>> {
        let repo = repo.clone();
        blocking(self.root(), move |root| digests_under(&repo_dir(root, &repo).join("_layers"))).await
    }

    async fn blob_content(&self, digest: &Digest) -> Result<Option<Bytes>> {
        let path = blob_path(self.root(), digest);
        match tokio::fs::read(&path).await {
            Ok(bytes) => Ok(Some(bytes.into())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("read", &path, e)),
        }
    }

    async fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let path = blob_path(self.root(), digest);
        tokio::fs::try_exists(&path).await.map_err(|e| io("stat", &path, e))
    }

    async fn blobs(&self) -> Result<Vec<StoredBlob>> {
        blocking(self.root(), |root| {
            let mut blobs = Vec::new();
            for alg in entries(&root.join("blobs"))? {
                for prefix in entries(&alg)? {
                    for file in entries(&prefix)? {
                        let Ok(digest) = Digest::parse(&format!("{}:{}", file_name(&alg), file_name(&file))) else {
                            continue;
                        };
                        let meta = match std::fs::metadata(&file) {
                            Ok(m) => m,
                            Err(e) if e.kind() == ErrorKind::NotFound => continue,
                            Err(e) => return Err(io("stat", &file, e)),
                        };
                        blobs.push(StoredBlob { digest, size: meta.len(), idle: idle(&meta) });
                    }
                }
            }
            Ok(blobs)
        })
        .await
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        Storage::delete_blob(self, repo, digest).await
    }

    async fn remove_blob(&self, digest: &Digest) -> Result<bool> {
        let path = blob_path(self.root(), digest);
        blocking(self.root(), move |_| remove_optional(&path)).await
    }

    /// An upload's `data` is written by every chunk; a session without it, left by a crash, counts from
    /// its directory.
    async fn uploads(&self) -> Result<Vec<UploadSession>> {
        blocking(self.root(), |root| {
            let mut out = Vec::new();
            for dir in entries(&root.join("uploads"))? {
                let data = std::fs::metadata(dir.join("data"));
                let meta = match &data {
                    Ok(m) => m.clone(),
                    Err(_) => match std::fs::metadata(&dir) {
                        Ok(m) => m,
                        Err(e) if e.kind() == ErrorKind::NotFound => continue,
                        Err(e) => return Err(io("stat", &dir, e)),
                    },
                };
                let size = data.map(|m| m.len()).unwrap_or(0);
                out.push(UploadSession { id: file_name(&dir).to_owned(), size, idle: idle(&meta) });
            }
            Ok(out)
        })
        .await
    }

    async fn remove_upload(&self, id: &str) -> Result<()> {
        let dir = self.root().join("uploads").join(plain_name(id)?);
        blocking(self.root(), move |_| match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("remove upload", &dir, e)),
        })
        .await
    }

    async fn remove_strays(&self, min_age: Duration, dry_run: bool) -> Result<(usize, u64)> {
        blocking(self.root(), move |root| {
            let (mut count, mut bytes) = (0, 0);
            for file in entries(&root.join("tmp"))? {
                let meta = match std::fs::metadata(&file) {
                    Ok(m) => m,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("stat", &file, e)),
                };
                if idle(&meta) <= min_age || !meta.is_file() {
                    continue;
                }
                if !dry_run && !remove_optional(&file)? {
                    continue;
                }
                count += 1;
                bytes += meta.len();
            }
            Ok((count, bytes))
        })
        .await
    }

    async fn record_sweep(&self) -> Result<String> {
        blocking(self.root(), fence::record_sweep).await
    }

    async fn refresh_sweep(&self, name: &str) -> Result<()> {
        let name = plain_name(name)?.to_owned();
        blocking(self.root(), move |root| fence::refresh_sweep(root, &name)).await
    }

    async fn remove_sweep(&self, name: &str) -> Result<()> {
        let path = fence::sweeps_dir(self.root()).join(plain_name(name)?);
        blocking(self.root(), move |_| remove_optional(&path).map(drop)).await
    }

    async fn remove_dead_sweeps(&self) -> Result<()> {
        blocking(self.root(), |root| {
            fence::remove_dead_sweeps(root);
            Ok(())
        })
        .await
    }

    async fn intended(&self) -> Result<Vec<Digest>> {
        blocking(self.root(), fence::intended).await
    }

    async fn read_lease(&self) -> Result<Option<(Bytes, LeaseVersion)>> {
        blocking(self.root(), |root| {
            // A newer generation may replace the one listed (and delete it) between the listing and the read.
            for _ in 0..16 {
                let Some((generation, path)) = newest_lease(root)? else { return Ok(None) };
                match std::fs::read(&path) {
                    Ok(bytes) => return Ok(Some((bytes.into(), LeaseVersion(generation.to_string())))),
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io("read", &path, e)),
                }
            }
            Err(Error::TooManyRequests {
                message: "gc: the lease kept changing while it was read; retry".into(),
                retry_after: Some(Duration::from_secs(1)),
            })
        })
        .await
    }

    async fn write_lease(&self, bytes: Bytes, over: Option<&LeaseVersion>) -> Result<Option<LeaseVersion>> {
        let generation = match over {
            None => 1,
            Some(v) => v.0.parse::<u64>().map_err(|e| Error::internal("gc: lease version", e))? + 1,
        };
        blocking(self.root(), move |root| {
            let dir = lease_dir(root);
            std::fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
            let staged = root.join("tmp").join(uuid::Uuid::new_v4().simple().to_string());
            std::fs::write(&staged, &bytes).map_err(|e| io("write", &staged, e))?;
            let target = dir.join(format!("{generation:020}"));
            // A hard link is created only if the name is free, and carries the complete file.
            let linked = std::fs::hard_link(&staged, &target);
            let _ = std::fs::remove_file(&staged);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::AlreadyExists => return Ok(None),
                Err(e) => return Err(io("create", &target, e)),
            }
            // Older generations are history; readers take the newest.
            for path in entries(&dir)? {
                if file_name(&path).parse::<u64>().is_ok_and(|g| g < generation) {
                    let _ = std::fs::remove_file(&path);
                }
            }
            Ok(Some(LeaseVersion(generation.to_string())))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_never_leave_their_directory() {
        for hostile in ["", "..", "../uploads", "a/b", "a".repeat(65).as_str(), "abc\\def", "ab\0"] {
            assert!(plain_name(hostile).is_err(), "{hostile:?}");
        }
        assert!(plain_name("0123abcd-ef").is_ok());
    }
}
