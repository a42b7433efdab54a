//! Where everything lives in the bucket. Every key is built here from validated names, digests and ids
//! (names and tags never hold characters `object_store` would escape), so no client-chosen text reaches
//! a key unchecked.
//!
//! ```text
//! <prefix>/blobs/<alg>/<hex>                                  content, verified before it appears
//! <prefix>/catalog/<name>                                     one key per repository: its metadata
//! <prefix>/repositories/<name>/_layers/<alg>/<hex>            the blobs this repository may read
//! <prefix>/repositories/<name>/_manifests/<alg>/<hex>         {mediaType, subject} of its manifests
//! <prefix>/repositories/<name>/_tags/<tag>                    the digest a tag points at (empty: deleted)
//! <prefix>/repositories/<name>/_referrers/<alg>/<subject hex>/<alg>-<hex>   referrer descriptors
//! <prefix>/uploads/<id>/state                                 an upload session (see `upload`)
//! <prefix>/uploads/<id>/data                                  its multipart target, then the staged blob
//! <prefix>/uploads/<id>/tail/<uuid>                           bytes not yet making a whole part
//! <prefix>/gc/intents/<uuid>, <prefix>/gc/sweeps/<uuid>       the gc fence (`super::super::fence`)
//! <prefix>/seen/<2 hex>                                       recent events replicas share (`super::seen`)
//! <prefix>/gc/lease                                           one collector at a time (`gc::lease`)
//! ```
//!
//! Repository components never start with `_`, so `_tags` and friends cannot collide with a nested
//! repository; `catalog/` holds only repositories, so its ordered listing is the catalog.

use object_store::path::Path;
use regbridge::oci::{Digest, RepositoryName};
use regbridge::{Error, Resource, Result};

/// The key builder of one storage root.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    root: Path,
}

impl Keys {
    /// Keys under `prefix` (`""` for the bucket's root; slashes separate levels).
    pub(super) fn new(prefix: &str) -> Self {
        Self { root: Path::from(prefix) }
    }

    fn under(&self, rest: &str) -> Path {
        let mut path = self.root.clone();
        for part in rest.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    pub(super) fn blob(&self, d: &Digest) -> Path {
        self.under(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()))
    }

    pub(super) fn catalog(&self) -> Path {
        self.under("catalog")
    }

    pub(super) fn meta(&self, repo: &RepositoryName) -> Path {
        self.under(&format!("catalog/{repo}"))
    }

    fn repo(&self, repo: &RepositoryName, rest: &str) -> Path {
        self.under(&format!("repositories/{repo}/{rest}"))
    }

    /// The per-repository prefixes `delete_repository` clears (not nested repositories below it).
    pub(super) fn repo_contents(&self, repo: &RepositoryName) -> [Path; 4] {
        ["_tags", "_manifests", "_referrers", "_layers"].map(|sub| self.repo(repo, sub))
    }

    pub(super) fn layer(&self, repo: &RepositoryName, d: &Digest) -> Path {
        self.repo(repo, &format!("_layers/{}/{}", d.algorithm().as_str(), d.hex()))
    }

    pub(super) fn manifest(&self, repo: &RepositoryName, d: &Digest) -> Path {
        self.repo(repo, &format!("_manifests/{}/{}", d.algorithm().as_str(), d.hex()))
    }

    pub(super) fn tags(&self, repo: &RepositoryName) -> Path {
        self.repo(repo, "_tags")
    }

    pub(super) fn tag(&self, repo: &RepositoryName, tag: &str) -> Path {
        self.tags(repo).join(tag)
    }

    pub(super) fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Path {
        self.repo(repo, &format!("_referrers/{}/{}", subject.algorithm().as_str(), subject.hex()))
    }

    pub(super) fn referrer(&self, repo: &RepositoryName, subject: &Digest, d: &Digest) -> Path {
        self.referrers(repo, subject).join(format!("{}-{}", d.algorithm().as_str(), d.hex()))
    }

    /// The directory of upload `id`; only ids shaped like the uuids we issue become keys.
    pub(super) fn upload(&self, id: &str) -> Result<Path> {
        if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(Error::not_found(Resource::Upload, id));
        }
        Ok(self.under("uploads").join(id))
    }

    pub(super) fn gc_intent(&self, name: &str) -> Path {
        self.gc_intents().join(name)
    }

    pub(super) fn gc_intents(&self) -> Path {
        self.under("gc/intents")
    }

    pub(super) fn gc_sweeps(&self) -> Path {
        self.under("gc/sweeps")
    }

    /// The slot of events whose names start with `two_hex` (checked by the caller: two hex digits).
    pub(super) fn seen_slot(&self, two_hex: &str) -> Path {
        self.under("seen").join(two_hex)
    }

    pub(super) fn gc_sweep(&self, name: &str) -> Path {
        self.gc_sweeps().join(name)
    }

    /// The collector lease (`crate::local::gc::lease`).
    pub(super) fn gc_lease(&self) -> Path {
        self.under("gc/lease")
    }

    /// Where all content lives, for gc's listing.
    pub(super) fn blobs(&self) -> Path {
        self.under("blobs")
    }

    /// Where all upload sessions live, for gc's listing.
    pub(super) fn uploads(&self) -> Path {
        self.under("uploads")
    }

    /// The manifest links of `repo` (not of nested repositories).
    pub(super) fn manifests(&self, repo: &RepositoryName) -> Path {
        self.repo(repo, "_manifests")
    }

    /// The blob links of `repo` (not of nested repositories).
    pub(super) fn layers(&self, repo: &RepositoryName) -> Path {
        self.repo(repo, "_layers")
    }

    /// Where all repositories' links live, for gc's one listing of every blob link.
    pub(super) fn repositories(&self) -> Path {
        self.under("repositories")
    }
}

/// The text after `prefix/` in `location`, when `location` is below `prefix`.
pub(super) fn relative(location: &Path, prefix: &Path) -> Option<String> {
    let parts: Vec<String> = location.prefix_match(prefix)?.map(|p| p.as_ref().to_owned()).collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}
