//! The local provider from a library: create a repository, grant another account pull, mint credentials
//! for it, and verify them with the signing key the server checks them with.
//!
//! `cargo run -p regbridge-providers --example local_provider`

use std::sync::Arc;
use std::time::Duration;

use regbridge::{ArtifactRegistry, CrossAccountPermissions, Permissions};
use regbridge_providers::local::{FsStorage, LocalRegistry, TokenSigner};

#[tokio::main]
async fn main() -> regbridge::Result<()> {
    // A server's data directory holds `storage/` and `signing.key`; here a fresh one in a temp dir.
    let dir = tempfile::tempdir().map_err(|e| regbridge::Error::internal("temp dir", e))?;
    let storage = Arc::new(FsStorage::open(dir.path().join("storage"))?);
    let signer = TokenSigner::load_or_create(&dir.path().join("signing.key"))?;
    let registry = LocalRegistry::new(storage, signer.clone(), "http://127.0.0.1:5000").with_account("team-a");

    let repo = registry.create_repository("team-a/app").await?;
    println!("created {} ({})", repo.name, repo.uri);

    // Account team-b may pull; the grant is checked on every request, so removing it takes effect at once.
    registry
        .add_cross_account_access("team-a/app", &CrossAccountPermissions::local(["team-b"], Permissions::Pull))
        .await?;
    let grants = registry.get_cross_account_access("team-a/app").await?;
    assert_eq!(grants, vec![CrossAccountPermissions::local(["team-b"], Permissions::Pull)]);
    println!("grants: {}", serde_json::to_string(&grants).expect("grants serialise"));

    // team-b mints its own pull credentials; a push would be refused.
    let team_b = registry.clone().with_account("team-b");
    let creds = team_b.generate_credentials("team-a/app", Permissions::Pull, Duration::from_secs(900)).await?;
    assert!(team_b.generate_credentials("team-a/app", Permissions::PushPull, Duration::from_secs(900)).await.is_err());
    println!("minted for {} until {} (password {})", creds.username, creds.expires_at, creds.password);

    // What the server does with the password: verify the signature, then read what it allows.
    let claims = signer.verify(creds.password.expose())?;
    assert_eq!(claims.acct.as_deref(), Some("team-b"));
    assert!(claims.access.iter().all(|a| a.name == "team-a/app" && a.actions == ["pull"]));
    println!(
        "verified: account {:?} may {:?}",
        claims.acct,
        claims.access.iter().map(|a| &a.actions).collect::<Vec<_>>()
    );
    Ok(())
}
