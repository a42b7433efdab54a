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
