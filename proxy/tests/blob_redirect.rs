//! The embedded registry's blob GETs answered with `307` to a URL the storage presigns: over a test double of
//! the storage (the filesystem's, which also hands out URLs), the redirect comes only after every check a
//! streamed GET makes (the caller's access to the repository, and that the repository has the blob); HEAD
//! answers from metadata; `redirect = false` streams. The same path on real S3 is tested once object
//! storage is wired in.

mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::{ADMIN, PASSWORD, TestServer, sha256, unique};
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge::{ArtifactRegistry, Permissions, Result, Secret};
use regbridge_providers::local::storage::{
    BlobRead, ByteStream, MetaUpdate, ReferrerDescriptor, RepositoryMeta, Storage,
};
use regbridge_providers::local::{DEFAULT_PRESIGN_TTL, FsStorage, References, StoredManifest};
use regbridge_proxy::storage_config::StorageConfig;
use regbridge_proxy::{ServeConfig, Server};
use reqwest::{Client, Method, StatusCode};

/// Where the double's URLs point unless a test serves them: nothing listens there.
const STORAGE_HOST: &str = "http://127.0.0.1:9";

/// The filesystem storage, with presigned-looking URLs for its blobs on `host` (naming the TTL asked for).
#[derive(Debug)]
struct Presigning {
    fs: FsStorage,
    host: String,
}

fn presigned(host: &str, digest: &Digest, ttl: Duration) -> String {
    format!("{host}/bucket/blobs/{}?X-Amz-Expires={}&X-Amz-Signature=test", digest.hex(), ttl.as_secs())
}

#[async_trait]
impl Storage for Presigning {
    async fn blob_download_url(&self, digest: &Digest, ttl: Duration) -> Result<Option<url::Url>> {
        Ok(Some(presigned(&self.host, digest, ttl).parse().unwrap()))
    }

    async fn create_repository(&self, name: &RepositoryName, owner: &str) -> Result<RepositoryMeta> {
        self.fs.create_repository(name, owner).await
    }
    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryMeta>> {
        self.fs.repository(name).await
    }
    async fn update_repository(&self, name: &RepositoryName, update: MetaUpdate) -> Result<RepositoryMeta> {
        self.fs.update_repository(name, update).await
    }
    async fn delete_repository(&self, name: &RepositoryName) -> Result<()> {
        self.fs.delete_repository(name).await
    }
    async fn list_repositories(&self) -> Result<Vec<String>> {
        self.fs.list_repositories().await
    }
    async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        self.fs.blob_size(repo, digest).await
    }
    async fn read_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<BlobRead> {
        self.fs.read_blob(repo, digest, range).await
    }
    async fn mount_blob(&self, repo: &RepositoryName, from: &RepositoryName, digest: &Digest) -> Result<bool> {
        self.fs.mount_blob(repo, from, digest).await
    }
    async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        self.fs.delete_blob(repo, digest).await
    }
    async fn start_upload(&self, repo: &RepositoryName) -> Result<String> {
        self.fs.start_upload(repo).await
    }
    async fn upload_size(&self, repo: &RepositoryName, id: &str) -> Result<u64> {
        self.fs.upload_size(repo, id).await
    }
    async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        range: Option<(u64, u64)>,
        body: ByteStream,
    ) -> Result<u64> {
        self.fs.append_upload(repo, id, range, body).await
    }
    async fn finish_upload(&self, repo: &RepositoryName, id: &str, digest: &Digest) -> Result<u64> {
        self.fs.finish_upload(repo, id, digest).await
    }
    async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.fs.cancel_upload(repo, id).await
    }
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        manifest: &StoredManifest,
        references: &References,
        referrer: Option<ReferrerDescriptor>,
        tag: Option<&Tag>,
    ) -> Result<()> {
        self.fs.put_manifest(repo, manifest, references, referrer, tag).await
    }
    async fn get_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<Option<StoredManifest>> {
        self.fs.get_manifest(repo, reference).await
    }
    async fn delete_manifest(&self, repo: &RepositoryName, reference: &Reference) -> Result<()> {
        self.fs.delete_manifest(repo, reference).await
    }
    async fn list_tags(&self, repo: &RepositoryName) -> Result<Vec<String>> {
        self.fs.list_tags(repo).await
    }
    async fn referrers(&self, repo: &RepositoryName, subject: &Digest) -> Result<Vec<ReferrerDescriptor>> {
        self.fs.referrers(repo, subject).await
    }
}

/// A server over [`Presigning`] with blob redirects set to `blob_redirect`, and a client that shows
/// redirects instead of following them.
async fn start(blob_redirect: Option<Duration>) -> TestServer {
    start_at(blob_redirect, STORAGE_HOST).await
}

/// [`start`] with the double's URLs on `host`.
async fn start_at(blob_redirect: Option<Duration>, host: &str) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let fs = FsStorage::open(data_dir.join("storage")).unwrap();
    let storage = Arc::new(Presigning { fs, host: host.to_owned() });
    let config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: data_dir.clone(),
        storage: StorageConfig {
            redirect: blob_redirect.is_some(),
            presign_ttl: blob_redirect.unwrap_or(DEFAULT_PRESIGN_TTL),
            ..StorageConfig::default()
        },
        ..ServeConfig::new()
    };
    let server = Server::bind_with_storage(config, Some(Secret::new(PASSWORD)), storage).unwrap();
    let mut s = TestServer::spawn(server, dir);
    s.client = no_redirects();
    s
}

fn no_redirects() -> Client {
    Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn location(r: &reqwest::Response) -> Option<String> {
    common::header(r, "location")
}

#[tokio::test]
async fn blob_gets_redirect_after_every_check() {
    let s = start(Some(Duration::from_secs(300))).await;
    let repo = unique("redirect/app");
    let bytes = b"served from storage".repeat(100);
    let digest = s.push_blob(&repo, &bytes).await;
    let parsed: Digest = digest.parse().unwrap();
    let path = format!("/v2/{repo}/blobs/{digest}");

    let r = s.admin(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        location(&r),
        Some(presigned(STORAGE_HOST, &parsed, Duration::from_secs(300))),
        "the storage's URL, at the TTL set"
    );
    assert_eq!(common::header(&r, "docker-content-digest").as_deref(), Some(digest.as_str()));
    assert!(r.bytes().await.unwrap().is_empty());
    // A range GET goes to storage too (a 307 keeps the method and the Range header).
    let r = s.admin(Method::GET, &path).header("Range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
    // A range past the blob is answered here, as before.
    let r = s.admin(Method::GET, &path).header("Range", "bytes=999999-").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(location(&r), None);

    // HEAD answers from metadata.
    let r = s.admin(Method::HEAD, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(common::header(&r, "content-length"), Some(bytes.len().to_string()));
    assert_eq!(common::header(&r, "docker-content-digest").as_deref(), Some(digest.as_str()));
    assert_eq!(location(&r), None);

    // A repository without the blob gets no URL for it, though the storage could sign one.
    let other = unique("redirect/other");
    s.push_blob(&other, b"something else").await;
    let r = s.admin(Method::GET, &format!("/v2/{other}/blobs/{digest}")).send().await.unwrap();
    assert_eq!(location(&r), None);
    common::assert_error(r, 404, "BLOB_UNKNOWN").await;
    let missing = sha256(b"never pushed");
    let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{missing}")).send().await.unwrap();
    assert_eq!(location(&r), None);
    common::assert_error(r, 404, "BLOB_UNKNOWN").await;

    // The library API: the same URL, for the blob's repository only.
    let ttl = Duration::from_secs(120);
    let url = s.registry.generate_blob_download_url(&repo, &parsed, ttl).await.unwrap();
    assert_eq!(url.map(String::from), Some(presigned(STORAGE_HOST, &parsed, ttl)));
    let capped = s.registry.generate_blob_download_url(&repo, &parsed, Duration::from_secs(86_400)).await.unwrap();
    assert_eq!(
        capped.map(String::from),
        Some(presigned(STORAGE_HOST, &parsed, Duration::from_secs(300))),
        "capped at the TTL set"
    );
    let err = s.registry.generate_blob_download_url(&other, &parsed, ttl).await.unwrap_err();
    assert_eq!(err.code(), regbridge::OciErrorCode::BlobUnknown);
}

#[tokio::test]
async fn callers_without_pull_access_get_no_url() {
    let s = start(Some(Duration::from_secs(300))).await;
    let repo = unique("redirect/private");
    let digest = s.push_blob(&repo, b"private layer").await;
    let path = format!("/v2/{repo}/blobs/{digest}");

    let r = s.anon(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(location(&r), None);

    // A pull credential for another repository, even one that has the same blob.
    let other = unique("redirect/mine");
    s.push_blob(&other, b"private layer").await;
    let c = s.registry.generate_credentials(&other, Permissions::Pull, Duration::from_secs(600)).await.unwrap();
    let r = s.anon(Method::GET, &path).basic_auth(&c.username, Some(c.password.expose())).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(location(&r), None);
    // The same credential does get its own repository's URL.
    let r =
        s.anon(Method::GET, &format!("/v2/{other}/blobs/{digest}")).basic_auth(&c.username, Some(c.password.expose()));
    assert_eq!(r.send().await.unwrap().status(), StatusCode::TEMPORARY_REDIRECT);

    // Another account, with a repository of its own and no grant on this one.
    let stranger = s.registry.clone().with_account("stranger");
    let theirs = unique("redirect/theirs");
    stranger.create_repository(&theirs).await.unwrap();
    let c = stranger.generate_credentials(&theirs, Permissions::PushPull, Duration::from_secs(600)).await.unwrap();
    let r = s.anon(Method::GET, &path).basic_auth(&c.username, Some(c.password.expose())).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 403), "{}", r.status());
    assert_eq!(location(&r), None);
}

#[tokio::test]
async fn redirects_off_streams_the_blob() {
    let s = start(None).await;
    let repo = unique("redirect/streamed");
    let bytes = b"streamed by the registry".repeat(50);
    let digest = s.push_blob(&repo, &bytes).await;
    let path = format!("/v2/{repo}/blobs/{digest}");
    let r = s.admin(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(location(&r), None);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let r = s.admin(Method::GET, &path).header("Range", "bytes=0-7").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.bytes().await.unwrap()[..], &bytes[..8]);
    let parsed: Digest = digest.parse().unwrap();
    let url = s.registry.generate_blob_download_url(&repo, &parsed, Duration::from_secs(60)).await.unwrap();
    assert_eq!(url, None, "the library hands out no URL either");
}

#[tokio::test]
async fn a_client_following_the_redirect_sends_storage_no_credentials() {
    use wiremock::matchers::{method, path_regex};
    let storage = wiremock::MockServer::start().await;
    let bytes = b"the bytes, from storage".repeat(20);
    wiremock::Mock::given(method("GET"))
        .and(path_regex("^/bucket/blobs/"))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_bytes(bytes.clone()))
        .mount(&storage)
        .await;
    let s = start_at(Some(Duration::from_secs(300)), &storage.uri()).await;
    let repo = unique("redirect/followed");
    let digest = s.push_blob(&repo, &bytes).await;
    // A client that follows redirects, sending Basic credentials to the registry (another port is another
    // origin: the credentials stay behind, as container clients do).
    let r = common::client()
        .get(s.url(&format!("/v2/{repo}/blobs/{digest}")))
        .basic_auth(ADMIN, Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let received = storage.received_requests().await.unwrap();
    assert_eq!(received.len(), 1);
    assert!(!received[0].headers.contains_key("authorization"), "credentials reached storage");
    assert!(!received[0].url.as_str().contains(PASSWORD));
}
