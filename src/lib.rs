//! # regbridge
//!
//! One API over the container registries of AWS (ECR), Google Cloud (Artifact Registry), Azure (ACR),
//! generic OCI registries and an embedded local registry.
//!
//! This crate holds what every provider and the proxy share and nothing that talks HTTP or a cloud SDK:
//! the [`ArtifactRegistry`] trait and its types, the [`Error`] type with its OCI mapping, OCI primitives
//! ([`oci`]), Docker credential formats ([`auth`]), the [`Secret`] type, and (feature `conformance`) the
//! contract checks every provider's tests run.
//!
//! # Quick start
//!
//! The providers live in `regbridge-providers` (local and generic by default; `ecr`, `gar`, `acr` as
//! features), the server and the factory building any provider from configuration in `regbridge-proxy`.
//! A control plane writes against the trait, whichever cloud is behind it:
//!
//! ```
//! use std::time::Duration;
//! use regbridge::auth::docker_config::{AuthEntry, DockerConfig};
//! use regbridge::auth::server::ServerAddress;
//! use regbridge::{ArtifactRegistry, CrossAccountPermissions, Permissions};
//!
//! /// Creates `name`, lets AWS account 123456789012 pull it, and returns a Docker config to push with.
//! async fn provision(registry: &dyn ArtifactRegistry, name: &str) -> regbridge::Result<String> {
//!     let repo = registry.create_repository(name).await?;
//!     registry.add_cross_account_access(&repo.name, &CrossAccountPermissions::aws_pull(["123456789012"])).await?;
//!     let creds = registry.generate_credentials(&repo.name, Permissions::PushPull, Duration::from_secs(900)).await?;
//!     let server = ServerAddress::parse(&registry.registry_endpoint())?;
//!     Ok(DockerConfig::with_login(&server, AuthEntry::basic(&creds.username, &creds.password)).to_json())
//! }
//! ```
//!
//! Credentials also come as an `X-Registry-Auth` header ([`auth::x_registry_auth`]) and a Kubernetes
//! pull secret ([`auth::kubernetes`]).

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod auth;
#[cfg(feature = "conformance")]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
pub mod conformance;
pub mod error;
pub mod oci;
mod registry;
pub mod secret;
pub mod types;

pub use error::{Error, OciErrorCode, OciErrorEnvelope, Resource, Result};
pub use registry::{ArtifactRegistry, DynArtifactRegistry};
pub use secret::Secret;
pub use types::{
    AuthMethod, ComputeServiceType, Credentials, CrossAccountAccess, CrossAccountPermissions, Manifest,
    ManifestDescriptor, Page, Permissions, Repository, RepositoryPage,
};
