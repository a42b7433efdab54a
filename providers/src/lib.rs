//! Implementations of [`regbridge::ArtifactRegistry`]: the embedded local registry, generic OCI registries
//! and, behind cargo features, AWS ECR, Google Artifact Registry and Azure Container Registry.

#![warn(missing_docs)]

#[cfg(feature = "acr")]
pub mod acr;
#[cfg(feature = "ecr")]
pub mod ecr;
#[cfg(feature = "gar")]
pub mod gar;
#[cfg(feature = "generic")]
pub mod generic;
pub mod http;
#[cfg(feature = "local")]
pub mod local;
