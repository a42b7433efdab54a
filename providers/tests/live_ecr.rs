//! The ECR provider against a real AWS account (cargo feature `live`), run only when
//! `REGBRIDGE_LIVE_ECR=region/account/prefix` is set, with the standard AWS credential chain:
//!
//! * the trait's conformance suite, on repositories named `{prefix}/regbridge-live-<run>-...`, every one
//!   of which is deleted afterwards, whether the suite passed or not;
//! * with `REGBRIDGE_LIVE_SLOW=1` (and a pull role), whether an ECR authorization token keeps working
//!   after the STS session it was minted with has expired, which AWS does not document: the answer is
//!   printed, not asserted (about 16 minutes).
//!
//! Optional: `REGBRIDGE_LIVE_ECR_PULL_ROLE` and `REGBRIDGE_LIVE_ECR_PUSH_ROLE` (role ARNs regbridge's
//! identity may assume), `REGBRIDGE_LIVE_ECR_MAX_SESSION` (the roles' `MaxSessionDuration` in seconds,
//! default 3600).
#![cfg(feature = "live")]

// tests/support/live.rs, without a support/mod.rs shared by every live file.
mod support {
    pub mod live;
}

use std::time::Duration;

use regbridge::conformance::{self, Capabilities};
use regbridge::{ArtifactRegistry, CrossAccountAccess, CrossAccountPermissions, Permissions};
use regbridge_providers::ecr::EcrRegistry;
use support::live;

const VAR: &str = "REGBRIDGE_LIVE_ECR";

struct Account {
    reg: EcrRegistry,
    prefix: String,
    pull_role: Option<String>,
    push_role: Option<String>,
}

async fn account(test: &str) -> Option<Account> {
    let settings = live::settings(test, VAR, &["region", "account", "prefix"])?;
    let [region, account, prefix] = <[String; 3]>::try_from(settings).expect("three fields");
    let pull_role = live::optional("REGBRIDGE_LIVE_ECR_PULL_ROLE");
    let push_role = live::optional("REGBRIDGE_LIVE_ECR_PUSH_ROLE");
    let mut builder = EcrRegistry::builder().with_region(&region).with_account(&account).with_prefix(&prefix);
    if let Some(role) = &pull_role {
        builder = builder.with_pull_role_arn(role);
    }
    if let Some(role) = &push_role {
        builder = builder.with_push_role_arn(role);
    }
    let reg = builder.build().await.unwrap_or_else(|e| panic!("{VAR}: the ECR provider did not build: {e}"));
    Some(Account { reg, prefix, pull_role, push_role })
}

/// Deletes every repository whose name starts with `{prefix}/{run}`, printing what it could not delete.
async fn clean_up(acct: &Account, run: &str) {
    let start = format!("{}/{run}", acct.prefix);
    match acct.reg.repositories_with_prefix(&start).await {
        Ok(names) => {
            for name in names {
                match acct.reg.delete_repository(&name).await {
                    Ok(()) => eprintln!("live: deleted {name}"),
                    Err(e) => eprintln!("live: could not delete {name}: {e} (delete it by hand)"),
                }
            }
        }
        Err(e) => eprintln!("live: could not list repositories under {start}: {e} (delete them by hand)"),
    }
}

fn grant(access: CrossAccountAccess) -> CrossAccountPermissions {
    CrossAccountPermissions { access, permissions: Permissions::Pull }
}

#[tokio::test]
async fn ecr_conformance() {
    let Some(acct) = account("ecr conformance").await else { return };
    let run = live::run_prefix();
    let mut caps = Capabilities::new(&format!("{run}-"));
    caps.ttl_bounds = if acct.pull_role.is_some() || acct.push_role.is_some() {
        let max = live::optional("REGBRIDGE_LIVE_ECR_MAX_SESSION").map_or(3600, |s| s.parse().expect("seconds"));
        (Duration::from_secs(900), Duration::from_secs(max))
    } else {
        // Without roles the token is minted with the base credentials: 12 h, whatever the TTL.
        (Duration::from_secs(12 * 3600), Duration::from_secs(12 * 3600))
    };
    // Principals that exist (ECR refuses policies naming unknown ones): this account, and a role.
    if let Some(role) = acct.pull_role.clone().or_else(|| acct.push_role.clone()) {
        let aws = |accounts: &[&str], roles: Vec<String>| {
            grant(CrossAccountAccess::Aws {
                account_ids: accounts.iter().map(|a| a.to_string()).collect(),
                regions: Default::default(),
                allowed_service_types: Default::default(),
                role_arns: roles.into_iter().collect(),
            })
        };
        caps.grants = Some((aws(&[acct.reg.account()], vec![]), aws(&[], vec![role])));
    }
    let result = conformance::run_all(&acct.reg, &caps).await;
    clean_up(&acct, &run).await;
    result.unwrap();
}

#[tokio::test]
async fn ecr_token_after_the_session_expired() {
    if live::optional("REGBRIDGE_LIVE_SLOW").as_deref() != Some("1") {
        eprintln!("live: ecr token-after-session skipped: REGBRIDGE_LIVE_SLOW=1 is not set (it waits ~16 min)");
        return;
    }
    let Some(acct) = account("ecr token-after-session").await else { return };
    let Some(role) = acct.pull_role.clone() else {
        eprintln!("live: ecr token-after-session skipped: REGBRIDGE_LIVE_ECR_PULL_ROLE is not set");
        return;
    };
    let run = live::run_prefix();
    let outcome = token_outlives_session(&acct, &run, &role).await;
    clean_up(&acct, &run).await;
    outcome.unwrap();
}

/// Mints with the shortest session (900 s), waits until that session has expired (+60 s), and prints
/// what the registry answers to the token then.
async fn token_outlives_session(acct: &Account, run: &str, role: &str) -> Result<(), String> {
    let repo = acct.reg.create_repository(&format!("{run}-session")).await.map_err(|e| e.to_string())?;
    let creds = acct
        .reg
        .generate_credentials(&repo.name, Permissions::Pull, Duration::from_secs(900))
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("{}/v2/{}/tags/list", acct.reg.registry_endpoint(), repo.name);
    let http = reqwest::Client::new();
    let ask = || http.get(&url).basic_auth(&creds.username, Some(creds.password.expose())).send();
    let status = |r: reqwest::Result<reqwest::Response>| {
        r.map_or_else(|e| format!("no answer ({e})"), |r| r.status().to_string())
    };
    eprintln!("live: token from {role}: session and token expire at {} (min of both)", creds.expires_at);
    eprintln!("live: GET tags/list right after minting: {}", status(ask().await));
    let wake = creds.expires_at + chrono::Duration::seconds(60);
    // Bounded: the session lives at most 900 s (the TTL asked), so this waits at most ~16 minutes.
    for _ in 0..20 {
        let left = (wake - chrono::Utc::now()).to_std().unwrap_or_default();
        if left.is_zero() {
            break;
        }
        tokio::time::sleep(left.min(Duration::from_secs(60))).await;
    }
    eprintln!(
        "live: GET tags/list 60 s after the STS session expired: {} (200: the token outlived its session; \
         401/403: it did not). Report this in the README's ECR section.",
        status(ask().await)
    );
    Ok(())
}
