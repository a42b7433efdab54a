//! # regbridge
//!
//! One API over the container registries of AWS (ECR), Google Cloud (Artifact Registry), Azure (ACR),
//! generic OCI registries and an embedded local registry.
//!
//! This crate holds what every provider and the proxy share and nothing that talks HTTP or a cloud SDK:
//! the [`ArtifactRegistry`] trait and its types, the [`Error`] type with its OCI mapping, OCI primitives
//! ([`oci`]), Docker credential formats ([`auth`]), the [`Secret`] type, and (feature `conformance`) the
//! contract checks every provider's tests run.

#![warn(missing_docs)]

pub mod auth;
#[cfg(feature = "conformance")]
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
