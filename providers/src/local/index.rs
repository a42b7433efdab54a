//! The listing index of [`super::fs::FsStorage`]: repository names and tags in SQLite
//! (`index.sqlite` in the storage directory), so a catalog or tag page is one indexed range read
//! (O(page) plus a B-tree seek) instead of a walk of every directory.
//!
//! The directories stay the source of truth; the index only says where to look, and is kept a superset
//! of them:
//!
//! - Every write that changes what is listed (a repository created or deleted, a tag put or deleted)
//!   holds the index's write lock (`index.lock`, an exclusive `flock`, so other processes on the same
//!   directory — `regbridge gc`, the CLI, a second server — are serialised with it) from before the index
//!   changes until the directories have changed.
//! - An entry is added to the index (committed) *before* its file is written, and removed *after* its
//!   file is: a process killed in between leaves an entry without a file, never a file without an entry.
//! - A page checks each entry it lists against its file and skips those without one; it removes them from
//!   the index under the write lock after checking again (then no write is half done), so such leftovers
//!   cost one look each, once.
//!
//! The index is rebuilt from the directories at open when it is missing, from another schema, or from a
//! rebuild that did not finish (the `complete` mark is written in the rebuild's own transaction). Files
//! changed by anything but this storage (a restored backup, a hand edit) are not seen until the index is
//! removed (it is rebuilt at the next open) or [`Index::rebuild`] runs. SQLite runs in WAL mode
//! (`synchronous = NORMAL`: a committed entry survives a killed process; after a power loss, which the
//! directories' own writes are not synced against either, remove the index) with a busy timeout, so
//! readers in other processes never wait for a writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regbridge::oci::{RepositoryName, Tag};
use regbridge::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::storage::ListPage;

/// The index file, in the storage directory.
pub const INDEX_FILE: &str = "index.sqlite";
/// The lock file writers hold (`flock`), in the storage directory.
const LOCK_FILE: &str = "index.lock";
/// Bumped when the tables change: an index of another version is rebuilt.
const SCHEMA_VERSION: &str = "1";
/// How long SQLite waits for another connection's write before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS repositories (name TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS tags (repo TEXT NOT NULL, tag TEXT NOT NULL, PRIMARY KEY (repo, tag)) WITHOUT ROWID;
";

fn db_err(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::internal(format!("storage index: {what}"), e)
}

/// What the directories hold, as the index records it.
pub(super) struct Contents {
    /// Every repository name.
    pub repositories: Vec<String>,
    /// Every (repository, tag) pair, of repositories in `repositories`.
    pub tags: Vec<(String, String)>,
}

/// The listing index of one storage directory.
pub(super) struct Index {
    root: PathBuf,
    db: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index").field("file", &self.root.join(INDEX_FILE)).finish()
    }
}

/// The index's write lock, held while a write changes the index and the directories; released on drop
/// (and by the kernel when the process dies).
pub(super) struct WriteLock {
    _file: std::fs::File,
}

/// Which listing a page reads.
#[derive(Clone, Copy)]
enum Listing<'a> {
    Repositories,
    Tags(&'a RepositoryName),
}

impl Index {
    /// Opens the index of `root`, rebuilding it from `walk` (the directories' contents) when it is missing,
    /// of another version, or from an unfinished rebuild.
    pub fn open(root: &Path, walk: impl Fn() -> Result<Contents>) -> Result<Self> {
        let db = Connection::open(root.join(INDEX_FILE)).map_err(db_err("open"))?;
        db.busy_timeout(BUSY_TIMEOUT).map_err(db_err("set the busy timeout"))?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(db_err("enable WAL"))?;
        db.pragma_update(None, "synchronous", "NORMAL").map_err(db_err("set synchronous"))?;
        db.execute_batch(SCHEMA).map_err(db_err("create the tables"))?;
        let index = Self { root: root.to_owned(), db: Arc::new(Mutex::new(db)) };
        if !index.is_complete()? {
            let _lock = take_lock(root)?;
            // Another process may have rebuilt it while this one waited for the lock.
            if !index.is_complete()? {
                replace(&index.db, walk()?)?;
            }
        }
        Ok(index)
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_complete(&self) -> Result<bool> {
        let version: Option<String> = self
            .conn()
            .query_row("SELECT value FROM meta WHERE key = 'complete'", [], |r| r.get(0))
            .optional()
            .map_err(db_err("read the version"))?;
        Ok(version.as_deref() == Some(SCHEMA_VERSION))
    }

    /// Rebuilds the index from the directories now (after they were changed by something else than this
    /// storage), under the write lock.
    pub async fn rebuild(&self, walk: impl FnOnce() -> Result<Contents> + Send + 'static) -> Result<()> {
        let _lock = self.lock().await?;
        let contents =
            tokio::task::spawn_blocking(walk).await.map_err(|e| Error::internal("walk the storage", e))??;
        self.run(move |db| replace(&db, contents)).await
    }

    /// Takes the write lock (waiting for writers in this and other processes).
    pub async fn lock(&self) -> Result<WriteLock> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || take_lock(&root))
            .await
            .map_err(|e| Error::internal("storage index: lock", e))?
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(Arc<Mutex<Connection>>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(db)).await.map_err(|e| Error::internal("storage index", e))?
    }

    /// Runs one statement with `args` (under the write lock, which the caller holds).
    async fn execute(&self, sql: &'static str, args: Vec<String>) -> Result<()> {
        self.run(move |db| {
            let db = db.lock().unwrap_or_else(|e| e.into_inner());
            db.execute(sql, rusqlite::params_from_iter(args.iter())).map_err(db_err("write"))?;
            Ok(())
        })
        .await
    }

    /// Records repository `name` (before its metadata is written).
    pub async fn add_repository(&self, _lock: &WriteLock, name: &RepositoryName) -> Result<()> {
        self.execute("INSERT OR IGNORE INTO repositories (name) VALUES (?1)", vec![name.to_string()]).await
    }

    /// Forgets repository `name` and its tags (after its directories were removed); nested repositories
    /// stay.
    pub async fn remove_repository(&self, _lock: &WriteLock, name: &RepositoryName) -> Result<()> {
        self.execute("DELETE FROM tags WHERE repo = ?1", vec![name.to_string()]).await?;
        self.execute("DELETE FROM repositories WHERE name = ?1", vec![name.to_string()]).await
    }

    /// Records tag `tag` of `repo` (before its file is written).
    pub async fn add_tag(&self, _lock: &WriteLock, repo: &RepositoryName, tag: &Tag) -> Result<()> {
        self.execute("INSERT OR IGNORE INTO tags (repo, tag) VALUES (?1, ?2)", vec![repo.to_string(), tag.to_string()])
            .await
    }

    /// Forgets tag `tag` of `repo` (after its file was removed).
    pub async fn remove_tag(&self, _lock: &WriteLock, repo: &RepositoryName, tag: &str) -> Result<()> {
        self.execute("DELETE FROM tags WHERE repo = ?1 AND tag = ?2", vec![repo.to_string(), tag.to_owned()]).await
    }

    /// Up to `n` indexed names of `listing` after `after`, sorted (byte order, as Rust sorts strings).
    async fn candidates(&self, listing: Listing<'_>, after: Option<&str>, n: usize) -> Result<Vec<String>> {
        let (repo, after) = (listing_repo(listing), after.map(str::to_owned));
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        self.run(move |db| {
            let db = db.lock().unwrap_or_else(|e| e.into_inner());
            let query = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<Vec<String>> {
                let mut stmt = db.prepare_cached(sql)?;
                let rows = stmt.query_map(args, |r| r.get(0))?;
                rows.collect()
            };
            // An absent `after` is the empty string: every name is greater.
            let after = after.unwrap_or_default();
            match &repo {
                None => {
                    query("SELECT name FROM repositories WHERE name > ?1 ORDER BY name LIMIT ?2", params![after, n])
                }
                Some(repo) => query(
                    "SELECT tag FROM tags WHERE repo = ?1 AND tag > ?2 ORDER BY tag LIMIT ?3",
                    params![repo, after, n],
                ),
            }
            .map_err(db_err("read a page"))
        })
        .await
    }

    /// Whether `name` of `listing` is really there (its file exists); names that are not valid never are.
    fn present(&self, listing: Listing<'_>, name: &str) -> bool {
        let repositories = self.root.join("repositories");
        let file = match listing {
            Listing::Repositories => match RepositoryName::parse(name) {
                Ok(name) => repositories.join(name.as_str()).join("_meta.json"),
                Err(_) => return false,
            },
            Listing::Tags(repo) => match Tag::parse(name) {
                Ok(tag) => repositories.join(repo.as_str()).join("_tags").join(tag.as_str()),
                Err(_) => return false,
            },
        };
        file.is_file()
    }

    /// Repository names after `after`, at most `limit`.
    pub async fn repositories_page(&self, after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.page(Listing::Repositories, after, limit).await
    }

    /// Tags of `repo` after `after`, at most `limit` (the caller checked that `repo` exists).
    pub async fn tags_page(&self, repo: &RepositoryName, after: Option<&str>, limit: usize) -> Result<ListPage> {
        self.page(Listing::Tags(repo), after, limit).await
    }

    /// A page of `listing`: indexed names checked against their files, read on past entries without one
    /// (left by a killed writer) until the page is full or the index ends, those entries then removed.
    async fn page(&self, listing: Listing<'_>, after: Option<&str>, limit: usize) -> Result<ListPage> {
        // One more than the page, to know whether more follow.
        let want = limit.saturating_add(1);
        let mut names = Vec::new();
        let mut absent = Vec::new();
        let mut cursor = after.map(str::to_owned);
        while names.len() < want {
            let batch = self.candidates(listing, cursor.as_deref(), want - names.len()).await?;
            let exhausted = batch.len() < want - names.len();
            cursor = batch.last().cloned().or(cursor);
            for name in batch {
                if self.present(listing, &name) { names.push(name) } else { absent.push(name) }
            }
            if exhausted {
                break;
            }
        }
        if !absent.is_empty() {
            self.remove_absent(listing, absent).await?;
        }
        let more = names.len() > limit;
        names.truncate(limit);
        Ok(ListPage { names, more })
    }

    /// Removes entries found without a file, after checking again under the write lock: a write holding
    /// the lock may have added the entry and not yet its file.
    async fn remove_absent(&self, listing: Listing<'_>, absent: Vec<String>) -> Result<()> {
        let _lock = self.lock().await?;
        let gone: Vec<String> = absent.into_iter().filter(|name| !self.present(listing, name)).collect();
        tracing::debug!(entries = gone.len(), "storage index: removing entries without a file");
        let repo = listing_repo(listing);
        self.run(move |db| {
            let db = db.lock().unwrap_or_else(|e| e.into_inner());
            for name in &gone {
                match &repo {
                    None => db.execute("DELETE FROM repositories WHERE name = ?1", [name]),
                    Some(repo) => db.execute("DELETE FROM tags WHERE repo = ?1 AND tag = ?2", [repo, name]),
                }
                .map_err(db_err("remove an entry"))?;
            }
            Ok(())
        })
        .await
    }
}

/// Replaces the whole index with `contents`, in one transaction that also marks it complete.
/// The caller holds the write lock, so no write is half done in the directories it was read from.
fn replace(db: &Mutex<Connection>, contents: Contents) -> Result<()> {
    let mut db = db.lock().unwrap_or_else(|e| e.into_inner());
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(db_err("rebuild"))?;
    tx.execute_batch("DELETE FROM meta; DELETE FROM repositories; DELETE FROM tags;")
        .map_err(db_err("clear the index"))?;
    {
        let mut repo =
            tx.prepare("INSERT OR IGNORE INTO repositories (name) VALUES (?1)").map_err(db_err("rebuild"))?;
        for name in &contents.repositories {
            repo.execute([name]).map_err(db_err("rebuild"))?;
        }
        let mut tag =
            tx.prepare("INSERT OR IGNORE INTO tags (repo, tag) VALUES (?1, ?2)").map_err(db_err("rebuild"))?;
        for (name, t) in &contents.tags {
            tag.execute([name, t]).map_err(db_err("rebuild"))?;
        }
    }
    tx.execute("INSERT INTO meta (key, value) VALUES ('complete', ?1)", [SCHEMA_VERSION])
        .map_err(db_err("mark the index complete"))?;
    tx.commit().map_err(db_err("commit the rebuild"))
}

fn take_lock(root: &Path) -> Result<WriteLock> {
    let path = root.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::internal(format!("storage index: open {}", path.display()), e))?;
    file.lock().map_err(|e| Error::internal("storage index: take the write lock", e))?;
    Ok(WriteLock { _file: file })
}

fn listing_repo(listing: Listing<'_>) -> Option<String> {
    match listing {
        Listing::Repositories => None,
        Listing::Tags(repo) => Some(repo.to_string()),
    }
}
