//! Who is asking ([`identify`]) and whether they may ([`authorize`]).
//!
//! Identities: configured users (Basic, argon2-verified and then cached briefly), credentials minted by
//! the local provider (Basic with a signed token as the password), and session tokens from `/token`
//! (Bearer). Token-based identities of an account are checked against the repository's owner and
//! cross-account grants on every request, so a revoked grant stops working at once.

use axum::http::{HeaderMap, Method, header};
use regbridge::oci::RepositoryName;
use regbridge::{Error, Result, Secret};
use regbridge_providers::local::{Claims, DEFAULT_ACCOUNT, TokenKind, token::looks_like_token};

use super::{AppState, Ctx};
use crate::login_limit::ClientAddr;
use crate::route::OciRoute;

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
}

/// What a request does to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read.
    Pull,
    /// Write.
    Push,
    /// Delete manifests, tags or blobs.
    Delete,
}

impl Action {
    /// The action a request needs.
    pub fn for_request(route: &OciRoute, method: &Method) -> Self {
        match (route, method) {
            (_, &Method::DELETE) => match route {
                OciRoute::Upload(..) => Action::Push,
                _ => Action::Delete,
            },
            (OciRoute::UploadStart(_) | OciRoute::Upload(..), _) | (OciRoute::Manifest(..), &Method::PUT) => {
                Action::Push
            }
            _ => Action::Pull,
        }
    }

    /// The token action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

/// Parses `Authorization` into an identity. Wrong credentials are an error, not anonymous; too many of
/// them from `client` or for a user, a 429.
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

/// Checks that the request's identity may do `action` on `repo`.
pub async fn authorize(ctx: &Ctx, repo: &RepositoryName, action: Action) -> Result<()> {
    match allowed(ctx.state.as_ref(), &ctx.identity, repo, action).await? {
        true => Ok(()),
        false => match &ctx.identity {
            Identity::Anonymous => Err(Error::Unauthenticated { message: "authentication required".into() }),
            // A session token without the scope: 401 so the client asks the token endpoint for it.
            Identity::Token(Claims { kind: TokenKind::Session, .. }) if !token_covers(&ctx.identity, repo, action) => {
                Err(Error::Unauthenticated {
                    message: format!("the token does not allow {} on {repo}", action.as_str()),
                })
            }
            _ => Err(Error::Denied {
                message: format!("{} on {repo} is not allowed for these credentials", action.as_str()),
            }),
        },
    }
}

fn token_covers(identity: &Identity, repo: &RepositoryName, action: Action) -> bool {
    match identity {
        Identity::Token(claims) => claims.access.iter().any(|a| a.allows(repo.as_str(), action.as_str())),
        _ => false,
    }
}

/// Whether `identity` may do `action` on `repo`, without building an error.
pub async fn allowed(state: &AppState, identity: &Identity, repo: &RepositoryName, action: Action) -> Result<bool> {
    match identity {
        Identity::User(_) => Ok(true),
        Identity::Anonymous => Ok(action == Action::Pull && state.config.anonymous_pull),
        Identity::Token(claims) => {
            if !token_covers(identity, repo, action) {
                return Ok(false);
            }
            match &claims.acct {
                None => Ok(true),
                Some(account) => Ok(match state.storage.repository(repo).await? {
                    Some(meta) => meta.allows(account, action != Action::Pull),
                    // Pushing creates the repository for this account; pulling finds nothing either way.
                    None => true,
                }),
            }
        }
    }
}
