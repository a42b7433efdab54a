//! A test store listing in reverse key order, as a store without ordered listings might.

use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartId, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// An in-memory store that lists in reverse key order.
#[derive(Debug)]
pub(super) struct Reversed(pub(super) InMemory);

impl std::fmt::Display for Reversed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reversed({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for Reversed {
    async fn put_opts(&self, p: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.0.put_opts(p, payload, opts).await
    }
    async fn put_multipart_opts(&self, p: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(p, opts).await
    }
    async fn get_opts(&self, p: &Path, options: GetOptions) -> Result<GetResult> {
        self.0.get_opts(p, options).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let inner = self.0.list(prefix);
        futures_util::stream::once(async move {
            let mut all: Vec<_> = inner.collect().await;
            all.reverse();
            futures_util::stream::iter(all)
        })
        .flatten()
        .boxed()
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[async_trait]
impl MultipartStore for Reversed {
    async fn create_multipart(&self, p: &Path) -> Result<MultipartId> {
        self.0.create_multipart(p).await
    }
    async fn put_part(&self, p: &Path, id: &MultipartId, idx: usize, data: PutPayload) -> Result<PartId> {
        self.0.put_part(p, id, idx, data).await
    }
    async fn complete_multipart(&self, p: &Path, id: &MultipartId, parts: Vec<PartId>) -> Result<PutResult> {
        self.0.complete_multipart(p, id, parts).await
    }
    async fn abort_multipart(&self, p: &Path, id: &MultipartId) -> Result<()> {
        self.0.abort_multipart(p, id).await
    }
}
