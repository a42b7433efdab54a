//! Configured users: argon2 password hashes in the data directory, the admin created on first start, and
//! a short-lived cache of verified Basic credentials so a request costs a hash lookup, not an argon2 run.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::write_private;
use sha2::Digest as _;

use crate::login_limit::LoginLimits;

/// The `name → hash` map of a users file; `None` when there is no such file.
fn read_hashes(path: &Path) -> Result<Option<BTreeMap<String, String>>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::bad_input(format!("{} is not a JSON map of user to hash: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::internal(format!("read {}", path.display()), e)),
    }
}

/// The admin user created on first start.
pub const ADMIN_USER: &str = "admin";

/// How long verified Basic credentials are trusted without running argon2 again.
const VERIFIED_TTL: Duration = Duration::from_secs(60);

/// Password hashes verified at once. Each argon2 run holds 19 MiB; sixteen clients arriving together with
/// the same uncached credentials once took the server from 35 to 340 MiB. Arrivals with the same
/// credentials wait at their gate ([`Users::verify`]), then find the first one's result in the cache.
const CONCURRENT_VERIFICATIONS: usize = 2;

/// Of those, how many clients with recent failed logins may hold at once (see [`LoginLimits`]), so a
/// password-guessing client cannot keep everyone else waiting.
const SUSPECT_VERIFICATIONS: usize = 1;

/// The configured users.
#[derive(Debug)]
pub struct Users {
    hashes: BTreeMap<String, String>,
    verified: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    hashing: tokio::sync::Semaphore,
    suspects: tokio::sync::Semaphore,
    limits: LoginLimits,
    /// One verification at a time per credentials: clients arriving together with the same uncached
    /// credentials wait for the first one's result instead of each spending a login attempt.
    pending: moka::sync::Cache<[u8; 32], std::sync::Arc<tokio::sync::Mutex<()>>>,
}

/// What the first start created: the admin's password, to print once.
pub struct FirstStart {
    /// The generated (or given) password.
    pub password: Secret,
    /// Whether it was generated (and so must be shown).
    pub generated: bool,
}

impl Users {
    /// Loads `users.json` from the data directory. When it does not exist, creates the admin user with
    /// `initial_password` or a random one, stores the hash in `users.json` and the password in
    /// `admin-password` (both mode 0600), and returns it.
    pub fn load_or_init(data_dir: &Path, initial_password: Option<Secret>) -> Result<(Self, Option<FirstStart>)> {
        let path = data_dir.join("users.json");
        match read_hashes(&path)? {
            Some(hashes) => Ok((Self::from_hashes(hashes), None)),
            None => {
                let generated = initial_password.is_none();
                let password = initial_password.unwrap_or_else(random_secret);
                let hashes: BTreeMap<String, String> = [(ADMIN_USER.to_owned(), hash_password(&password)?)].into();
                write_private(&data_dir.join("admin-password"), format!("{}\n", password.expose()).as_bytes())?;
                write_private(&path, &serde_json::to_vec_pretty(&hashes).expect("map serialises"))?;
                Ok((Self::from_hashes(hashes), Some(FirstStart { password, generated })))
            }
        }
    }

    /// The names of the users a server started with `config` has configured (its `[users]` table, else
    /// `DATA_DIR/users.json`), creating nothing: for the commands on the server's host, which show and
    /// refuse to change them as the management API does.
    pub fn configured_names(config: &crate::ServeConfig) -> Result<Vec<String>> {
        if !config.users.is_empty() {
            return Ok(config.users.keys().cloned().collect());
        }
        let hashes = read_hashes(&config.data_dir.join("users.json"))?;
        Ok(hashes.unwrap_or_default().into_keys().collect())
    }

    /// Users from `name → argon2 PHC hash`.
    pub fn from_hashes(hashes: BTreeMap<String, String>) -> Self {
        Self {
            hashes,
            verified: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS),
            suspects: tokio::sync::Semaphore::new(SUSPECT_VERIFICATIONS),
            limits: LoginLimits::default(),
            pending: moka::sync::Cache::builder().max_capacity(10_000).time_to_idle(VERIFIED_TTL).build(),
        }
    }

    /// The configured users' names.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.hashes.keys().map(String::as_str)
    }

    /// True when `name` is a configured user.
    pub fn contains(&self, name: &str) -> bool {
        self.hashes.contains_key(name)
    }

    /// Checks a user's password from `client` (its address, when known). Recently verified credentials are
    /// answered from the cache; otherwise, unless `client` or the user failed too often lately (429),
    /// argon2 runs on a blocking thread.
    pub async fn verify(&self, user: &str, password: &Secret, client: Option<IpAddr>) -> Result<()> {
        // Unknown names cost no argon2 run, so they are not counted per user (nor kept in memory).
        let hash = self.hashes.get(user).cloned().ok_or_else(denied)?;
        self.verify_hash(user, password, client, hash).await
    }

    /// Checks `password` against `hash`, the stored hash of the account `user` (a configured user, or a user
    /// or robot of [`crate::accounts::AccountStore`]), with the same cache, gate and login limits as
    /// [`Users::verify`]. The cache is keyed by the hash too: once a password is changed or a robot's
    /// secret rotated, the old one is not found there and fails at once.
    pub async fn verify_hash(&self, user: &str, password: &Secret, client: Option<IpAddr>, hash: String) -> Result<()> {
        let key = cache_key(user, password, &hash);
        if self.recently_verified(&key) {
            return Ok(());
        }
        // Without this, sixteen connections of one client sending the right password at once took sixteen
        // login attempts from their address while the first argon2 ran, and got 429s for correct logins.
        let gate = self.pending.get_with(key, Default::default);
        let _turn = gate.lock().await;
        if self.recently_verified(&key) {
            return Ok(());
        }
        let attempt = self.limits.begin(client, user)?;
        let _suspect = match attempt.is_suspect() {
            true => Some(self.suspects.acquire().await.map_err(|e| Error::internal("verify password", e))?),
            false => None,
        };
        // Requests with these credentials wait at the gate above, so none verified them meanwhile.
        let _permit = self.hashing.acquire().await.map_err(|e| Error::internal("verify password", e))?;
        let password = password.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .is_ok_and(|h| Argon2::default().verify_password(password.expose().as_bytes(), &h).is_ok())
        })
        .await
        .map_err(|e| Error::internal("verify password", e))?;
        if !ok {
            return Err(denied());
        }
        attempt.succeeded();
        let mut cache = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|_, (_, at)| at.elapsed() < VERIFIED_TTL);
        cache.insert(key, (user.to_owned(), Instant::now()));
        Ok(())
    }
}

impl Users {
    fn recently_verified(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .is_some_and(|(_, at)| at.elapsed() < VERIFIED_TTL)
    }
}

fn denied() -> Error {
    Error::Unauthenticated { message: "wrong user name or password".into() }
}

/// A digest of the credentials and the hash they were checked against, so the cache never holds a password
/// and a changed hash misses it.
fn cache_key(user: &str, password: &Secret, hash: &str) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    h.update(user.as_bytes());
    h.update([0]);
    h.update(hash.as_bytes());
    h.update([0]);
    h.update(password.expose().as_bytes());
    h.finalize().into()
}

/// An argon2id PHC hash of `password`.
pub fn hash_password(password: &Secret) -> Result<String> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal { message: format!("hash password: {e}"), source: None })
}

/// A random 24-character password or robot secret (about 140 bits), without look-alike characters.
pub fn random_secret() -> Secret {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    Secret::new((0..24).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect::<String>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_start_creates_admin_once() {
        let dir = tempfile::tempdir().unwrap();
        let (users, first) = Users::load_or_init(dir.path(), None).unwrap();
        let first = first.unwrap();
        assert!(first.generated);
        users.verify(ADMIN_USER, &first.password, None).await.unwrap();
        assert!(users.verify(ADMIN_USER, &Secret::new("wrong"), None).await.is_err());
        assert!(users.verify("nobody", &first.password, None).await.is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for f in ["users.json", "admin-password"] {
                let mode = std::fs::metadata(dir.path().join(f)).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{f}");
            }
        }
        let (again, none) = Users::load_or_init(dir.path(), Some(Secret::new("ignored"))).unwrap();
        assert!(none.is_none());
        again.verify(ADMIN_USER, &first.password, None).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_of_correct_logins_from_one_address_is_never_limited() {
        // More concurrent first logins than the address's login budget (10): they share one argon2 run.
        let dir = tempfile::tempdir().unwrap();
        let password = Secret::new("burst-password");
        let (users, _) = Users::load_or_init(dir.path(), Some(password.clone())).unwrap();
        let users = std::sync::Arc::new(users);
        let client = Some(IpAddr::from([127, 0, 0, 9]));
        let logins = (0..40).map(|_| {
            let (users, password) = (users.clone(), password.clone());
            tokio::spawn(async move { users.verify(ADMIN_USER, &password, client).await })
        });
        for login in futures_util::future::join_all(logins).await {
            login.unwrap().unwrap();
        }
    }
}
