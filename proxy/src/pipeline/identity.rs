//! Step 3 of the pipeline: who is asking.
//!
//! Identities: configured users (Basic, argon2-verified and then cached briefly), credentials minted by
//! the local provider (Basic with a signed token as the password), and session tokens from `/token`
//! (Bearer). Wrong credentials are an error, never anonymous.

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{Claims, DEFAULT_ACCOUNT, TokenKind, token::looks_like_token};

use crate::login_limit::ClientAddr;
use crate::state::AppState;

/// The subject of session tokens issued to callers without credentials.
pub const ANONYMOUS_SUBJECT: &str = "anonymous";

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A configured user; users have full access.
    User(String),
    /// A token: minted credentials or a session token.
    Token(Claims),
}

impl Identity {
    /// The account that owns repositories this identity creates by pushing.
    pub fn account(&self) -> &str {
        match self {
            Identity::Token(Claims { acct: Some(a), .. }) => a,
            _ => DEFAULT_ACCOUNT,
        }
    }

    /// When the credential behind this identity stops being valid: nothing derived from it (a session
    /// token) may live longer. `None` for users and anonymous callers, whose access does not expire.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Identity::Token(claims) => Some(claims.expires_at()),
            _ => None,
        }
    }
}

/// Parses `Authorization` into an identity. Too many wrong credentials from `client` or for a user are a
/// 429 before any password is checked.
pub async fn identify(state: &AppState, headers: &HeaderMap, client: ClientAddr) -> Result<Identity> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(Identity::Anonymous) };
    let value =
        value.to_str().map_err(|_| Error::Unauthenticated { message: "malformed Authorization header".into() })?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => {
            let (user, password) = regbridge::auth::decode_basic(rest)?;
            basic_identity(state, &user, &password, client).await
        }
        "bearer" => Ok(Identity::Token(state.signer.verify(rest.trim())?)),
        _ => Err(Error::Unauthenticated {
            message: format!("unsupported authorization scheme {scheme:?}; use Basic or Bearer"),
        }),
    }
}

/// A user name and password: a configured user, or minted credentials whose password is a signed token.
pub async fn basic_identity(state: &AppState, user: &str, password: &Secret, client: ClientAddr) -> Result<Identity> {
    if state.users.contains(user) {
        state.users.verify(user, password, client.0).await?;
        return Ok(Identity::User(user.to_owned()));
    }
    if looks_like_token(password.expose()) {
        let claims = state.signer.verify(password.expose())?;
        if claims.kind == TokenKind::Minted && claims.sub == user {
            return Ok(Identity::Token(claims));
        }
    }
    Err(Error::Unauthenticated { message: "wrong user name or password".into() })
}
