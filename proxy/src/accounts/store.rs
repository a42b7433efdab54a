//! [`AccountStore`]: users and robot accounts in `DATA_DIR/accounts.db` (SQLite), next to the registry
//! connections' `connections.db` and opened the same way (WAL, a busy timeout, mode 0600), so the server
//! and the `regbridge users`/`robots` commands may use it at once. Every operation the management API and
//! the command line offer is a method here; both call the same ones.
//!
//! Only argon2 hashes are stored. A generated password or robot secret is returned once, by the call that
//! made it. The server reads an account on every request that uses it, so a deleted, changed or rotated
//! account takes effect at once, also when the command line changed it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use regbridge::{Error, Result, Secret};
use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};

use super::{Kind, Principal, ROBOT_PREFIX, Role, Rule};
use crate::users::{hash_password, random_secret};

/// The database file, in the data directory.
pub const DB_FILE: &str = "accounts.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    name TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    role TEXT NOT NULL,
    rules TEXT NOT NULL,
    hash TEXT NOT NULL,
    expires_at TEXT,
    secret_updated_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

const COLUMNS: &str = "name, kind, role, rules, expires_at, secret_updated_at, created_at, updated_at";

/// An account as listings show it: never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// The user name, or `robot$NAME`.
    pub name: String,
    /// `user` or `robot`.
    pub kind: Kind,
    /// `admin` or `member` (robots: always `member`).
    pub role: Role,
    /// What a member or robot may do.
    pub rules: Vec<Rule>,
    /// When a robot stops working (RFC 3339); absent when it never does, and for users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// When the password or secret was last set (session tokens issued before a robot's rotation are refused).
    pub secret_updated_at: DateTime<Utc>,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Account {
    /// The principal this account authenticates as.
    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            kind: self.kind,
            role: self.role,
            rules: self.rules.clone(),
            expires_at: self.expires_at,
        }
    }
}

/// `POST /admin/v1/users`, `regbridge users add`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserInput {
    /// Lower-case letters, digits, `.`, `_`, `-`; at most 64.
    pub name: String,
    /// `admin` or `member` (the default).
    pub role: Option<Role>,
    /// A member's rules.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// The password; omit it to have one generated and shown once.
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
}

/// `PATCH /admin/v1/users/{name}`, `regbridge users update`: what is given changes, the rest stays.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new role.
    pub role: Option<Role>,
    /// New rules (replacing the old ones).
    pub rules: Option<Vec<Rule>>,
    /// A new password.
    #[schema(value_type = Option<String>)]
    pub password: Option<Secret>,
}

/// `POST /admin/v1/robots`, `regbridge robots add`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RobotInput {
    /// `NAME` or `robot$NAME`.
    pub name: String,
    /// What the robot may do.
    pub rules: Vec<Rule>,
    /// Required: a duration from now (`30d`, `12h`), an RFC 3339 time, or `never`.
    pub expires: String,
}

/// Why an account operation failed.
#[derive(Debug)]
pub enum AccountError {
    /// Bad fields: `(field, what to fix)` (HTTP 400, exit 2).
    Invalid(Vec<(&'static str, String)>),
    /// The name is taken (HTTP 409, exit 1).
    Conflict(String),
    /// No such account (HTTP 404, exit 3).
    NotFound(String),
    /// The database or hashing failed (HTTP 500, exit 1).
    Other(Error),
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::Invalid(fields) => {
                let messages: Vec<&str> = fields.iter().map(|(_, m)| m.as_str()).collect();
                f.write_str(&messages.join("; "))
            }
            AccountError::Conflict(m) | AccountError::NotFound(m) => f.write_str(m),
            AccountError::Other(e) => write!(f, "{e}"),
        }
    }
}

impl From<Error> for AccountError {
    fn from(e: Error) -> Self {
        AccountError::Other(e)
    }
}

fn invalid(field: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Invalid(vec![(field, message.into())])
}

fn db_error(what: &str) -> impl FnOnce(rusqlite::Error) -> AccountError + '_ {
    move |e| AccountError::Other(Error::internal(format!("accounts: {what}"), e))
}

fn kind_str(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user",
        Kind::Robot => "robot",
    }
}

fn kind_noun(kind: Kind) -> &'static str {
    match kind {
        Kind::User => "user",
        Kind::Robot => "robot account",
    }
}

fn parse_time(text: String) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

fn account(row: &Row<'_>) -> rusqlite::Result<Account> {
    let bad = |i, e: Box<dyn std::error::Error + Send + Sync>| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e)
    };
    let kind = match row.get::<_, String>(1)?.as_str() {
        "robot" => Kind::Robot,
        _ => Kind::User,
    };
    let role = Role::parse(&row.get::<_, String>(2)?).map_err(|e| bad(2, e.into()))?;
    let rules = serde_json::from_str(&row.get::<_, String>(3)?).map_err(|e| bad(3, Box::new(e)))?;
    Ok(Account {
        name: row.get(0)?,
        kind,
        role,
        rules,
        expires_at: row.get::<_, Option<String>>(4)?.map(parse_time).transpose()?,
        secret_updated_at: parse_time(row.get(5)?)?,
        created_at: parse_time(row.get(6)?)?,
        updated_at: parse_time(row.get(7)?)?,
    })
}

/// Refuses names that cannot be logged in with or could be mistaken for another kind.
fn check_name(name: &str, field: &'static str) -> Result<(), AccountError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    match ok {
        true => Ok(()),
        false => Err(invalid(
            field,
            format!(
                "{name:?} is not an account name: use 1 to 64 lower-case letters, digits, '.', '_' or '-', starting \
                 with a letter or digit"
            ),
        )),
    }
}

fn check_rules(rules: &[Rule]) -> Result<(), AccountError> {
    let problems: Vec<(&'static str, String)> =
        rules.iter().filter_map(|r| r.check().err()).map(|m| ("rules", m)).collect();
    if problems.is_empty() { Ok(()) } else { Err(AccountError::Invalid(problems)) }
}

fn check_password(password: &Secret) -> Result<(), AccountError> {
    if password.expose().chars().count() < 8 {
        return Err(invalid("password", "the password is shorter than 8 characters; choose a longer one"));
    }
    Ok(())
}

/// `robot$NAME` from `NAME` or `robot$NAME`, checked.
pub fn robot_name(name: &str) -> Result<String, AccountError> {
    let bare = name.strip_prefix(ROBOT_PREFIX).unwrap_or(name);
    check_name(bare, "name")?;
    Ok(format!("{ROBOT_PREFIX}{bare}"))
}

/// A robot's expiry from `never`, a duration from `now` (`30d`, `12h`, `900`) or an RFC 3339 time, which
/// must be in the future.
pub fn parse_expiry(text: &str, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, AccountError> {
    let text = text.trim();
    if text == "never" {
        return Ok(None);
    }
    let at = match DateTime::parse_from_rfc3339(text) {
        Ok(at) => at.with_timezone(&Utc),
        Err(_) => {
            let duration = crate::values::parse_duration(text).map_err(|_| {
                invalid(
                    "expires",
                    format!(
                        "{text:?} is not an expiry: write a duration such as 30d or 12h, a time such as \
                             2027-01-31T00:00:00Z, or never"
                    ),
                )
            })?;
            let duration = chrono::Duration::from_std(duration)
                .map_err(|_| invalid("expires", format!("{text:?} is too far in the future; use never")))?;
            now.checked_add_signed(duration)
                .ok_or_else(|| invalid("expires", format!("{text:?} is too far in the future; use never")))?
        }
    };
    if at <= now {
        return Err(invalid("expires", format!("{text:?} is not in the future; give a later time or a duration")));
    }
    Ok(Some(at))
}

/// The accounts of a data directory. Cloning is cheap and clones share the database handle.
#[derive(Clone)]
pub struct AccountStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Mutex<rusqlite::Connection>,
    path: PathBuf,
}

impl fmt::Debug for AccountStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountStore").field("path", &self.inner.path).finish()
    }
}

impl AccountStore {
    /// Opens (creating on first use) `DATA_DIR/accounts.db`.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::internal(format!("create data directory {}", data_dir.display()), e))?;
        let path = data_dir.join(DB_FILE);
        crate::connections::store::create_private(&path)?;
        let failed = |what: &'static str| move |e| Error::internal(format!("accounts: {what}"), e);
        let db = rusqlite::Connection::open(&path).map_err(failed("open the database"))?;
        db.busy_timeout(Duration::from_secs(10)).map_err(failed("set the busy timeout"))?;
        db.pragma_update(None, "journal_mode", "WAL").map_err(failed("enable WAL"))?;
        db.execute_batch(SCHEMA).map_err(failed("create the tables"))?;
        Ok(Self { inner: Arc::new(Inner { db: Mutex::new(db), path }) })
    }

    /// Runs `f` with this store on a blocking thread (argon2 and SQLite block), for async callers.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce(&AccountStore) -> T + Send + 'static) -> T {
        crate::connections::store::on_blocking_thread(self, f).await
    }

    fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.inner.db.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every account of `kind`, by name.
    pub fn list(&self, kind: Kind) -> Result<Vec<Account>, AccountError> {
        let db = self.db();
        let mut statement = db
            .prepare(&format!("SELECT {COLUMNS} FROM accounts WHERE kind = ?1 ORDER BY name"))
            .map_err(db_error("list"))?;
        let rows = statement.query_map([kind_str(kind)], account).map_err(db_error("list"))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db_error("list"))
    }

    /// The account of `kind` named `name` (robots: `NAME` or `robot$NAME`).
    pub fn get(&self, kind: Kind, name: &str) -> Result<Account, AccountError> {
        let name = self.full_name(kind, name);
        self.find(&name)?
            .filter(|a| a.kind == kind)
            .ok_or_else(|| AccountError::NotFound(format!("there is no {} named {name:?}", kind_noun(kind))))
    }

    fn full_name(&self, kind: Kind, name: &str) -> String {
        match kind {
            Kind::Robot if !name.starts_with(ROBOT_PREFIX) => format!("{ROBOT_PREFIX}{name}"),
            _ => name.to_owned(),
        }
    }

    fn find(&self, name: &str) -> Result<Option<Account>, AccountError> {
        self.db()
            .query_row(&format!("SELECT {COLUMNS} FROM accounts WHERE name = ?1"), [name], account)
            .optional()
            .map_err(db_error("read"))
    }

    /// The account named `name` with its hash, for verifying a login; `None` when there is none.
    pub fn credentials(&self, name: &str) -> Result<Option<(Account, String)>, AccountError> {
        let db = self.db();
        let hash: Option<String> = db
            .query_row("SELECT hash FROM accounts WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(db_error("read"))?;
        drop(db);
        let Some(hash) = hash else { return Ok(None) };
        Ok(self.find(name)?.map(|a| (a, hash)))
    }

    fn insert(&self, a: &Account, hash: &str) -> Result<Account, AccountError> {
        let rules = serde_json::to_string(&a.rules).expect("rules serialise");
        let inserted = self.db().execute(
            "INSERT INTO accounts (name, kind, role, rules, hash, expires_at, secret_updated_at, created_at, \
             updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7)",
            params![a.name, kind_str(a.kind), a.role.as_str(), rules, hash, a.expires_at.map(time), time(a.created_at)],
        );
        match inserted {
            Ok(_) => self.get(a.kind, &a.name),
            Err(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::ConstraintViolation => {
                Err(AccountError::Conflict(format!(
                    "an account named {:?} already exists: choose another name, or change or delete that one",
                    a.name
                )))
            }
            Err(e) => Err(db_error("insert")(e)),
        }
    }

    /// Creates a user; without a password one is generated and returned (the only time it is shown).
    pub fn create_user(&self, input: &UserInput) -> Result<(Account, Option<Secret>), AccountError> {
        check_name(&input.name, "name")?;
        check_rules(&input.rules)?;
        if let Some(p) = &input.password {
            check_password(p)?;
        }
        let generated = input.password.is_none().then(random_secret);
        let password = input.password.as_ref().or(generated.as_ref()).expect("one is set");
        let hash = hash_password(password)?;
        let now = Utc::now();
        let account = Account {
            name: input.name.clone(),
            kind: Kind::User,
            role: input.role.unwrap_or(Role::Member),
            rules: input.rules.clone(),
            expires_at: None,
            secret_updated_at: now,
            created_at: now,
            updated_at: now,
        };
        Ok((self.insert(&account, &hash)?, generated))
    }

    /// Changes a user's role, rules or password.
    pub fn update_user(&self, name: &str, patch: &UserPatch) -> Result<Account, AccountError> {
        let mut account = self.get(Kind::User, name)?;
        if let Some(rules) = &patch.rules {
            check_rules(rules)?;
            account.rules = rules.clone();
        }
        if let Some(role) = patch.role {
            account.role = role;
        }
        let hash = match &patch.password {
            Some(p) => {
                check_password(p)?;
                Some(hash_password(p)?)
            }
            None => None,
        };
        let now = time(Utc::now());
        let rules = serde_json::to_string(&account.rules).expect("rules serialise");
        let db = self.db();
        db.execute(
            "UPDATE accounts SET role = ?2, rules = ?3, updated_at = ?4 WHERE name = ?1",
            params![account.name, account.role.as_str(), rules, now],
        )
        .map_err(db_error("update"))?;
        if let Some(hash) = hash {
            db.execute(
                "UPDATE accounts SET hash = ?2, secret_updated_at = ?3 WHERE name = ?1",
                params![account.name, hash, now],
            )
            .map_err(db_error("update"))?;
        }
        drop(db);
        self.get(Kind::User, name)
    }

    /// Creates a robot with `expires_at` (`None`: never; the caller decides whether the past is allowed, see
    /// [`parse_expiry`]). Returns its generated secret, the only time it is shown.
    pub fn create_robot(
        &self,
        name: &str,
        rules: &[Rule],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<(Account, Secret), AccountError> {
        let name = robot_name(name)?;
        check_rules(rules)?;
        let secret = random_secret();
        let hash = hash_password(&secret)?;
        let now = Utc::now();
        let account = Account {
            name,
            kind: Kind::Robot,
            role: Role::Member,
            rules: rules.to_vec(),
            expires_at,
            secret_updated_at: now,
            created_at: now,
            updated_at: now,
        };
        Ok((self.insert(&account, &hash)?, secret))
    }

    /// Creates a robot from an API or command-line input (the expiry parsed by [`parse_expiry`]).
    pub fn add_robot(&self, input: &RobotInput) -> Result<(Account, Secret), AccountError> {
        let expires_at = parse_expiry(&input.expires, Utc::now())?;
        self.create_robot(&input.name, &input.rules, expires_at)
    }

    /// Gives a robot a new secret: the old one stops working at once (verified credentials are cached under
    /// the hash, which changes), and so do session tokens issued before.
    pub fn rotate_robot(&self, name: &str) -> Result<(Account, Secret), AccountError> {
        let account = self.get(Kind::Robot, name)?;
        let secret = random_secret();
        let hash = hash_password(&secret)?;
        let now = time(Utc::now());
        self.db()
            .execute(
                "UPDATE accounts SET hash = ?2, secret_updated_at = ?3, updated_at = ?3 WHERE name = ?1",
                params![account.name, hash, now],
            )
            .map_err(db_error("rotate"))?;
        Ok((self.get(Kind::Robot, &account.name)?, secret))
    }

    /// Deletes an account of `kind`.
    pub fn delete(&self, kind: Kind, name: &str) -> Result<(), AccountError> {
        let account = self.get(kind, name)?;
        self.db().execute("DELETE FROM accounts WHERE name = ?1", [&account.name]).map_err(db_error("delete"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_robots_round_trip_without_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        let rules = vec![Rule::parse_flag("team/*=pull").unwrap()];
        let input = UserInput { name: "alice".into(), rules: rules.clone(), ..Default::default() };
        let (alice, password) = store.create_user(&input).unwrap();
        assert_eq!(alice.role, Role::Member);
        let password = password.expect("generated");
        let (_, hash) = store.credentials("alice").unwrap().unwrap();
        assert!(hash.starts_with("$argon2"));
        assert!(!hash.contains(password.expose()));
        assert!(matches!(store.create_user(&input), Err(AccountError::Conflict(_))));
        let listed = serde_json::to_string(&store.list(Kind::User).unwrap()).unwrap();
        assert!(!listed.contains("argon2") && !listed.contains(password.expose()), "{listed}");

        let (robot, secret) = store.create_robot("ci", &rules, None).unwrap();
        assert_eq!(robot.name, "robot$ci");
        let (_, first) = store.credentials("robot$ci").unwrap().unwrap();
        let (_, again) = store.rotate_robot("ci").unwrap();
        assert_ne!(secret.expose(), again.expose());
        assert_ne!(store.credentials("robot$ci").unwrap().unwrap().1, first);
        assert!(matches!(store.get(Kind::User, "robot$ci"), Err(AccountError::NotFound(_))));
        store.delete(Kind::Robot, "robot$ci").unwrap();
        assert!(store.credentials("robot$ci").unwrap().is_none());
    }

    #[test]
    fn bad_input_says_what_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = AccountStore::open(dir.path()).unwrap();
        for name in ["", "Alice", "a:b", "robot$x", "-a"] {
            let input = UserInput { name: name.into(), ..Default::default() };
            assert!(matches!(store.create_user(&input), Err(AccountError::Invalid(_))), "{name:?}");
        }
        let short = UserInput { name: "bob".into(), password: Some(Secret::new("short")), ..Default::default() };
        assert!(matches!(store.create_user(&short), Err(AccountError::Invalid(_))));
        let now = Utc::now();
        assert!(parse_expiry("never", now).unwrap().is_none());
        assert_eq!(parse_expiry("30d", now).unwrap(), Some(now + chrono::Duration::days(30)));
        assert!(parse_expiry("2001-01-01T00:00:00Z", now).is_err());
        assert!(parse_expiry("soon", now).is_err());
        assert!(parse_expiry("0s", now).is_err());
    }
}
