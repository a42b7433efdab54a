//! [`ConnectionStore`]: registry connections in `DATA_DIR/connections.db` (SQLite), secrets encrypted.
//!
//! The server and the `regbridge registry` command may open the same database at once: SQLite's locking
//! (WAL journal, a busy timeout) keeps them consistent, the unique indexes on `name` and `registry` are
//! what decides conflicts, and routes notice changes by the `updated_at` of the row they use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use regbridge::{Error, Result, Secret};
use rusqlite::{OptionalExtension, Row, params};

use super::crypto::Cipher;
use super::{Connection, ConnectionError, ConnectionInput};

/// The database file, in the data directory.
pub const DB_FILE: &str = "connections.db";

/// What the key check in `meta` decrypts to: opening with another key fails at once, not at first use.
const KEY_CHECK: &str = "regbridge connections key check";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    registry TEXT NOT NULL,
    username TEXT,
    secret BLOB,
    active INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS connections_name ON connections (name);
CREATE UNIQUE INDEX IF NOT EXISTS connections_registry ON connections (registry);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL);
";

const COLUMNS: &str = "id, name, registry, username, secret IS NOT NULL, active, created_at, updated_at";

/// The registry connections of a data directory. Cloning is cheap and clones share the database handle.
#[derive(Clone)]
pub struct ConnectionStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<rusqlite::Connection>,
    cipher: Cipher,
    path: PathBuf,
}

impl fmt::Debug for ConnectionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionStore").field("path", &self.inner.path).field("cipher", &self.inner.cipher).finish()
    }
}

fn db_error(what: &str) -> impl FnOnce(rusqlite::Error) -> Error + '_ {
    move |e| Error::internal(format!("registry connections: {what}"), e)
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn connection(row: &Row<'_>) -> rusqlite::Result<Connection> {
    Ok(Connection {
        id: row.get(0)?,
        name: row.get(1)?,
        registry: row.get(2)?,
        username: row.get(3)?,
        has_secret: row.get(4)?,
        active: row.get(5)?,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

impl ConnectionStore {
    /// Opens (creating on first use) `DATA_DIR/connections.db`, with secrets under the configured key or
    /// else `DATA_DIR/connections.key`. Fails when the database's secrets were stored under another key.
    pub fn open(data_dir: &Path, key: Option<&Secret>) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::internal(format!("create data directory {}", data_dir.display()), e))?;
        let cipher = Cipher::load(data_dir, key)?;
        let path = data_dir.join(DB_FILE);
        create_private(&path)?;
        let db = rusqlite::Connection::open(&path).map_err(db_error("open the database"))?;
        db.busy_timeout(Duration::from_secs(10)).map_err(db_error("set the busy timeout"))?;
        // WAL lets routes read while the CLI writes in another process.
        db.pragma_update(None, "journal_mode", "WAL").map_err(db_error("enable WAL"))?;
        db.execute_batch(SCHEMA).map_err(db_error("create the tables"))?;
        check_key(&db, &cipher, &path)?;
        Ok(Self { inner: Arc::new(Inner { db: Mutex::new(db), cipher, path }) })
    }

    /// Runs `f` with this store on a blocking thread, for async callers.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&ConnectionStore) -> T + Send + 'static) -> T {
        on_blocking_thread(self, f).await
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.inner.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a connection from `input`. Invalid fields and a name or registry another connection has are
    /// errors naming what to fix.
    pub fn create(&self, input: &ConnectionInput) -> Result<Connection, ConnectionError> {
        let fields = input.check(None)?;
        let id = uuid::Uuid::new_v4().to_string();
        let secret = fields.secret.as_ref().map(|s| self.inner.cipher.encrypt(s, &id)).transpose()?;
        let at = now();
        let db = self.db();
        let inserted = db.execute(
            "INSERT INTO connections (id, name, registry, username, secret, active, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![id, fields.name, fields.registry, fields.username, secret, fields.active, at],
        );
        match inserted {
            Ok(_) => Ok(by_id(&db, &id)?.ok_or_else(|| ConnectionError::NotFound(format!("with id {id}")))?),
            Err(e) if is_unique_violation(&e) => Err(conflict(&db, &fields.name, &fields.registry, &id)?),
            Err(e) => Err(db_error("insert")(e).into()),
        }
    }

    /// Every connection, by name.
    pub fn list(&self) -> Result<Vec<Connection>, ConnectionError> {
        let db = self.db();
        let mut statement =
            db.prepare(&format!("SELECT {COLUMNS} FROM connections ORDER BY name")).map_err(db_error("list"))?;
        let rows = statement.query_map([], connection).map_err(db_error("list"))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("list"))?)
    }

    /// The connection with `id`.
    pub fn get(&self, id: &str) -> Result<Connection, ConnectionError> {
        by_id(&self.db(), id)?.ok_or_else(|| ConnectionError::NotFound(format!("has the id {id:?}")))
    }

    /// The connection named `name`, if any.
    pub fn find_by_name(&self, name: &str) -> Result<Option<Connection>, ConnectionError> {
        let db = self.db();
        let found = db
            .query_row(&format!("SELECT {COLUMNS} FROM connections WHERE name = ?1"), [name], connection)
            .optional()
            .map_err(db_error("read"))?;
        Ok(found)
    }

    /// The connection named `name`, or `NotFound`.
    pub fn get_by_name(&self, name: &str) -> Result<Connection, ConnectionError> {
        self.find_by_name(name)?.ok_or_else(|| ConnectionError::NotFound(format!("is named {name:?}")))
    }

    /// Updates the connection with `id`: fields of `input` replace the stored ones, absent ones stay.
    pub fn update(&self, id: &str, input: &ConnectionInput) -> Result<Connection, ConnectionError> {
        let mut db = self.db();
        // IMMEDIATE: the row read and the row written are the same one, whoever else writes meanwhile.
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(db_error("begin an update"))?;
        let existing = by_id(&tx, id)?.ok_or_else(|| ConnectionError::NotFound(format!("has the id {id:?}")))?;
        let fields = input.check(Some(&existing))?;
        let secret = fields.secret.as_ref().map(|s| self.inner.cipher.encrypt(s, id)).transpose()?;
        let updated = tx.execute(
            "UPDATE connections SET name = ?2, registry = ?3, username = ?4, secret = COALESCE(?5, secret), \
             active = ?6, updated_at = ?7 WHERE id = ?1",
            params![id, fields.name, fields.registry, fields.username, secret, fields.active, now()],
        );
        match updated {
            Ok(_) => {
                let connection = by_id(&tx, id)?.ok_or_else(|| ConnectionError::NotFound(format!("has id {id}")))?;
                tx.commit().map_err(db_error("commit an update"))?;
                Ok(connection)
            }
            Err(e) if is_unique_violation(&e) => Err(conflict(&tx, &fields.name, &fields.registry, id)?),
            Err(e) => Err(db_error("update")(e).into()),
        }
    }

    /// Deletes the connection with `id`.
    pub fn delete(&self, id: &str) -> Result<(), ConnectionError> {
        let deleted = self.db().execute("DELETE FROM connections WHERE id = ?1", [id]).map_err(db_error("delete"))?;
        if deleted == 0 {
            return Err(ConnectionError::NotFound(format!("has the id {id:?}")));
        }
        Ok(())
    }

    /// The user name and decrypted secret of the connection with `id`; `None` for an anonymous one.
    pub fn credentials(&self, id: &str) -> Result<Option<(String, Secret)>, ConnectionError> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = self
            .db()
            .query_row("SELECT username, secret FROM connections WHERE id = ?1", [id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(db_error("read"))?;
        match row {
            None => Err(ConnectionError::NotFound(format!("has the id {id:?}"))),
            Some((Some(user), Some(sealed))) => Ok(Some((user, self.inner.cipher.decrypt(&sealed, id)?))),
            Some(_) => Ok(None),
        }
    }
}

fn by_id(db: &rusqlite::Connection, id: &str) -> Result<Option<Connection>, ConnectionError> {
    let found = db
        .query_row(&format!("SELECT {COLUMNS} FROM connections WHERE id = ?1"), [id], connection)
        .optional()
        .map_err(db_error("read"))?;
    Ok(found)
}

/// The conflict a unique-index violation stands for: another connection (not `own_id`) with the name, or
/// else with the registry.
fn conflict(db: &rusqlite::Connection, name: &str, registry: &str, own_id: &str) -> Result<ConnectionError> {
    for (field, column, value) in [("name", "name", name), ("registry", "registry", registry)] {
        let existing = db
            .query_row(
                &format!("SELECT {COLUMNS} FROM connections WHERE {column} = ?1 AND id <> ?2"),
                [value, own_id],
                connection,
            )
            .optional()
            .map_err(db_error("read"))?;
        if let Some(existing) = existing {
            return Ok(ConnectionError::Conflict { field, existing: Box::new(existing) });
        }
    }
    Err(Error::Internal { message: "registry connections: a unique index was violated by no row".into(), source: None })
}

/// Creates `path` empty with mode 0600 unless it exists, so the database (and its WAL files, which SQLite
/// creates with the database's mode) are private from the start.
pub(crate) fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop).map_err(|e| Error::internal(format!("create {}", path.display()), e))
}

/// Stores a value encrypted under the key on first use, and checks later keys decrypt it.
fn check_key(db: &rusqlite::Connection, cipher: &Cipher, path: &Path) -> Result<()> {
    let sealed = cipher.encrypt(&Secret::new(KEY_CHECK), "key-check")?;
    db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('key_check', ?1)", [sealed])
        .map_err(db_error("store the key check"))?;
    let stored: Vec<u8> = db
        .query_row("SELECT value FROM meta WHERE key = 'key_check'", [], |r| r.get(0))
        .map_err(db_error("read the key check"))?;
    match cipher.decrypt(&stored, "key-check") {
        Ok(s) if s.expose() == KEY_CHECK => Ok(()),
        _ => Err(Error::bad_input(format!(
            "{} was encrypted with another key than the one from {}: configure the key it was created with",
            path.display(),
            cipher.source()
        ))),
    }
}

/// Runs `f` with a clone of `store` on a blocking thread (SQLite and argon2 block), for the async callers of
/// the stores of the data directory; a panic in `f` is the caller's panic.
pub(crate) async fn on_blocking_thread<S: Clone + Send + 'static, T: Send + 'static>(
    store: &S,
    f: impl FnOnce(&S) -> T + Send + 'static,
) -> T {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, registry: &str, password: &str) -> ConnectionInput {
        ConnectionInput {
            name: Some(name.into()),
            registry: Some(registry.into()),
            username: Some("robot".into()),
            password: Some(Secret::new(password)),
            ..Default::default()
        }
    }

    #[test]
    fn create_list_update_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConnectionStore::open(dir.path(), None).unwrap();
        let hub = store.create(&input("hub", "registry-1.docker.io", "hub-Secret-1")).unwrap();
        assert!(hub.has_secret && hub.active);
        let ghcr = store.create(&input("ghcr", "GHCR.io", "ghcr-Secret-2")).unwrap();
        assert_eq!(ghcr.registry, "ghcr.io");
        let names: Vec<_> = store.list().unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["ghcr", "hub"]);
        assert_eq!(store.credentials(&hub.id).unwrap().unwrap().1.expose(), "hub-Secret-1");

        let patch = ConnectionInput { active: Some(false), ..Default::default() };
        let updated = store.update(&hub.id, &patch).unwrap();
        assert!(!updated.active);
        assert!(updated.updated_at > hub.updated_at, "{} > {}", updated.updated_at, hub.updated_at);
        assert_eq!(store.credentials(&hub.id).unwrap().unwrap().1.expose(), "hub-Secret-1", "secret kept");
        let patch = ConnectionInput { token: Some(Secret::new("new-token")), ..Default::default() };
        store.update(&hub.id, &patch).unwrap();
        assert_eq!(store.credentials(&hub.id).unwrap().unwrap().1.expose(), "new-token");

        store.delete(&hub.id).unwrap();
        assert!(matches!(store.get(&hub.id), Err(ConnectionError::NotFound(_))));
        assert!(matches!(store.delete(&hub.id), Err(ConnectionError::NotFound(_))));
        assert!(matches!(store.update(&hub.id, &patch), Err(ConnectionError::NotFound(_))));
    }

    #[test]
    fn names_and_registries_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConnectionStore::open(dir.path(), None).unwrap();
        let hub = store.create(&input("hub", "docker.io", "a")).unwrap();
        let other = store.create(&input("other", "quay.io", "b")).unwrap();
        let Err(ConnectionError::Conflict { field, existing }) = store.create(&input("hub", "ghcr.io", "c")) else {
            panic!("conflict")
        };
        assert_eq!((field, existing.id.as_str()), ("name", hub.id.as_str()));
        let err = store.create(&input("hub2", "DOCKER.io", "c")).unwrap_err();
        assert!(err.to_string().contains("\"hub\""), "{err}");
        let rename = ConnectionInput { name: Some("hub".into()), ..Default::default() };
        let Err(ConnectionError::Conflict { existing, .. }) = store.update(&other.id, &rename) else { panic!() };
        assert_eq!(existing.name, "hub");
        store.update(&hub.id, &rename).unwrap();
    }

    #[test]
    fn secrets_are_encrypted_on_disk_and_need_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let password = "plain-Text-Password-42";
        {
            let store = ConnectionStore::open(dir.path(), None).unwrap();
            store.create(&input("hub", "docker.io", password)).unwrap();
            assert!(!format!("{store:?}").contains(password));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(DB_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        for file in ["connections.db", "connections.db-wal"] {
            if let Ok(bytes) = std::fs::read(dir.path().join(file)) {
                assert!(!bytes.windows(password.len()).any(|w| w == password.as_bytes()), "{file}");
            }
        }
        std::fs::remove_file(dir.path().join(super::super::crypto::KEY_FILE)).unwrap();
        let err = ConnectionStore::open(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("another key"), "{err}");
    }
}
