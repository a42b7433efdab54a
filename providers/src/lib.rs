//! Implementations of [`regbridge::ArtifactRegistry`]: the embedded local registry, generic OCI registries
//! and, behind cargo features, AWS ECR, Google Artifact Registry and Azure Container Registry.
//!
//! # Quick start
//!
//! Every provider implements the same [`regbridge::ArtifactRegistry`]: create a repository, grant other
//! accounts, mint short-lived credentials for it.
//!
//! ```no_run
//! # async fn demo() -> regbridge::Result<()> {
//! use std::time::Duration;
//! use regbridge::{ArtifactRegistry, CrossAccountPermissions, Permissions};
//! use regbridge_providers::local::{FsStorage, LocalRegistry, TokenSigner};
//!
//! let storage = std::sync::Arc::new(FsStorage::open("/var/lib/regbridge/storage")?);
//! let signer = TokenSigner::load_or_create("/var/lib/regbridge/signing.key".as_ref())?;
//! let registry = LocalRegistry::new(storage, signer, "https://registry.example.com").with_account("team-a");
//! registry.create_repository("team-a/app").await?;
//! registry.add_cross_account_access("team-a/app", &CrossAccountPermissions::local(["ci"], Permissions::Pull)).await?;
//! let creds = registry.generate_credentials("team-a/app", Permissions::PushPull, Duration::from_secs(900)).await?;
//! println!("docker login -u {} registry.example.com (until {})", creds.username, creds.expires_at);
//! # Ok(()) }
//! ```
//!
//! The cloud providers are built the same way (`EcrRegistry::builder()`, `GarRegistry::builder()`,
//! `AcrRegistry::builder()`, each with `from_env()` reading the standard variables); to build them from the
//! server's route configuration or a URL such as `ecr://123456789012/us-east-1/team`, use
//! `regbridge_proxy::factory`. The examples (`cargo run -p regbridge-providers --example local_provider`,
//! `--example credential_formats`) run these steps end to end.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "acr")]
#[cfg_attr(docsrs, doc(cfg(feature = "acr")))]
pub mod acr;
#[cfg(feature = "ecr")]
#[cfg_attr(docsrs, doc(cfg(feature = "ecr")))]
pub mod ecr;
#[cfg(feature = "gar")]
#[cfg_attr(docsrs, doc(cfg(feature = "gar")))]
pub mod gar;
#[cfg(feature = "generic")]
#[cfg_attr(docsrs, doc(cfg(feature = "generic")))]
pub mod generic;
pub mod http;
#[cfg(feature = "local")]
#[cfg_attr(docsrs, doc(cfg(feature = "local")))]
pub mod local;
