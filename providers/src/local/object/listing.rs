//! The catalog and tag listings: the store's ordered listing from an offset, so a page costs O(page)
//! requests plus a seek on S3 and GCS (`start-after` / `startOffset`) instead of a walk of everything.

use futures_util::StreamExt;
use object_store::ObjectMeta;
use object_store::path::Path;
use regbridge::oci::{RepositoryName, Tag};
use regbridge::{Error, Resource, Result};

use super::ObjectStorage;
use super::keys::relative;
use super::store::store_err;

/// Entries per request when a whole listing is wanted.
const FULL_PAGE: usize = 1000;

/// What to keep of an entry of a listing: its name, when it is a live entry.
type Accept = fn(&ObjectMeta, &str) -> bool;

impl ObjectStorage {
    /// Repository names after `after` (exclusive), at most `n`, sorted; and whether more follow.
    pub async fn repositories_after(&self, after: Option<&str>, n: usize) -> Result<(Vec<String>, bool)> {
        self.names_after(&self.keys.catalog(), after, n, |_, name| RepositoryName::parse(name).is_ok()).await
    }

    /// The tags of `repo` after `after` (exclusive), at most `n`, sorted; and whether more follow.
    /// Deleted tags (empty objects, see `manifests`) are skipped.
    pub async fn tags_after(
        &self,
        repo: &RepositoryName,
        after: Option<&str>,
        n: usize,
    ) -> Result<(Vec<String>, bool)> {
        self.names_after(&self.keys.tags(repo), after, n, |meta, name| meta.size > 0 && Tag::parse(name).is_ok()).await
    }

    pub(super) async fn all_repositories(&self) -> Result<Vec<String>> {
        let mut all = Vec::new();
        loop {
            let (page, more) = self.repositories_after(all.last().map(String::as_str), FULL_PAGE).await?;
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// `NotFound` unless `repo` exists: a listing of its tags answers that first.
    pub(super) async fn require_listed(&self, repo: &RepositoryName) -> Result<()> {
        if self.head_optional(&self.keys.meta(repo)).await?.is_none() {
            return Err(Error::not_found(Resource::Repository, repo.as_str()));
        }
        Ok(())
    }

    pub(super) async fn all_tags(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        self.require_listed(repo).await?;
        let mut all = Vec::new();
        loop {
            let (page, more) = self.tags_after(repo, all.last().map(String::as_str), FULL_PAGE).await?;
            all.extend(page);
            if !more {
                return Ok(all);
            }
        }
    }

    /// Names (keys relative to `prefix`) after `after`, in key order. S3, GCS, Azure and the in-memory store
    /// all list in key order; the stream is checked, and a store that does not falls back to reading and
    /// sorting everything, which is correct, only slower.
    async fn names_after(
        &self,
        prefix: &Path,
        after: Option<&str>,
        n: usize,
        accept: Accept,
    ) -> Result<(Vec<String>, bool)> {
        // `a/b` is listed after `a` (a key below it), `a-b` between them: key order is name order.
        let offset = after.map(seek_key).filter(|k| !k.is_empty()).map(|k| Path::from(format!("{prefix}/{k}")));
        let mut stream = match &offset {
            Some(offset) => self.bucket.list_with_offset(Some(prefix), offset),
            None => self.bucket.list(Some(prefix)),
        };
        let mut names: Vec<String> = Vec::new();
        let mut last: Option<Path> = None;
        while names.len() <= n {
            let Some(meta) = stream.next().await else { break };
            let meta = meta.map_err(|e| store_err("list", prefix, e))?;
            if last.as_ref().is_some_and(|l| meta.location <= *l) {
                drop(stream);
                return self.names_sorted(prefix, after, n, accept).await;
            }
            last = Some(meta.location.clone());
            // `after` comes from the client: the offset key may escape characters names never hold, so
            // the names themselves are compared too.
            if let Some(name) = relative(&meta.location, prefix)
                && accept(&meta, &name)
                && after.is_none_or(|a| name.as_str() > a)
            {
                names.push(name);
            }
        }
        let more = names.len() > n;
        names.truncate(n);
        Ok((names, more))
    }

    /// The same as [`Self::names_after`] for a store whose listing is not in order.
    async fn names_sorted(
        &self,
        prefix: &Path,
        after: Option<&str>,
        n: usize,
        accept: Accept,
    ) -> Result<(Vec<String>, bool)> {
        let mut stream = self.bucket.list(Some(prefix));
        let mut names = Vec::new();
        while let Some(meta) = stream.next().await {
            let meta = meta.map_err(|e| store_err("list", prefix, e))?;
            if let Some(name) = relative(&meta.location, prefix)
                && accept(&meta, &name)
                && after.is_none_or(|a| name.as_str() > a)
            {
                names.push(name);
            }
        }
        names.sort();
        let more = names.len() > n;
        names.truncate(n);
        Ok((names, more))
    }
}

/// The longest seek key used (in bytes), well under the stores' 1,024-byte key limit with the prefix.
const MAX_SEEK_KEY: usize = 512;

/// The longest leading part of `after` (a client's `last`) that is a key exactly as written: whole
/// segments of plain key characters. `Path` would escape other characters and drop empty segments, so the
/// seek could land past names that sort after `after` (`a//z` would seek to `a/z`, skipping `a/b`). A
/// prefix sorts before `after`, so nothing after it is skipped; the names are compared afterwards.
fn seek_key(after: &str) -> String {
    let legal =
        after.find(|c: char| !(c.is_ascii_alphanumeric() || "._-/".contains(c))).map_or(after, |end| &after[..end]);
    // Stores refuse keys over 1 KiB; names are far shorter, so a longer `after` seeks to a prefix.
    let legal = &legal[..legal.len().min(MAX_SEEK_KEY)];
    let whole: Vec<&str> = legal.split('/').take_while(|s| !s.is_empty() && *s != "." && *s != "..").collect();
    whole.join("/")
}

#[cfg(test)]
mod tests {
    use super::{MAX_SEEK_KEY, seek_key};

    #[test]
    fn the_seek_key_is_a_prefix_of_whole_segments() {
        assert_eq!(seek_key("a/b-c"), "a/b-c");
        assert_eq!(seek_key("a//z"), "a");
        assert_eq!(seek_key("a/./z"), "a");
        assert_eq!(seek_key("a/b%2Fz"), "a/b");
        assert_eq!(seek_key("a/B"), "a/B");
        assert_eq!(seek_key("a/B~"), "a/B");
        assert_eq!(seek_key(&"ab/".repeat(1000)).len(), MAX_SEEK_KEY);
        assert_eq!(seek_key("\u{0}x"), "");
        assert_eq!(seek_key("caf\u{e9}"), "caf");
        assert_eq!(seek_key("/a"), "");
    }
}
