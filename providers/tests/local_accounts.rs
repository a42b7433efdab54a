//! `LocalRegistry::with_account` is a tenant boundary in management calls: a provider acting as one
//! account may not create over, delete, grant on or mint for a repository another account owns.

use std::sync::Arc;
use std::time::Duration;

use regbridge::{ArtifactRegistry, CrossAccountPermissions, Error, Permissions};
use regbridge_providers::local::{FsStorage, LocalRegistry, TokenSigner};

fn denied(r: regbridge::Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(e @ Error::Denied { .. }) => e.to_string(),
        other => panic!("expected Denied, got {other:?}"),
    }
}

#[tokio::test]
async fn an_account_manages_only_its_own_repositories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = Arc::new(FsStorage::open(dir.path().join("storage")).expect("storage"));
    let signer = TokenSigner::new(&[7u8; 64]).expect("signer");
    let base = LocalRegistry::new(storage, signer, "http://127.0.0.1:5000");
    let a = base.clone().with_account("a");
    let b = base.with_account("b");
    let hour = Duration::from_secs(3600);

    a.create_repository("a/app").await.expect("a creates");
    a.create_repository("a/app").await.expect("creating again is idempotent for the owner");
    a.generate_credentials("a/app", Permissions::PushPull, hour).await.expect("the owner mints");

    // The hostile account: every management call on a's repository is refused, and nothing changes.
    let err = denied(b.create_repository("a/app").await);
    assert!(err.contains("\"b\"") && err.contains("a/app"), "{err}");
    denied(b.delete_repository("a/app").await);
    denied(b.generate_credentials("a/app", Permissions::Pull, hour).await);
    denied(b.add_cross_account_access("a/app", &CrossAccountPermissions::local(["b"], Permissions::PushPull)).await);
    denied(b.remove_cross_account_access("a/app", &CrossAccountPermissions::local(["c"], Permissions::Pull)).await);
    assert!(a.get_cross_account_access("a/app").await.expect("grants").is_empty());
    a.get_repository("a/app").await.expect("still there");

    // A pull grant lets b mint pull credentials, and no more; it still may not delete or re-grant.
    a.add_cross_account_access("a/app", &CrossAccountPermissions::local(["b"], Permissions::Pull)).await.unwrap();
    let creds = b.generate_credentials("a/app", Permissions::Pull, hour).await.expect("granted pull");
    assert_eq!(creds.username, "b");
    denied(b.generate_credentials("a/app", Permissions::PushPull, hour).await);
    denied(b.delete_repository("a/app").await);
    denied(b.add_cross_account_access("a/app", &CrossAccountPermissions::local(["b"], Permissions::PushPull)).await);

    a.delete_repository("a/app").await.expect("the owner deletes");
}
