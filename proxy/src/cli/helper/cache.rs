//! The helper's credential cache: one 0600 JSON file per host and settings under
//! `$XDG_CACHE_HOME/regbridge/helper/` (else `~/.cache/regbridge/helper/`, directory 0700), kept until
//! shortly before the credentials expire.
//!
//! docker runs the helper for every pull and push, and each cloud mint is one or two round trips (STS,
//! GetAuthorizationToken), so a cached login saves seconds per command. The file name is a hash of the
//! host, every setting the mint used *and* whether the login is pull-only, so credentials of one role are
//! never handed out for another, nor a push login for a pull-only request or the other way round.
//! A file that does not parse is treated as absent and overwritten by the next mint.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use regbridge::{Error, Result, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config_file::HelperHost;

/// The most taken off a lifetime before a cached login counts as expired.
const MAX_MARGIN: Duration = Duration::from_secs(300);

/// A cached login.
#[derive(Deserialize)]
pub struct Entry {
    /// The user name.
    pub username: String,
    /// The password or token.
    pub secret: Secret,
    /// When it was minted.
    pub issued_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

impl Entry {
    /// True until `min(5 min, 10% of the lifetime)` before expiry: a client gets time to use it.
    pub fn fresh_at(&self, now: DateTime<Utc>) -> bool {
        let lifetime = (self.expires_at - self.issued_at).to_std().unwrap_or_default();
        let margin = MAX_MARGIN.min(lifetime / 10);
        let margin = chrono::Duration::from_std(margin).unwrap_or_default();
        now < self.expires_at - margin
    }
}

/// The cache directory.
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// `$XDG_CACHE_HOME/regbridge/helper`, else `$HOME/.cache/regbridge/helper`.
    pub fn from_env() -> Result<Self> {
        let base = match std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
            Some(dir) => PathBuf::from(dir),
            None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
                Some(home) => PathBuf::from(home).join(".cache"),
                None => return Err(Error::bad_input("neither XDG_CACHE_HOME nor HOME is set: no cache directory")),
            },
        };
        Ok(Self::at(base.join("regbridge").join("helper")))
    }

    /// A cache in `dir`.
    pub fn at(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The file for `settings` and `pull_only`: a hash of every setting and the kind of login.
    pub fn path(&self, settings: &HelperHost, pull_only: bool) -> PathBuf {
        let key = serde_json::json!([settings, pull_only]);
        self.dir.join(format!("{}.json", hex::encode(Sha256::digest(key.to_string()))))
    }

    /// The cached login for `settings` and `pull_only` if it is still fresh; unreadable or corrupt files
    /// count as none.
    pub fn get(&self, settings: &HelperHost, pull_only: bool) -> Option<Entry> {
        let text = std::fs::read(self.path(settings, pull_only)).ok()?;
        let entry: Entry = serde_json::from_slice(&text).ok()?;
        entry.fresh_at(Utc::now()).then_some(entry)
    }

    /// Stores `entry` for `settings` and `pull_only`: written to a 0600 temporary file, then renamed over
    /// the old one.
    pub fn put(&self, settings: &HelperHost, pull_only: bool, entry: &Entry) -> Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| Error::internal(format!("create {}", self.dir.display()), e))?;
        let path = self.path(settings, pull_only);
        let body = serde_json::json!({
            "username": entry.username,
            "secret": entry.secret.expose(),
            "issued_at": entry.issued_at,
            "expires_at": entry.expires_at,
        });
        write_private(&path, body.to_string().as_bytes())
    }

    /// Drops the entries for `settings`, pull-only and not (none is fine).
    pub fn remove(&self, settings: &HelperHost) -> Result<()> {
        for pull_only in [false, true] {
            match std::fs::remove_file(self.path(settings, pull_only)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::internal("remove cache entry", e));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::internal(format!("write {}", path.display()), e)
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn host(role: Option<&str>) -> HelperHost {
        HelperHost {
            host: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            provider: "ecr".into(),
            role_arn: role.map(Into::into),
            ..HelperHost::default()
        }
    }

    fn entry(lifetime: chrono::Duration, age: chrono::Duration) -> Entry {
        let issued_at = Utc::now() - age;
        Entry { username: "AWS".into(), secret: Secret::new("pw"), issued_at, expires_at: issued_at + lifetime }
    }

    #[test]
    fn fresh_until_shortly_before_expiry() {
        let now = Utc::now();
        let twelve_h = entry(chrono::Duration::hours(12), chrono::Duration::zero());
        assert!(twelve_h.fresh_at(now + chrono::Duration::hours(11) + chrono::Duration::minutes(54)));
        assert!(!twelve_h.fresh_at(now + chrono::Duration::hours(11) + chrono::Duration::minutes(56)), "5 min margin");
        let short = entry(chrono::Duration::seconds(100), chrono::Duration::zero());
        assert!(short.fresh_at(now + chrono::Duration::seconds(85)));
        assert!(!short.fresh_at(now + chrono::Duration::seconds(91)), "10% margin");
    }

    #[test]
    fn stored_private_keyed_by_settings_and_corruption_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::at(dir.path().join("regbridge/helper"));
        let (a, b) = (host(Some("arn:aws:iam::123456789012:role/a")), host(Some("arn:aws:iam::123456789012:role/b")));
        cache.put(&a, false, &entry(chrono::Duration::hours(1), chrono::Duration::zero())).unwrap();
        assert_eq!(cache.get(&a, false).unwrap().secret.expose(), "pw");
        assert!(cache.get(&a, true).is_none(), "a push login is never served for a pull-only request");
        assert!(cache.get(&b, false).is_none(), "another role never gets this role's credentials");
        assert!(cache.get(&host(None), false).is_none());
        let gar = |sa: &str| HelperHost { provider: "gar".into(), service_account: Some(sa.into()), ..host(None) };
        cache
            .put(
                &gar("a@p.iam.gserviceaccount.com"),
                false,
                &entry(chrono::Duration::hours(1), chrono::Duration::zero()),
            )
            .unwrap();
        assert!(cache.get(&gar("b@p.iam.gserviceaccount.com"), false).is_none(), "every setting is in the key");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&cache.path(&a, false)), 0o600);
        assert_eq!(mode(&dir.path().join("regbridge/helper")), 0o700);

        std::fs::write(cache.path(&a, false), b"{not json").unwrap();
        assert!(cache.get(&a, false).is_none(), "a corrupt file is a miss");
        cache.put(&a, false, &entry(chrono::Duration::hours(1), chrono::Duration::zero())).unwrap();
        assert!(cache.get(&a, false).is_some(), "and is replaced");

        cache.put(&a, false, &entry(chrono::Duration::hours(1), chrono::Duration::minutes(59))).unwrap();
        assert!(cache.get(&a, false).is_none(), "an entry about to expire is a miss");
        cache.put(&a, true, &entry(chrono::Duration::hours(1), chrono::Duration::zero())).unwrap();
        assert!(cache.get(&a, false).is_none(), "a pull-only login is never served for a push request");
        cache.remove(&a).unwrap();
        assert!(!cache.path(&a, false).exists() && !cache.path(&a, true).exists());
        cache.remove(&a).unwrap();
    }
}
