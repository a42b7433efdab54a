//! The presigner on moto's S3: a presigned GET, fetched with no credentials at all, returns the blob's
//! bytes (and a range of them); a URL is reused within its cache window and renewed after it.
//!
//! moto does not verify S3 signatures (a tampered URL is served too), so what the signature covers is
//! `object_store`'s and the cloud's to guarantee; these tests check the URL works without credentials and
//! carries nothing of the registry's.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::moto::start_moto;
use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use regbridge_providers::local::Presigner;

const BUCKET: &str = "regbridge-presign";

/// The bucket on moto (created with an unsigned request, which moto accepts) and a store on it.
async fn bucket(endpoint: &str) -> Arc<object_store::aws::AmazonS3> {
    let client = common::client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.put(format!("{endpoint}/{BUCKET}")).send().await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "could not create the bucket at {endpoint}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let store = AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(BUCKET)
        .with_access_key_id("test")
        .with_secret_access_key("test")
        .build()
        .unwrap();
    Arc::new(store)
}

/// A client with no credentials and no redirects: what a container client does with a `Location` on
/// another host (Authorization is not sent across hosts).
fn plain() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn presigned_urls_serve_the_bytes_and_are_cached_for_half_their_ttl() {
    let (_moto, endpoint) = start_moto().await;
    let store = bucket(&endpoint).await;
    let key = Path::from("prefix/blobs/sha256/0123abcd");
    let bytes = b"a layer in S3 ".repeat(1000);
    store.put(&key, bytes.clone().into()).await.unwrap();
    let presigner = Presigner::new(store.clone());

    let ttl = Duration::from_secs(2);
    let url = presigner.get_url(&key, ttl).await.unwrap();
    assert!(url.as_str().starts_with(&format!("{endpoint}/{BUCKET}/prefix/blobs/")), "{url}");
    assert!(url.username().is_empty() && url.password().is_none(), "{url}");
    // The query is the storage's signature and nothing else of ours.
    for (name, _) in url.query_pairs() {
        assert!(name.starts_with("X-Amz-"), "unexpected query parameter {name} in {url}");
    }
    let r = plain().get(url.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), bytes);
    let r = plain().get(url.clone()).header("Range", "bytes=2-6").send().await.unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().await.unwrap()[..], b"layer");

    // Within the first half of its TTL the same URL comes back; after it, a new one (signed at a later
    // second, so its X-Amz-Date differs), which serves the bytes too.
    assert_eq!(presigner.get_url(&key, ttl).await.unwrap(), url);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = presigner.get_url(&key, ttl).await.unwrap();
    assert_ne!(renewed, url, "renewed after half its TTL");
    let r = plain().get(renewed).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
