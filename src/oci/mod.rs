//! OCI primitives: digests, repository names and tags, references and media types.

pub mod digest;
pub mod media_types;
pub mod name;
pub mod reference;

pub use digest::{Algorithm, Digest, Digester};
pub use name::{RepositoryName, Tag};
/// A full image reference (`registry/repository:tag@digest`), parsed by `oci-spec`.
pub use oci_spec::distribution::Reference as ImageReference;
pub use reference::Reference;

/// The largest manifest stored, forwarded or read whole, in bytes: the distribution spec's suggested limit
/// (`spec.md`, "Pushing Manifests"), which registries apply. Every limit on manifests is this one.
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;
