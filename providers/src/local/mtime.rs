//! Modification times, which gc reads to tell fresh content from stale: how long ago a file changed, and
//! refreshing a blob that a push reuses.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// How long ago the file or directory `meta` describes was last modified (zero for the future).
pub(crate) fn idle(meta: &std::fs::Metadata) -> Duration {
    meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok()).unwrap_or_default()
}

/// Refreshes the modification time of the blob at `path`, so a collection running now spares it.
pub(crate) fn touch(path: &Path) {
    if let Ok(file) = std::fs::File::options().write(true).open(path) {
        let _ = file.set_modified(SystemTime::now());
    }
}
