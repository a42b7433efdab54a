//! Step 4 of the pipeline: whether the caller may do what the request does, decided once, before any
//! handler runs (as distribution's `app.go` collects access records before dispatch).
//!
//! - Users and robots may what their [`Principal`](crate::accounts::Principal) allows (admins everything);
//!   anonymous callers may pull when anonymous pulls are on.
//! - A token (minted credential or session token) allows exactly its `access` entries, and, for an account,
//!   only where that account owns the repository or was granted access (checked on every request, so a
//!   revoked grant stops working at once).
//! - A mount needs pull on its source; without it the mount is dropped and the client gets a normal upload
//!   session, as the distribution spec allows.
//! - On an upstream route an upload session is only ever one this proxy handed out: its location must carry
//!   a valid signature (which also stands in for `Authorization`, since some clients drop it on PATCH/PUT).

use axum::http::Method;
use regbridge::auth::{Action, Actions, Scope};
use regbridge::oci::RepositoryName;
use regbridge::{Error, Resource, Result};
use regbridge_providers::local::{Claims, TokenKind};

use super::identity::{ANONYMOUS_SUBJECT, Identity};
use super::target::{OciRoute, Params};
use crate::accounts::rules::glob_access_allows;
use crate::state::AppState;

/// The action a request needs on its repository; `None` for the catalog, which is filtered per entry.
pub fn action_for(route: &OciRoute, method: &Method) -> Option<Action> {
    Some(match (route, method) {
        (OciRoute::Catalog, _) => return None,
        // Cancelling an upload is part of pushing, not a delete of content.
        (OciRoute::Upload(..), &Method::DELETE) => Action::Push,
        (_, &Method::DELETE) => Action::Delete,
        (OciRoute::UploadStart(_) | OciRoute::Upload(..), _) | (OciRoute::Manifest(..), &Method::PUT) => Action::Push,
        _ => Action::Pull,
    })
}

/// The scopes a challenge for this request names: what the request needs, and pull on a mount's source
/// (so a client that fetches a token for the challenge can mount in one go).
pub fn challenge_scopes(route: &OciRoute, method: &Method, params: &Params) -> Vec<Scope> {
    let Some(repo) = route.repository() else { return vec![Scope::Catalog] };
    let action = action_for(route, method).unwrap_or(Action::Pull);
    let mut scopes = vec![Scope::for_action(repo.clone(), action)];
    if let (OciRoute::UploadStart(_), Some((_, from))) = (route, &params.mount)
        && from != repo
    {
        scopes.push(Scope::for_action(from.clone(), Action::Pull));
    }
    scopes
}

/// What the authorization step decided, for the handlers.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    /// The mount source the caller may read; `None` when the request mounts nothing or may not read the
    /// source (the upload then starts as a normal session).
    pub mount_from: Option<RepositoryName>,
}

/// Why a request was refused.
#[derive(Debug)]
pub struct Refusal {
    /// The error the client sees.
    pub error: Error,
    /// The caller holds a session token that lacks the scope: the challenge says `insufficient_scope`.
    pub insufficient_scope: bool,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Self {
        Refusal { error, insufficient_scope: false }
    }
}

/// Authorizes a request to `route`. `signed_upload` is whether an upload location's signature verified
/// (`None` on the local registry, whose upload ids are its own storage's).
pub async fn authorize(
    state: &AppState,
    identity: &Identity,
    route: &OciRoute,
    method: &Method,
    params: &Params,
    signed_upload: Option<bool>,
) -> std::result::Result<Grant, Refusal> {
    let Some(repo) = route.repository() else {
        if matches!(identity, Identity::Anonymous) && !state.config.anonymous_pull {
            return Err(
                Error::Unauthenticated { message: "authentication required to list repositories".into() }.into()
            );
        }
        return Ok(Grant::default());
    };
    let action = action_for(route, method).unwrap_or(Action::Pull);
    if let (OciRoute::Upload(_, id), Some(signed)) = (route, signed_upload) {
        if !signed {
            return Err(Error::not_found(Resource::Upload, id.chars().take(40).collect::<String>()).into());
        }
        // The signature binds the session to this repository; a client that dropped Authorization on the
        // location we handed it is let through on the signature alone.
        if matches!(identity, Identity::Anonymous) {
            return Ok(Grant::default());
        }
    }
    require(state, identity, repo, action).await?;
    let mut grant = Grant::default();
    if let (OciRoute::UploadStart(_), Some((_, from))) = (route, &params.mount)
        && allowed(state, identity, from, Action::Pull).await?
    {
        grant.mount_from = Some(from.clone());
    }
    Ok(grant)
}

/// Refuses unless `identity` may do `action` on `repo`.
async fn require(
    state: &AppState,
    identity: &Identity,
    repo: &RepositoryName,
    action: Action,
) -> std::result::Result<(), Refusal> {
    if allowed(state, identity, repo, action).await? {
        return Ok(());
    }
    let what = format!("{} on {repo}", action.as_str());
    Err(match identity {
        Identity::Anonymous => Error::Unauthenticated { message: format!("authentication required for {what}") }.into(),
        // A session token without the scope: the client may ask the token endpoint again for it (which
        // grants it only if the credentials behind the token allow it).
        Identity::Token(Claims { kind: TokenKind::Session, sub, acct: None, .. }) if sub == ANONYMOUS_SUBJECT => {
            Error::Unauthenticated { message: format!("authentication required for {what}") }.into()
        }
        Identity::Token(Claims { kind: TokenKind::Session, .. }) if !token_covers(identity, repo, action) => Refusal {
            error: Error::Unauthenticated { message: format!("the token does not allow {what}") },
            insufficient_scope: true,
        },
        _ => Error::Denied { message: format!("{what} is not allowed for these credentials") }.into(),
    })
}

fn token_covers(identity: &Identity, repo: &RepositoryName, action: Action) -> bool {
    match identity {
        Identity::Token(claims) => claims
            .access
            .iter()
            .any(|a| a.allows(repo.as_str(), action.as_str()) || glob_access_allows(a, action, repo.as_str())),
        _ => false,
    }
}

/// Whether `identity` may do `action` on `repo`.
pub async fn allowed(state: &AppState, identity: &Identity, repo: &RepositoryName, action: Action) -> Result<bool> {
    match identity {
        Identity::User(principal) => Ok(principal.may(action, repo.as_str())),
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

/// Every action `identity` may do on `repo` (what the token endpoint intersects a request with).
pub async fn allowed_actions(state: &AppState, identity: &Identity, repo: &RepositoryName) -> Result<Actions> {
    let mut out = Actions::NONE;
    for action in Action::ALL {
        if allowed(state, identity, repo, action).await? {
            out = out.union(Actions::of(&[action]));
        }
    }
    Ok(out)
}
