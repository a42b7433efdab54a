//! Step 3 of the pipeline: who is asking.
//!
//! Identities: users and robot accounts (Basic, argon2-verified and then cached briefly; see
//! [`crate::accounts`]), credentials minted by the local provider (Basic with a signed token as the
//! password), and session tokens from `/token` (Bearer). Wrong credentials are an error, never anonymous;
//! so is an expired robot, with a message saying so.
//!
//! A robot's session token is refused once the robot is deleted or its secret rotated (the account is read
//! on every request that uses it). A deleted user's session tokens keep working until they expire, at
//! most 5 minutes after they were issued (the token endpoint's lifetime).

use axum::http::{HeaderMap, header};
use chrono::{DateTime, Utc};
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{Claims, DEFAULT_ACCOUNT, TokenKind, token::looks_like_token};

use crate::accounts::{Kind, Principal, ROBOT_PREFIX};
use crate::login_limit::ClientAddr;
use crate::state::AppState;

/// The subject of session tokens issued to callers without credentials.
pub const ANONYMOUS_SUBJECT: &str = "anonymous";

/// Who made a request.
#[derive(Debug, Clone)]
pub enum Identity {
    /// No credentials.
    Anonymous,
    /// A user or robot account: what it may do is [`Principal::may`].
    User(Principal),
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
    /// token) may live longer. `None` for users, robots without an expiry and anonymous callers.
    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Identity::Token(claims) => Some(claims.expires_at()),
            Identity::User(principal) => principal.expires_at,
            Identity::Anonymous => None,
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
        "bearer" => {
            let claims = state.signer.verify(rest.trim())?;
            check_robot_session(state, &claims).await?;
            Ok(Identity::Token(claims))
        }
        _ => Err(Error::Unauthenticated {
            message: format!("unsupported authorization scheme {scheme:?}; use Basic or Bearer"),
        }),
    }
}

/// A session token issued to a robot works only while the robot exists with the secret it was issued for.
async fn check_robot_session(state: &AppState, claims: &Claims) -> Result<()> {
    if claims.kind != TokenKind::Session || claims.acct.is_some() || !claims.sub.starts_with(ROBOT_PREFIX) {
        return Ok(());
    }
    let name = claims.sub.clone();
    let found = state.accounts.run(move |s| s.credentials(&name)).await.map_err(account_error)?;
    let refused = |why: &str| Err(Error::Unauthenticated { message: format!("the token of {} {why}", claims.sub) });
    match found {
        None => refused("is no longer valid: the robot account was deleted"),
        Some((account, _)) if claims.iat < account.secret_updated_at.timestamp() => {
            refused("is no longer valid: the robot's secret was rotated; log in with the new one")
        }
        Some(_) => Ok(()),
    }
}

/// Server-wide credentials of a member or robot (`regbridge-credential-helper@NAME`) work only while the
/// account exists with the password or secret it had when they were issued and the robot has not expired,
/// and only for what its rules still give: entries of rules since removed or narrowed are dropped.
async fn check_account_helper_token(state: &AppState, claims: &mut Claims) -> Result<()> {
    let Some(name) = claims.sub.strip_prefix(crate::manage::HELPER_USER).and_then(|n| n.strip_prefix('@')) else {
        return Ok(());
    };
    let owned = name.to_owned();
    let found = state.accounts.run(move |s| s.credentials(&owned)).await.map_err(account_error)?;
    let refused = |why: &str| Err(Error::Unauthenticated { message: format!("the credentials of {name} {why}") });
    let account = match found {
        None => return refused("are no longer valid: the account was deleted"),
        Some((account, _)) if claims.iat < account.secret_updated_at.timestamp() => {
            return refused("are no longer valid: its password or secret changed; ask for new ones");
        }
        Some((account, _)) if account.principal().is_expired() => {
            return refused("are no longer valid: the robot expired");
        }
        Some((account, _)) => account,
    };
    let principal = account.principal();
    if !principal.is_admin() {
        claims.access.retain(|a| crate::accounts::rules::still_given(a, &principal.rules));
    }
    Ok(())
}

fn account_error(e: crate::accounts::AccountError) -> Error {
    match e {
        crate::accounts::AccountError::Other(e) => e,
        other => Error::internal("read the account", std::io::Error::other(other.to_string())),
    }
}

/// The principal an API token (`POST /admin/v1/tokens`, for `regbridge login`) authenticates, looked up on
/// every request: a deleted user's or robot's tokens stop working at once, and so do a robot's tokens
/// after its secret is rotated or it expires.
pub async fn api_token_principal(state: &AppState, token: &str) -> Result<Principal> {
    let refused =
        |why: &str| Error::Unauthenticated { message: format!("the API token {why}: run `regbridge login` again") };
    let claims = state.signer.verify(token).map_err(|_| refused("is not valid or expired"))?;
    if claims.kind != TokenKind::Api {
        return Err(refused("is not an API token (registry tokens do not open the management API)"));
    }
    if state.users.contains(&claims.sub) {
        return Ok(Principal::configured_admin(&claims.sub));
    }
    let name = claims.sub.clone();
    match state.accounts.run(move |s| s.credentials(&name)).await.map_err(account_error)? {
        Some((account, _)) if claims.iat < account.secret_updated_at.timestamp() => {
            Err(refused("was issued before the account's password or secret changed"))
        }
        Some((account, _)) if !account.principal().is_expired() => Ok(account.principal()),
        Some(_) => Err(refused("belongs to an expired robot account")),
        None => Err(refused("belongs to an account that no longer exists")),
    }
}

/// A user name and password: a configured user, a user or robot of the account store, or minted
/// credentials whose password is a signed token.
pub async fn basic_identity(state: &AppState, user: &str, password: &Secret, client: ClientAddr) -> Result<Identity> {
    if state.users.contains(user) {
        state.users.verify(user, password, client.0).await?;
        return Ok(Identity::User(Principal::configured_admin(user)));
    }
    let name = user.to_owned();
    if let Some((account, hash)) = state.accounts.run(move |s| s.credentials(&name)).await.map_err(account_error)? {
        state.users.verify_hash(user, password, client.0, hash).await?;
        let principal = account.principal();
        // Said only after the secret verified, so guessing does not learn which robots exist.
        if principal.kind == Kind::Robot && principal.is_expired() {
            let at = principal.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default();
            return Err(Error::Unauthenticated {
                message: format!("the robot account {user} expired at {at}; an admin can create a new one"),
            });
        }
        return Ok(Identity::User(principal));
    }
    if looks_like_token(password.expose()) {
        let mut claims = state.signer.verify(password.expose())?;
        if claims.kind == TokenKind::Minted && claims.sub == user {
            check_account_helper_token(state, &mut claims).await?;
            return Ok(Identity::Token(claims));
        }
    }
    Err(Error::Unauthenticated { message: "wrong user name or password".into() })
}
