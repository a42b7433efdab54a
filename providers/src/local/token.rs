//! Tokens signed by the registry's key: credentials minted by the local provider and the session tokens
//! the token endpoint issues. Both are HS256 JWTs carrying Docker-style `access` claims, so clients treat
//! them as the opaque bearer tokens they expect.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use regbridge::{Error, Result, Secret};
use serde::{Deserialize, Serialize};

/// The `iss` of every token regbridge signs.
pub const ISSUER: &str = "regbridge";

/// One grant inside a token: actions on a resource (`repository:team/app:pull,push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// `repository` or `registry`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The repository name, or `catalog`.
    pub name: String,
    /// `pull`, `push`, `delete`, `*`.
    pub actions: Vec<String>,
}

impl Access {
    /// Access to a repository.
    pub fn repository(name: &str, actions: &[&str]) -> Self {
        Self { kind: "repository".into(), name: name.into(), actions: actions.iter().map(|a| a.to_string()).collect() }
    }

    /// Access to every repository (registry-wide credentials, as the credential helper mints). The token
    /// endpoint never grants it: clients name repositories, and `*` is not a repository name.
    pub fn every_repository(actions: &[&str]) -> Self {
        Self::repository(EVERY_REPOSITORY, actions)
    }

    /// True when this entry allows `action` on repository `name`.
    pub fn allows(&self, name: &str, action: &str) -> bool {
        self.kind == "repository"
            && (self.name == name || self.name == EVERY_REPOSITORY)
            && self.actions.iter().any(|a| a == action || a == "*")
    }
}

/// The repository name of an [`Access`] that covers every repository.
const EVERY_REPOSITORY: &str = "*";

/// What kind of token this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Minted by `generate_credentials`: presented as a password.
    Minted,
    /// Issued by the token endpoint for one client session.
    Session,
    /// Issued by `POST /admin/v1/tokens` (`regbridge login`): authenticates its subject to the management
    /// API only. It carries no access, so the registry API grants it nothing.
    Api,
}

/// The claims of a regbridge token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Always [`ISSUER`].
    pub iss: String,
    /// The user name or account the token was issued to.
    pub sub: String,
    /// The account whose cross-account grants apply. `None` for configured users, whose access is the
    /// `access` list alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acct: Option<String>,
    /// Minted or session.
    pub kind: TokenKind,
    /// What the token allows.
    pub access: Vec<Access>,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issue time, seconds since the epoch.
    pub iat: i64,
    /// A random id, so that two tokens issued in the same second with the same claims still differ (a
    /// refusal remembered for one token must not apply to another client's).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
}

impl Claims {
    /// The expiry as a time.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.exp, 0).unwrap_or_default()
    }
}

/// Signs and verifies tokens with the registry's secret key.
#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    key: std::sync::Arc<Vec<u8>>,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSigner(<redacted>)")
    }
}

impl TokenSigner {
    /// A signer for a key of at least 32 bytes.
    pub fn new(key: &[u8]) -> Result<Self> {
        if key.len() < 32 {
            return Err(Error::bad_input("the signing key must be at least 32 bytes"));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            key: std::sync::Arc::new(key.to_vec()),
        })
    }

    /// A key for another use of the same secret (signing upload locations, say), derived so that a value
    /// signed for one purpose never verifies for another.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        use sha2::Digest as _;
        let mut h = sha2::Sha256::new();
        h.update(b"regbridge key derivation\0");
        h.update(purpose.as_bytes());
        h.update([0]);
        h.update(self.key.as_slice());
        h.finalize().into()
    }

    /// Loads the key from `path`, or creates a random one there (mode 0600) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self> {
        match std::fs::read(path) {
            Ok(key) => Self::new(&key),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 64];
                rand::rngs::OsRng.fill_bytes(&mut key);
                crate::local::write_private(path, &key)?;
                Self::new(&key)
            }
            Err(e) => Err(Error::internal(format!("read signing key {}", path.display()), e)),
        }
    }

    /// Signs a token for `sub` that lives `ttl`.
    pub fn sign(
        &self,
        sub: &str,
        acct: Option<&str>,
        kind: TokenKind,
        access: Vec<Access>,
        ttl: Duration,
    ) -> Result<(Secret, Claims)> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: sub.into(),
            acct: acct.map(Into::into),
            kind,
            access,
            exp: now + ttl.as_secs().max(1) as i64,
            iat: now,
            jti: String::new(),
        };
        self.sign_claims(claims)
    }

    /// Signs `claims` as they are (the caller chose the expiry), with a fresh random `jti`.
    pub fn sign_claims(&self, mut claims: Claims) -> Result<(Secret, Claims)> {
        let mut id = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        claims.jti = id.iter().map(|b| format!("{b:02x}")).collect();
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal("sign token", e))?;
        Ok((Secret::new(token), claims))
    }

    /// Verifies signature, issuer and expiry. The error says why, never what the token was.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "the token's signature is not valid",
                _ => "the token is malformed",
            };
            Error::Unauthenticated { message: why.into() }
        })
    }
}

/// True when `s` has the shape of a JWT (three dot-separated parts), so it is worth verifying.
pub fn looks_like_token(s: &str) -> bool {
    s.split('.').count() == 3 && s.len() > 20
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_expire_tamper() {
        let signer = TokenSigner::new(&[7u8; 32]).unwrap();
        let (token, claims) = signer
            .sign(
                "b",
                Some("b"),
                TokenKind::Minted,
                vec![Access::repository("a/x", &["pull"])],
                Duration::from_secs(60),
            )
            .unwrap();
        let back = signer.verify(token.expose()).unwrap();
        assert_eq!(back, claims);
        let (twin, _) = signer
            .sign(&claims.sub, claims.acct.as_deref(), claims.kind, claims.access.clone(), Duration::from_secs(60))
            .unwrap();
        assert_ne!(twin.expose(), token.expose(), "the same claims in the same second still make another token");
        assert!(back.access[0].allows("a/x", "pull"));
        assert!(!back.access[0].allows("a/x", "push"));
        assert!(!back.access[0].allows("a/y", "pull"));
        let other = TokenSigner::new(&[8u8; 32]).unwrap();
        assert!(other.verify(token.expose()).unwrap_err().to_string().contains("signature"));
        let mut expired = claims.clone();
        expired.exp = Utc::now().timestamp() - 5;
        let expired =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &expired, &EncodingKey::from_secret(&[7u8; 32]))
                .unwrap();
        assert!(signer.verify(&expired).unwrap_err().to_string().contains("expired"));
        assert!(signer.verify("a.b.c").is_err());
        assert!(TokenSigner::new(b"short").is_err());
    }
}
