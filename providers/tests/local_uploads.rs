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

/// Sets the modification time of `path` to `ago` in the past.
fn backdate(path: &std::path::Path, ago: std::time::Duration) {
    let file = std::fs::File::options().write(true).open(path).expect("open to backdate");
    file.set_modified(std::time::SystemTime::now() - ago).expect("backdate");
}

/// An upload that received nothing for longer than the expiry is unknown, and gc removes it and stray
/// staging files, reporting what it freed; a live upload and a fresh staging file stay.
#[tokio::test]
async fn idle_uploads_expire_and_gc_reclaims_them_and_stray_staging_files() {
    use regbridge::OciErrorCode;
    use regbridge_providers::local::gc::{GcOptions, collect};
    use std::time::Duration;

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("storage");
    let expiry = Duration::from_secs(60);
    let storage = FsStorage::open(&root).expect("open storage").with_upload_expiry(expiry);
    let repo = RepositoryName::parse("uploads/idle").expect("name");
    storage.create_repository(&repo, "local").await.expect("create repository");
    let (idle, live) =
        (storage.start_upload(&repo).await.expect("start"), storage.start_upload(&repo).await.expect("start"));
    for id in [&idle, &live] {
        let chunk = stream(vec![Ok(Bytes::from_static(&[7u8; 500]))]);
        storage.append_upload(&repo, id, None, chunk).await.expect("append");
    }
    backdate(&root.join("uploads").join(&idle).join("data"), Duration::from_secs(120));
    let err = storage.upload_size(&repo, &idle).await.expect_err("an expired upload is unknown");
    assert_eq!(err.code(), OciErrorCode::BlobUploadUnknown);
    let chunk = stream(vec![Ok(Bytes::from_static(b"more"))]);
    let err = storage.append_upload(&repo, &idle, None, chunk).await.expect_err("no appending to it either");
    assert_eq!(err.code(), OciErrorCode::BlobUploadUnknown);
    assert_eq!(storage.upload_size(&repo, &live).await.expect("the live upload"), 500);

    // Staging files a killed write left behind: an old one goes, one just written stays.
    let (stray, fresh) = (root.join("tmp").join("stray"), root.join("tmp").join("fresh"));
    std::fs::write(&stray, [1u8; 300]).expect("stray file");
    std::fs::write(&fresh, [1u8; 300]).expect("fresh file");
    backdate(&stray, Duration::from_secs(7200));

    let options = GcOptions { grace: Duration::ZERO, upload_expiry: expiry, ..GcOptions::default() };
    let report = collect(&storage, &options, |_, _| {}).await.expect("gc");
    assert_eq!((report.uploads_removed, report.temp_files_removed), (1, 1), "{report:?}");
    assert_eq!(report.reclaimed_bytes, 500 + 300, "{report:?}");
    assert!(!root.join("uploads").join(&idle).exists() && !stray.exists());
    assert!(fresh.exists(), "a staging file may be in use by a write right now");
    assert_eq!(storage.upload_size(&repo, &live).await.expect("the live upload stays"), 500);
}
