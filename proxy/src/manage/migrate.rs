//! Copying one storage into another, for `regbridge migrate`: every repository with its metadata, the blobs
//! it links, its manifests and its tags, through the [`Storage`] trait (so any backend to any backend), with
//! the source enumerated through [`Collectable`].
//!
//! Each repository is copied in the order a client pushes: metadata, blobs, manifests (children of an
//! index before the index), tags; so the destination is consistent at every moment, and a run that stops
//! half-way leaves only complete objects. Everything is checked for on the destination before it is
//! written, so running again copies only what is missing. Blob bytes are streamed from the source into the
//! destination's upload session and verified by its `finish_upload` against the digest: a corrupted source
//! blob stops the run, and nothing is stored under its digest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::TryStreamExt;

use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{Error, OciErrorCode, Result};
use regbridge_providers::local::gc::Collectable;
use regbridge_providers::local::manifest;
use regbridge_providers::local::storage::{ByteStream, ReferrerDescriptor, RepositoryMeta};
use regbridge_providers::local::{References, Storage, StoredManifest};
use serde::Serialize;

/// How many things of one kind were written to the destination, and how many were there already.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Written by this run.
    pub copied: u64,
    /// Already on the destination, as on the source.
    pub skipped: u64,
}

/// The blobs of a run: a blob linked into several repositories counts once per repository.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct BlobCounts {
    /// Uploaded (their bytes streamed and verified).
    pub copied: u64,
    /// Linked into a repository from another one of the destination that has the content (no bytes sent).
    pub mounted: u64,
    /// Already in the repository on the destination.
    pub skipped: u64,
}

/// What `regbridge migrate` did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MigrateReport {
    /// The source storage (its URL, no credentials).
    pub from: String,
    /// The destination storage.
    pub to: String,
    /// Repositories created or whose metadata (owner, grants) was updated, and those already equal.
    pub repositories: Counts,
    /// Blob links into repositories.
    pub blobs: BlobCounts,
    /// Bytes uploaded (`copied`), and bytes of blobs skipped or mounted (`skipped`).
    pub bytes: Counts,
    /// Manifests, by digest.
    pub manifests: Counts,
    /// Tags pointed at their source's manifest, and those already pointing there.
    pub tags: Counts,
}

/// How far the blobs are, for a progress line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Blob links handled (copied, mounted or skipped).
    pub blobs_done: u64,
    /// Blob links of every repository.
    pub blobs_total: u64,
    /// Bytes of the blobs handled.
    pub bytes_done: u64,
    /// Bytes of every blob link.
    pub bytes_total: u64,
}

/// Where progress is shown: called after every blob, and every [`PROGRESS_STEP`] bytes within one.
pub type ShowProgress = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How many bytes of a blob are sent between two progress calls.
pub const PROGRESS_STEP: u64 = 8 << 20;

/// The progress so far, and where it is shown.
struct Meter {
    show: ShowProgress,
    done: Progress,
}

/// One repository of the source, as read before copying.
struct Planned {
    name: RepositoryName,
    meta: RepositoryMeta,
    /// Its blobs and their sizes.
    blobs: Vec<(Digest, u64)>,
}

/// Copies everything `from` holds into `to`, showing its progress with `show`. `names` (the source's and
/// the destination's URLs) go into the report.
pub async fn migrate(
    from: &dyn Storage,
    to: &dyn Storage,
    names: (String, String),
    show: ShowProgress,
) -> Result<MigrateReport> {
    let source = from
        .collectable()
        .ok_or_else(|| Error::bad_input("the source storage cannot enumerate its blobs and manifests"))?;
    let plan = plan(from, source).await?;
    let mut report = MigrateReport { from: names.0, to: names.1, ..MigrateReport::default() };
    let done = Progress {
        blobs_total: plan.iter().map(|r| r.blobs.len() as u64).sum(),
        bytes_total: plan.iter().flat_map(|r| &r.blobs).map(|(_, size)| size).sum(),
        ..Progress::default()
    };
    let mut meter = Meter { show, done };
    (meter.show)(&meter.done);
    // A repository of the destination that has each blob's content, for mounts.
    let mut placed: BTreeMap<Digest, RepositoryName> = BTreeMap::new();
    for repo in &plan {
        copy_repository(to, repo, &mut report).await?;
        for blob in &repo.blobs {
            copy_blob(from, to, &repo.name, blob, &meter, &mut placed, &mut report).await?;
            meter.done.blobs_done += 1;
            meter.done.bytes_done += blob.1;
            (meter.show)(&meter.done);
        }
        copy_manifests(from, source, to, &repo.name, &mut report).await?;
        copy_tags(from, to, &repo.name, &mut report).await?;
    }
    Ok(report)
}

/// Every repository of the source with its metadata and blobs. Entries listed, then gone, are left out.
async fn plan(from: &dyn Storage, source: &dyn Collectable) -> Result<Vec<Planned>> {
    let mut plan = Vec::new();
    for name in from.list_repositories().await? {
        let name = RepositoryName::parse(&name)?;
        let Some(meta) = from.repository(&name).await? else { continue };
        let mut blobs = Vec::new();
        for digest in source.blob_links(&name).await? {
            if let Some(size) = from.blob_size(&name, &digest).await? {
                blobs.push((digest, size));
            }
        }
        plan.push(Planned { name, meta, blobs });
    }
    Ok(plan)
}

/// Creates the repository on `to`, or makes its owner, grants and creation time those of the source.
async fn copy_repository(to: &dyn Storage, repo: &Planned, report: &mut MigrateReport) -> Result<()> {
    if to.repository(&repo.name).await?.as_ref() == Some(&repo.meta) {
        report.repositories.skipped += 1;
        return Ok(());
    }
    to.create_repository(&repo.name, &repo.meta.owner).await?;
    let meta = repo.meta.clone();
    to.update_repository(
        &repo.name,
        Box::new(move |m| {
            m.owner = meta.owner.clone();
            m.created_at = meta.created_at;
            m.grants = meta.grants.clone();
        }),
    )
    .await?;
    report.repositories.copied += 1;
    Ok(())
}

/// Makes blob `digest` readable in `repo` on `to`: already there, mounted from a repository of `to` that
/// has the content, or uploaded from `from` and verified.
async fn copy_blob(
    from: &dyn Storage,
    to: &dyn Storage,
    repo: &RepositoryName,
    (digest, size): &(Digest, u64),
    meter: &Meter,
    placed: &mut BTreeMap<Digest, RepositoryName>,
    report: &mut MigrateReport,
) -> Result<()> {
    let size = *size;
    if to.blob_size(repo, digest).await?.is_some() {
        report.blobs.skipped += 1;
        report.bytes.skipped += size;
    } else if let Some(other) = placed.get(digest)
        && to.mount_blob(repo, other, digest).await?
    {
        report.blobs.mounted += 1;
        report.bytes.skipped += size;
    } else {
        upload(from, to, repo, digest, meter).await?;
        report.blobs.copied += 1;
        report.bytes.copied += size;
    }
    placed.entry(digest.clone()).or_insert_with(|| repo.clone());
    Ok(())
}

/// Streams blob `digest` of `repo` from `from` into an upload session of `to`, whose `finish_upload`
/// checks the bytes against the digest (and discards them when they do not match). Progress is shown as
/// the bytes pass.
async fn upload(
    from: &dyn Storage,
    to: &dyn Storage,
    repo: &RepositoryName,
    digest: &Digest,
    meter: &Meter,
) -> Result<()> {
    let read = from.read_blob(repo, digest, None).await?;
    let id = to.start_upload(repo).await?;
    let (show, before) = (meter.show.clone(), meter.done);
    let (mut sent, mut shown) = (0u64, 0u64);
    let body: ByteStream = Box::pin(read.body.inspect_ok(move |chunk| {
        sent += chunk.len() as u64;
        if sent - shown >= PROGRESS_STEP {
            shown = sent;
            show(&Progress { bytes_done: before.bytes_done + sent, ..before });
        }
    }));
    if let Err(e) = to.append_upload(repo, &id, None, body).await {
        let _ = to.cancel_upload(repo, &id).await;
        return Err(e);
    }
    match to.finish_upload(repo, &id, digest).await {
        Ok(_) => Ok(()),
        Err(Error::DigestInvalid { actual, .. }) => Err(Error::invalid(
            OciErrorCode::DigestInvalid,
            format!(
                "repository {repo}: blob {digest}: the source's bytes hash to {actual}; the source copy is \
                 corrupted and nothing was stored under {digest} (restore the blob, or delete what uses it, \
                 and run migrate again)"
            ),
        )),
        Err(e) => Err(e),
    }
}

/// Copies the manifests of `repo` missing on `to`, each after the manifests it references.
async fn copy_manifests(
    from: &dyn Storage,
    source: &dyn Collectable,
    to: &dyn Storage,
    repo: &RepositoryName,
    report: &mut MigrateReport,
) -> Result<()> {
    // Each manifest missing on `to`.
    let mut pending: Vec<Prepared> = Vec::new();
    for digest in source.manifest_digests(repo).await? {
        let reference = Reference::Digest(digest);
        if to.get_manifest(repo, &reference).await?.is_some() {
            report.manifests.skipped += 1;
            continue;
        }
        if let Some(stored) = from.get_manifest(repo, &reference).await? {
            pending.push(prepare(repo, stored)?);
        }
    }
    // Children first: a round stores every manifest whose children are not pending any more. A round that
    // stores none (a child missing from the source too) stores the rest anyway, to fail naming it.
    while !pending.is_empty() {
        let waiting: BTreeSet<Digest> = pending.iter().map(|p| p.stored.digest.clone()).collect();
        let (ready, later): (Vec<_>, Vec<_>) =
            pending.into_iter().partition(|p| !p.references.manifests.iter().any(|m| waiting.contains(m)));
        let (ready, later) = if ready.is_empty() { (later, Vec::new()) } else { (ready, later) };
        for manifest in &ready {
            put(to, repo, manifest, None).await?;
            report.manifests.copied += 1;
        }
        pending = later;
    }
    Ok(())
}

/// Points every tag of `repo` on `to` at the manifest it names on `from`.
async fn copy_tags(
    from: &dyn Storage,
    to: &dyn Storage,
    repo: &RepositoryName,
    report: &mut MigrateReport,
) -> Result<()> {
    for tag in from.list_tags(repo).await? {
        let tag = Tag::parse(&tag)?;
        let reference = Reference::Tag(tag.clone());
        let Some(stored) = from.get_manifest(repo, &reference).await? else { continue };
        let there = to.get_manifest(repo, &reference).await?;
        if there.is_some_and(|m| m.digest == stored.digest) {
            report.tags.skipped += 1;
        } else {
            put(to, repo, &prepare(repo, stored)?, Some(&tag)).await?;
            report.tags.copied += 1;
        }
    }
    Ok(())
}

/// A manifest of the source, parsed once: what storing it needs.
struct Prepared {
    stored: StoredManifest,
    references: References,
    referrer: Option<ReferrerDescriptor>,
}

/// Parses `stored` (a manifest of `repo` on the source) and checks its bytes against its digest.
fn prepare(repo: &RepositoryName, stored: StoredManifest) -> Result<Prepared> {
    let context = |message: &dyn std::fmt::Display| format!("repository {repo}: manifest {}: {message}", stored.digest);
    if Digest::of(stored.digest.algorithm(), &stored.bytes) != stored.digest {
        return Err(Error::invalid(OciErrorCode::DigestInvalid, context(&"the source's bytes do not hash to it")));
    }
    let parsed = manifest::parse(Some(&stored.media_type), &stored.bytes).map_err(|e| Error::bad_input(context(&e)))?;
    let referrer = parsed.subject.as_ref().map(|_| parsed.referrer(&stored.digest, stored.bytes.len() as u64));
    let references = References { blobs: parsed.blobs, manifests: parsed.manifests };
    Ok(Prepared { stored, references, referrer })
}

/// Stores `manifest` in `repo` on `to` as it was pushed to the source (under its own digest, whatever the
/// algorithm), with its references and referrer, and tags it when `tag` is given.
async fn put(to: &dyn Storage, repo: &RepositoryName, manifest: &Prepared, tag: Option<&Tag>) -> Result<()> {
    let Prepared { stored, references, referrer } = manifest;
    to.put_manifest(repo, stored, references, referrer.clone(), tag).await.map_err(|e| match e {
        Error::InvalidInput { code, message } => {
            Error::invalid(code, format!("repository {repo}: manifest {}: {message}", stored.digest))
        }
        other => other,
    })
}
