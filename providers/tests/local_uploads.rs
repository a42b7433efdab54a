//! Upload sessions of the local storage: a request that fails leaves the upload as it was.

use bytes::Bytes;
use regbridge::oci::{Digest, RepositoryName};
use regbridge_providers::local::storage::ByteStream;
use regbridge_providers::local::{FsStorage, Storage};

fn stream(items: Vec<std::io::Result<Bytes>>) -> ByteStream {
    Box::pin(futures_util::stream::iter(items))
}

/// A body that breaks midway (the client went away, or sent nothing for longer than the read timeout)
/// is rolled back: the upload keeps exactly what it had before the request, and finishing it with the
/// rest of the bytes gives the right digest.
#[tokio::test]
async fn a_body_that_fails_midway_leaves_the_upload_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = FsStorage::open(dir.path().join("storage")).expect("open storage");
    let repo = RepositoryName::parse("uploads/broken").expect("name");
    storage.create_repository(&repo, "local").await.expect("create repository");
    let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let id = storage.start_upload(&repo).await.expect("start upload");
    let size = storage.append_upload(&repo, &id, None, stream(vec![Ok(Bytes::copy_from_slice(&data[..1000]))]));
    assert_eq!(size.await.expect("first chunk"), 1000);

    let broken = stream(vec![
        Ok(Bytes::copy_from_slice(&data[1000..1500])),
        Ok(Bytes::copy_from_slice(&data[1500..1700])),
        Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "body read timed out")),
    ]);
    storage.append_upload(&repo, &id, None, broken).await.expect_err("a broken body is an error");
    assert_eq!(storage.upload_size(&repo, &id).await.expect("upload size"), 1000, "rolled back to before the request");

    let rest = stream(vec![Ok(Bytes::copy_from_slice(&data[1000..]))]);
    assert_eq!(storage.append_upload(&repo, &id, None, rest).await.expect("the rest"), 3000);
    let digest = Digest::sha256(&data);
    assert_eq!(storage.finish_upload(&repo, &id, &digest).await.expect("digest matches"), 3000);
    assert_eq!(storage.blob_size(&repo, &digest).await.expect("blob size"), Some(3000));
}
