//! The OCI distribution API as clients see it: statuses, OCI error codes and the headers clients rely on,
//! grouped by capability. Most tests share one server (see `common`) and use repositories of their own.

mod common;

use common::*;
use reqwest::Method;
use serde_json::{Value, json};

/// `len` pseudo-random bytes, the same for the same `seed`.
fn blob(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Starts an upload session in `repo` as the admin; returns its absolute `Location`.
async fn start_upload(s: &TestServer, repo: &str) -> String {
    let r = s.admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 202, "start upload");
    let location = header(&r, "location").expect("Location");
    assert!(header(&r, "docker-upload-uuid").is_some_and(|u| !u.is_empty()), "Docker-Upload-UUID");
    assert_eq!(header(&r, "range").as_deref(), Some("0-0"), "Range of an empty upload");
    location
}

mod ping_and_auth {
    use super::*;

    #[tokio::test]
    async fn v2_without_credentials_is_401_with_a_bearer_challenge() {
        let s = TestServer::shared();
        let r = s.anon(Method::GET, "/v2/").send().await.unwrap();
        let challenge = header(&r, "www-authenticate").expect("WWW-Authenticate");
        assert_eq!(challenge, format!("Bearer realm=\"{}/token\",service=\"regbridge\"", s.base));
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn v2_with_basic_is_200() {
        let s = TestServer::shared();
        let r = s.admin(Method::GET, "/v2/").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "docker-distribution-api-version").as_deref(), Some("registry/2.0"));
    }

    #[tokio::test]
    async fn v2_with_a_wrong_password_is_401() {
        let s = TestServer::shared();
        let r = s.anon(Method::GET, "/v2/").basic_auth(ADMIN, Some("wrong")).send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some_and(|c| c.starts_with("Bearer realm=")));
        assert_error(r, 401, "UNAUTHORIZED").await;
        let r = s.anon(Method::GET, "/v2/").basic_auth("nobody", Some(PASSWORD)).send().await.unwrap();
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn repository_challenges_name_the_scope() {
        let s = TestServer::shared();
        let repo = unique("scope");
        let r = s.anon(Method::GET, &format!("/v2/{repo}/manifests/latest")).send().await.unwrap();
        let challenge = header(&r, "www-authenticate").expect("WWW-Authenticate");
        assert_eq!(
            challenge,
            format!("Bearer realm=\"{}/token\",service=\"regbridge\",scope=\"repository:{repo}:pull\"", s.base)
        );
        assert_error(r, 401, "UNAUTHORIZED").await;
        let r = s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
        let challenge = header(&r, "www-authenticate").expect("WWW-Authenticate");
        assert!(challenge.ends_with(&format!(",scope=\"repository:{repo}:pull,push\"")), "{challenge}");
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn token_flow_authorizes_the_scope_it_names() {
        let s = TestServer::shared();
        let repo = unique("tok");
        let r = s
            .admin(Method::GET, &format!("/token?service=regbridge&scope=repository:{repo}:pull,push"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let body = json_body(r).await;
        let token = body["token"].as_str().expect("token").to_owned();
        assert_eq!(body["access_token"], body["token"]);
        assert!(body["expires_in"].as_u64().is_some_and(|e| e > 0), "{body}");

        let r = s.anon(Method::GET, "/v2/").bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "/v2/ with the token");
        let r = s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202, "push with a pull,push token");

        // The token covers only the repository it names: elsewhere the client is sent back for another.
        let other = unique("tok-other");
        let r = s.anon(Method::POST, &format!("/v2/{other}/blobs/uploads/")).bearer_auth(&token).send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some_and(|c| c.contains(&format!("repository:{other}:pull,push"))));
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn token_with_a_wrong_password_is_401() {
        let s = TestServer::shared();
        let r = s
            .anon(Method::GET, "/token?service=regbridge&scope=repository:x:pull")
            .basic_auth(ADMIN, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn oauth2_password_grant() {
        let s = TestServer::shared();
        let repo = unique("oauth");
        let form = |password: &str| {
            format!("grant_type=password&username={ADMIN}&password={password}&scope=repository:{repo}:pull")
                .replace(' ', "+")
        };
        let r = s
            .anon(Method::POST, "/token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form(PASSWORD))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let token = json_body(r).await["access_token"].as_str().expect("access_token").to_owned();
        let r = s.anon(Method::GET, "/v2/").bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = s
            .anon(Method::POST, "/token")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form("wrong"))
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn unsupported_methods_are_405() {
        let s = TestServer::shared();
        let repo = unique("method");
        s.push_image(&repo, "v1").await;
        for (method, path) in [
            (Method::POST, format!("/v2/{repo}/manifests/v1")),
            (Method::PUT, format!("/v2/{repo}/tags/list")),
            (Method::DELETE, "/v2/_catalog".to_owned()),
        ] {
            let r = s.admin(method, &path).send().await.unwrap();
            assert_error(r, 405, "UNSUPPORTED").await;
        }
    }

    #[tokio::test]
    async fn a_forged_bearer_token_is_401() {
        let s = TestServer::shared();
        let r = s.anon(Method::GET, "/v2/").bearer_auth("eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl").send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some());
        assert_error(r, 401, "UNAUTHORIZED").await;
    }
}

mod anonymous_pull {
    use super::*;

    #[tokio::test]
    async fn anonymous_clients_pull_but_never_push() {
        let s = TestServer::start_with(true).await;
        let repo = unique("anon");
        let image = s.push_image(&repo, "v1").await;
        let r = s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "anonymous manifest GET");
        assert_eq!(header(&r, "docker-content-digest").as_deref(), Some(image.digest.as_str()));
        let r = s.anon(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.unwrap();
        assert_eq!(json_body(r).await["tags"], json!(["v1"]));
        // A token for anonymous clients carries pull and nothing more.
        let r = s
            .anon(Method::GET, &format!("/token?service=regbridge&scope=repository:{repo}:pull,push"))
            .send()
            .await
            .unwrap();
        let token = json_body(r).await["token"].as_str().unwrap().to_owned();
        let r = s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "anonymous token pulls");
        let r = s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).bearer_auth(&token).send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some());
        assert_error(r, 401, "UNAUTHORIZED").await;
        let r = s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).send().await.unwrap();
        assert_error(r, 401, "UNAUTHORIZED").await;
        let r = s.anon(Method::DELETE, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    #[tokio::test]
    async fn without_the_setting_anonymous_pulls_are_refused() {
        let s = TestServer::shared();
        let repo = unique("noanon");
        s.push_image(&repo, "v1").await;
        let r = s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
        let challenge = header(&r, "www-authenticate").expect("challenge");
        assert!(challenge.contains(&format!("scope=\"repository:{repo}:pull\"")), "{challenge}");
        assert_error(r, 401, "UNAUTHORIZED").await;
    }
}

mod blobs {
    use super::*;

    #[tokio::test]
    async fn concurrent_pushes_of_the_same_blob_and_manifest_are_safe() {
        let s = TestServer::shared();
        let repo = unique("same");
        let content = blob(77, 3 * 1024 * 1024 + 5);
        let pushes = (0..8).map(|_| s.push_blob(&repo, &content));
        let digests = futures_util::future::join_all(pushes).await;
        assert!(digests.iter().all(|d| d == &digests[0]));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{}", digests[0])).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), content.as_slice(), "the blob is intact");

        let config = descriptor("application/vnd.oci.image.config.v1+json", &content);
        let manifest = serde_json::to_vec(&image_manifest(&config, &[])).unwrap();
        let puts = (0..8).map(|i| {
            s.put_manifest(
                &repo,
                if i % 2 == 0 { "v1" } else { "v2" },
                regbridge::oci::media_types::OCI_MANIFEST,
                &manifest,
            )
        });
        for r in futures_util::future::join_all(puts).await {
            assert_eq!(r.status().as_u16(), 201);
        }
        for tag in ["v1", "v2"] {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{tag}")).send().await.unwrap();
            assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_slice(), "{tag}");
        }
    }

    #[tokio::test]
    async fn monolithic_post_with_digest_is_201() {
        let s = TestServer::shared();
        let repo = unique("mono");
        let data = blob(1, 1000);
        let digest = sha256(&data);
        let r = s
            .admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "location"), Some(format!("{}/v2/{repo}/blobs/{digest}", s.base)));
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn post_then_put() {
        let s = TestServer::shared();
        let repo = unique("postput");
        let data = blob(2, 5000);
        let digest = sha256(&data);
        let location = start_upload(&s, &repo).await;
        assert!(location.starts_with(&format!("{}/v2/{repo}/blobs/uploads/", s.base)), "{location}");
        let r = s.admin(Method::PUT, &with_digest(&location, &digest)).body(data.clone()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        assert_eq!(header(&r, "location"), Some(format!("{}/v2/{repo}/blobs/{digest}", s.base)));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn chunked_patch_with_content_range_then_put() {
        let s = TestServer::shared();
        let repo = unique("chunked");
        let data = blob(3, 10_000);
        let digest = sha256(&data);
        let location = start_upload(&s, &repo).await;
        let r = s
            .admin(Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "0-5999")
            .body(data[..6000].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        assert_eq!(header(&r, "range").as_deref(), Some("0-5999"));
        let location = header(&r, "location").expect("Location after a chunk");
        let r = s
            .admin(Method::PATCH, &location)
            .header("Content-Type", "application/octet-stream")
            .header("Content-Range", "6000-9999")
            .body(data[6000..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        assert_eq!(header(&r, "range").as_deref(), Some("0-9999"));
        let location = header(&r, "location").unwrap();
        let r = s.admin(Method::PUT, &with_digest(&location, &digest)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn out_of_order_chunk_is_416() {
        let s = TestServer::shared();
        let repo = unique("ooo");
        let data = blob(4, 200);
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "0-99").body(data[..100].to_vec());
        assert_eq!(r.send().await.unwrap().status().as_u16(), 202);
        // Skips bytes 100..150.
        let r = s
            .admin(Method::PATCH, &location)
            .header("Content-Range", "150-199")
            .body(data[150..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 416);
        assert_error(r, 416, "RANGE_INVALID").await;
        // The upload is still at 100 bytes and can go on from there.
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(header(&r, "range").as_deref(), Some("0-99"));
        let r = s
            .admin(Method::PATCH, &location)
            .header("Content-Range", "100-199")
            .body(data[100..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::PUT, &with_digest(&location, &sha256(&data))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn streamed_patch_without_content_range() {
        let s = TestServer::shared();
        let repo = unique("stream");
        let data = blob(5, 300_000);
        let digest = sha256(&data);
        let location = start_upload(&s, &repo).await;
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> =
            data.chunks(64 * 1024).map(|c| Ok(bytes::Bytes::copy_from_slice(c))).collect();
        let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
        let r = s.admin(Method::PATCH, &location).body(body).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        assert_eq!(header(&r, "range"), Some(format!("0-{}", data.len() - 1)));
        let r = s.admin(Method::PUT, &with_digest(&location, &digest)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
    }

    #[tokio::test]
    async fn upload_status_is_204_with_the_range() {
        let s = TestServer::shared();
        let repo = unique("status");
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(header(&r, "range").as_deref(), Some("0-0"));
        let r = s.admin(Method::PATCH, &location).body(blob(6, 1234)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        assert_eq!(header(&r, "range").as_deref(), Some("0-1233"));
        assert_eq!(header(&r, "location"), Some(location.clone()));
        assert!(header(&r, "docker-upload-uuid").is_some_and(|id| location.ends_with(&id)));
    }

    #[tokio::test]
    async fn cancelled_upload_is_gone() {
        let s = TestServer::shared();
        let repo = unique("cancel");
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::PATCH, &location).body(blob(7, 100)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::DELETE, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.admin(Method::PATCH, &location).body(blob(7, 10)).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/uploads/not-an-upload")).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }

    #[tokio::test]
    async fn digest_mismatch_is_400_and_stores_nothing() {
        let s = TestServer::shared();
        let repo = unique("mismatch");
        let data = blob(8, 4096);
        let claimed = sha256(b"something else");
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::PUT, &with_digest(&location, &claimed)).body(data.clone()).send().await.unwrap();
        let body = assert_error(r, 400, "DIGEST_INVALID").await;
        assert_eq!(body["errors"][0]["detail"]["actual"], sha256(&data), "{body}");
        for digest in [&claimed, &sha256(&data)] {
            let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 404, "HEAD {digest} after a failed upload");
        }
        // Monolithic, too.
        let r = s
            .admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={claimed}"))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_error(r, 400, "DIGEST_INVALID").await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{claimed}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }

    #[tokio::test]
    async fn put_without_a_digest_is_400() {
        let s = TestServer::shared();
        let repo = unique("nodigest");
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::PUT, &location).body(blob(9, 10)).send().await.unwrap();
        assert_error(r, 400, "DIGEST_INVALID").await;
    }

    #[tokio::test]
    async fn sha512_uploads() {
        let s = TestServer::shared();
        let repo = unique("sha512");
        let data = blob(10, 70_000);
        let digest = sha512(&data);
        let r = s
            .admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}"))
            .body(data.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        // Chunked, too: the server hashes with sha256 as it goes and must switch algorithms at the end.
        let other = blob(11, 50_000);
        let other_digest = sha512(&other);
        let location = start_upload(&s, &repo).await;
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "0-29999").body(other[..30_000].to_vec());
        assert_eq!(r.send().await.unwrap().status().as_u16(), 202);
        let r = s.admin(Method::PUT, &with_digest(&location, &other_digest)).body(other[30_000..].to_vec());
        assert_eq!(r.send().await.unwrap().status().as_u16(), 201);
        for (d, bytes) in [(&digest, &data), (&other_digest, &other)] {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{d}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert_eq!(header(&r, "docker-content-digest"), Some(d.clone()));
            assert_eq!(r.bytes().await.unwrap().as_ref(), bytes.as_slice());
        }
    }

    #[tokio::test]
    async fn head_blob_has_length_and_digest() {
        let s = TestServer::shared();
        let repo = unique("head");
        let data = blob(12, 3333);
        let digest = s.push_blob(&repo, &data).await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "content-length").as_deref(), Some("3333"));
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        assert!(r.bytes().await.unwrap().is_empty());
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(header(&r, "content-length").as_deref(), Some("3333"));
        assert_eq!(header(&r, "docker-content-digest"), Some(digest));
    }

    #[tokio::test]
    async fn range_get_is_206() {
        let s = TestServer::shared();
        let repo = unique("range");
        let data = blob(13, 100);
        let digest = s.push_blob(&repo, &data).await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).header("Range", "bytes=2-5").send();
        let r = r.await.unwrap();
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes 2-5/100"));
        assert_eq!(header(&r, "content-length").as_deref(), Some("4"));
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[2..=5]);
        // Open-ended, and an end past the blob, are clamped.
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).header("Range", "bytes=90-").send();
        let r = r.await.unwrap();
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes 90-99/100"));
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[90..]);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).header("Range", "bytes=95-500").send();
        let r = r.await.unwrap();
        assert_eq!(r.status().as_u16(), 206);
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes 95-99/100"));
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data[95..]);
    }

    #[tokio::test]
    async fn range_past_the_end_is_416() {
        let s = TestServer::shared();
        let repo = unique("range416");
        let data = blob(14, 100);
        let digest = s.push_blob(&repo, &data).await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).header("Range", "bytes=100-200").send();
        let r = r.await.unwrap();
        assert_eq!(header(&r, "content-range").as_deref(), Some("bytes */100"));
        assert_error(r, 416, "RANGE_INVALID").await;
    }

    #[tokio::test]
    async fn unknown_blob_is_404() {
        let s = TestServer::shared();
        let repo = unique("unknownblob");
        s.push_blob(&repo, b"something").await;
        let missing = sha256(b"never pushed");
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{missing}")).send().await.unwrap();
        assert_error(r, 404, "BLOB_UNKNOWN").await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{missing}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        // Content pushed to another repository is not readable here without a mount.
        let elsewhere = s.push_blob(&unique("unknownblob-other"), b"only over there").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{elsewhere}")).send().await.unwrap();
        assert_error(r, 404, "BLOB_UNKNOWN").await;
    }

    #[tokio::test]
    async fn deleted_blob_is_gone() {
        let s = TestServer::shared();
        let repo = unique("delblob");
        let digest = s.push_blob(&repo, &blob(15, 500)).await;
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_error(r, 404, "BLOB_UNKNOWN").await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_error(r, 404, "BLOB_UNKNOWN").await;
    }

    #[tokio::test]
    async fn cross_repository_mount() {
        let s = TestServer::shared();
        let (from, to) = (unique("mount-src"), unique("mount-dst"));
        let data = blob(16, 2000);
        let digest = s.push_blob(&from, &data).await;
        let r =
            s.admin(Method::POST, &format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "location"), Some(format!("{}/v2/{to}/blobs/{digest}", s.base)));
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        let r = s.admin(Method::GET, &format!("/v2/{to}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), data.as_slice());
    }

    #[tokio::test]
    async fn mount_from_a_repository_without_the_blob_falls_back_to_an_upload() {
        let s = TestServer::shared();
        let (from, to) = (unique("mount-empty"), unique("mount-fallback"));
        s.push_blob(&from, b"unrelated").await;
        let data = blob(17, 700);
        let digest = sha256(&data);
        let r =
            s.admin(Method::POST, &format!("/v2/{to}/blobs/uploads/?mount={digest}&from={from}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let location = header(&r, "location").expect("upload Location");
        assert!(location.contains(&format!("/v2/{to}/blobs/uploads/")), "{location}");
        let r = s.admin(Method::PUT, &with_digest(&location, &digest)).body(data).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
        // A source repository that does not exist at all also falls back.
        let r = s
            .admin(Method::POST, &format!("/v2/{to}/blobs/uploads/?mount={digest}&from={}", unique("nowhere")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }

    #[tokio::test]
    async fn empty_blob() {
        let s = TestServer::shared();
        let repo = unique("emptyblob");
        let digest = s.push_blob(&repo, b"").await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "content-length").as_deref(), Some("0"));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.bytes().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_upload_belongs_to_its_repository() {
        let s = TestServer::shared();
        let (repo, other) = (unique("upload-owner"), unique("upload-thief"));
        let location = start_upload(&s, &repo).await;
        let id = location.rsplit('/').next().unwrap().to_owned();
        s.push_blob(&other, b"x").await;
        let elsewhere = format!("/v2/{other}/blobs/uploads/{id}");
        let r = s.admin(Method::GET, &elsewhere).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.admin(Method::PATCH, &elsewhere).body("data").send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.admin(Method::DELETE, &elsewhere).send().await.unwrap();
        assert_error(r, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204, "the upload is untouched");
    }

    #[tokio::test]
    async fn a_chunk_whose_length_differs_from_its_content_range_is_refused() {
        let s = TestServer::shared();
        let repo = unique("badchunk");
        let data = blob(18, 300);
        let location = start_upload(&s, &repo).await;
        // Content-Range announces 100 bytes, the body has 50.
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "0-99").body(data[..50].to_vec());
        let r = r.send().await.unwrap();
        assert!(matches!(r.status().as_u16(), 400 | 416), "got {}", r.status());
        // A client recovers by asking where the upload stands and going on from there.
        let r = s.admin(Method::GET, &location).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 204);
        let range = header(&r, "range").expect("Range");
        let end: usize = range.strip_prefix("0-").and_then(|e| e.parse().ok()).expect("0-END");
        let have = if end == 0 { 0 } else { end + 1 };
        let r = s
            .admin(Method::PATCH, &location)
            .header("Content-Range", format!("{have}-{}", data.len() - 1))
            .body(data[have..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::PUT, &with_digest(&location, &sha256(&data))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn a_refused_chunk_leaves_the_upload_exactly_as_it_was() {
        let s = TestServer::shared();
        let repo = unique("refused");
        let data = blob(19, 300);
        let location = start_upload(&s, &repo).await;
        let range = |s: &TestServer, location: String| {
            let r = s.admin(Method::GET, &location);
            async move { header(&r.send().await.unwrap(), "range") }
        };
        // Content-Range announces 10 bytes, the body has 100: refused, and nothing of it is kept.
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "0-9").body(data[..100].to_vec());
        assert_error(r.send().await.unwrap(), 400, "SIZE_INVALID").await;
        assert_eq!(range(&s, location.clone()).await.as_deref(), Some("0-0"), "empty, as before the PATCH");
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "0-99").body(data[..100].to_vec());
        assert_eq!(r.send().await.unwrap().status().as_u16(), 202);
        // Too short and too long, after a chunk that was kept: the upload stays at 100 bytes.
        for body in [&data[100..150], &data[100..300]] {
            let r = s.admin(Method::PATCH, &location).header("Content-Range", "100-199").body(body.to_vec());
            assert_error(r.send().await.unwrap(), 400, "SIZE_INVALID").await;
            assert_eq!(range(&s, location.clone()).await.as_deref(), Some("0-99"), "{} bytes refused", body.len());
        }
        // And the hash state is the one of those 100 bytes: the rest completes the right digest.
        let r = s.admin(Method::PATCH, &location).header("Content-Range", "100-299").body(data[100..].to_vec());
        assert_eq!(r.send().await.unwrap().status().as_u16(), 202);
        let r = s.admin(Method::PUT, &with_digest(&location, &sha256(&data))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn invalid_digest_in_the_path_is_400() {
        let s = TestServer::shared();
        let repo = unique("baddigest");
        for bad in ["sha256:1234", "md5:d41d8cd98f00b204e9800998ecf8427e", "sha256", &sha256(b"x").to_uppercase()] {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/blobs/{bad}")).send().await.unwrap();
            assert_error(r, 400, "DIGEST_INVALID").await;
        }
        let r = s.admin(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest=sha256:abc")).body("x").send();
        assert_error(r.await.unwrap(), 400, "DIGEST_INVALID").await;
    }
}

mod manifests {
    use super::*;
    use regbridge::oci::media_types::{
        DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST,
    };

    const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
                          application/vnd.docker.distribution.manifest.v2+json, \
                          application/vnd.docker.distribution.manifest.list.v2+json";

    /// GETs (and HEADs) `reference` and checks the exact bytes, type, length and digest.
    async fn assert_served(s: &TestServer, repo: &str, reference: &str, media_type: &str, bytes: &[u8]) {
        let path = format!("/v2/{repo}/manifests/{reference}");
        let digest = sha256(bytes);
        let r = s.admin(Method::GET, &path).header("Accept", ACCEPT).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "GET {path}");
        assert_eq!(header(&r, "content-type").as_deref(), Some(media_type), "Content-Type of GET {path}");
        assert_eq!(header(&r, "content-length"), Some(bytes.len().to_string()), "Content-Length of GET {path}");
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()), "digest of GET {path}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), bytes, "bytes of GET {path}");
        let r = s.admin(Method::HEAD, &path).header("Accept", ACCEPT).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "HEAD {path}");
        assert_eq!(header(&r, "content-type").as_deref(), Some(media_type), "Content-Type of HEAD {path}");
        assert_eq!(header(&r, "content-length"), Some(bytes.len().to_string()), "Content-Length of HEAD {path}");
        assert_eq!(header(&r, "docker-content-digest"), Some(digest), "digest of HEAD {path}");
        assert!(r.bytes().await.unwrap().is_empty(), "HEAD {path} has no body");
    }

    #[tokio::test]
    async fn oci_manifest_keeps_its_exact_bytes() {
        let s = TestServer::shared();
        let repo = unique("exact");
        let config = br#"{"architecture":"arm64","os":"linux"}"#;
        let layer = blob(20, 1500);
        s.push_blob(&repo, config).await;
        s.push_blob(&repo, &layer).await;
        // Not what any JSON serialiser would write: the registry must keep (and hash) these bytes.
        let bytes = format!(
            concat!(
                "{{\n   \"schemaVersion\" :  2,\n\t\"mediaType\": \"{}\",\n  \"config\": {},\n",
                "  \"layers\": [ {} ]  ,\"annotations\":{{\"z\":\"1\",\"a\":\"2\"}}\n}}\n\n"
            ),
            OCI_MANIFEST,
            descriptor(OCI_CONFIG, config),
            descriptor(OCI_LAYER, &layer),
        )
        .into_bytes();
        let canonical = serde_json::to_vec(&serde_json::from_slice::<Value>(&bytes).unwrap()).unwrap();
        assert_ne!(sha256(&canonical), sha256(&bytes));

        let r = s.put_manifest(&repo, "v1", OCI_MANIFEST, &bytes).await;
        assert_eq!(r.status().as_u16(), 201);
        let digest = sha256(&bytes);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        assert_eq!(header(&r, "location"), Some(format!("{}/v2/{repo}/manifests/{digest}", s.base)));
        assert_eq!(header(&r, "oci-subject"), None);

        assert_served(&s, &repo, "v1", OCI_MANIFEST, &bytes).await;
        assert_served(&s, &repo, &digest, OCI_MANIFEST, &bytes).await;
    }

    #[tokio::test]
    async fn put_by_digest() {
        let s = TestServer::shared();
        let repo = unique("bydigest");
        let image = s.push_image(&repo, "t").await;
        let other = unique("bydigest-copy");
        s.push_blob(&other, &image.config).await;
        s.push_blob(&other, &image.layer).await;
        let r = s.put_manifest(&other, &image.digest, OCI_MANIFEST, &image.bytes).await;
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "docker-content-digest"), Some(image.digest.clone()));
        assert_served(&s, &other, &image.digest, OCI_MANIFEST, &image.bytes).await;
        let tags = json_body(s.admin(Method::GET, &format!("/v2/{other}/tags/list")).send().await.unwrap()).await;
        assert_eq!(tags["tags"], json!([]), "a push by digest creates no tag");
    }

    #[tokio::test]
    async fn put_by_sha512_digest() {
        let s = TestServer::shared();
        let repo = unique("sha512manifest");
        let image = s.push_image(&repo, "v1").await;
        let digest = sha512(&image.bytes);
        let r = s.put_manifest(&repo, &digest, OCI_MANIFEST, &image.bytes).await;
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest.clone()));
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{digest}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "docker-content-digest"), Some(digest));
        assert_eq!(r.bytes().await.unwrap().as_ref(), image.bytes.as_slice());
    }

    #[tokio::test]
    async fn pushing_a_tag_again_moves_it() {
        let s = TestServer::shared();
        let repo = unique("retag");
        let first = s.push_image(&repo, "latest").await;
        let second = s.push_image(&repo, "latest").await;
        assert_served(&s, &repo, "latest", OCI_MANIFEST, &second.bytes).await;
        assert_served(&s, &repo, &first.digest, OCI_MANIFEST, &first.bytes).await;
        let tags = json_body(s.admin(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.unwrap()).await;
        assert_eq!(tags["tags"], json!(["latest"]));
    }

    #[tokio::test]
    async fn docker_schema2_manifest_and_manifest_list() {
        let s = TestServer::shared();
        let repo = unique("docker");
        let mut entries = Vec::new();
        for (i, arch) in ["amd64", "arm64"].into_iter().enumerate() {
            let config = format!(r#"{{"architecture":"{arch}","os":"linux"}}"#).into_bytes();
            let layer = blob(21 + i as u64, 800);
            s.push_blob(&repo, &config).await;
            s.push_blob(&repo, &layer).await;
            let m = docker_manifest(&descriptor(DOCKER_CONFIG, &config), &[descriptor(DOCKER_LAYER_GZIP, &layer)]);
            let bytes = serde_json::to_vec_pretty(&m).unwrap();
            let digest = s.push_manifest(&repo, &format!("{arch}-only"), DOCKER_MANIFEST, &bytes).await;
            assert_served(&s, &repo, &digest, DOCKER_MANIFEST, &bytes).await;
            entries.push(with_platform(descriptor(DOCKER_MANIFEST, &bytes), arch));
        }
        let list = serde_json::to_vec(&index(DOCKER_MANIFEST_LIST, &entries)).unwrap();
        s.push_manifest(&repo, "latest", DOCKER_MANIFEST_LIST, &list).await;
        assert_served(&s, &repo, "latest", DOCKER_MANIFEST_LIST, &list).await;
    }

    #[tokio::test]
    async fn oci_index_of_pushed_manifests() {
        let s = TestServer::shared();
        let repo = unique("index");
        let a = s.push_image(&repo, "a").await;
        let b = s.push_image(&repo, "b").await;
        let idx =
            oci_index(&[with_platform(a.descriptor(), "amd64"), with_platform(b.descriptor(), "arm64")]).to_string();
        let digest = s.push_manifest(&repo, "multi", OCI_INDEX, idx.as_bytes()).await;
        assert_served(&s, &repo, "multi", OCI_INDEX, idx.as_bytes()).await;
        assert_served(&s, &repo, &digest, OCI_INDEX, idx.as_bytes()).await;
        // An index naming a manifest the repository does not have is refused.
        let dangling = oci_index(&[json!({"mediaType": OCI_MANIFEST, "digest": sha256(b"nope"), "size": 4})]);
        let r = s.put_manifest(&repo, "dangling", OCI_INDEX, dangling.to_string().as_bytes()).await;
        assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
    }

    #[tokio::test]
    async fn artifact_with_subject_is_listed_by_referrers() {
        let s = TestServer::shared();
        let repo = unique("referrers");
        let image = s.push_image(&repo, "v1").await;
        s.push_blob(&repo, EMPTY_JSON).await;

        const SBOM: &str = "application/vnd.example.sbom.v1";
        const SIG: &str = "application/vnd.example.signature.v1";
        let mut sbom = artifact(SBOM, &[], Some(&image.descriptor()));
        sbom["annotations"] = json!({"org.opencontainers.image.created": "2025-01-01T00:00:00Z"});
        let sbom = serde_json::to_vec(&sbom).unwrap();
        let r = s.put_manifest(&repo, &sha256(&sbom), OCI_MANIFEST, &sbom).await;
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "oci-subject"), Some(image.digest.clone()));

        let sig_layer = b"signature bytes";
        s.push_blob(&repo, sig_layer).await;
        let sig = artifact(SIG, &[descriptor("application/octet-stream", sig_layer)], Some(&image.descriptor()));
        let sig = serde_json::to_vec(&sig).unwrap();
        let r = s.put_manifest(&repo, "sig", OCI_MANIFEST, &sig).await;
        assert_eq!(r.status().as_u16(), 201);
        assert_eq!(header(&r, "oci-subject"), Some(image.digest.clone()));
        assert_served(&s, &repo, &sha256(&sbom), OCI_MANIFEST, &sbom).await;

        let path = format!("/v2/{repo}/referrers/{}", image.digest);
        let r = s.admin(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_INDEX));
        assert_eq!(header(&r, "oci-filters-applied"), None);
        let body = json_body(r).await;
        assert_eq!(body["schemaVersion"], 2);
        assert_eq!(body["mediaType"], OCI_INDEX);
        let listed = body["manifests"].as_array().expect("manifests");
        assert_eq!(listed.len(), 2, "{body}");
        let sbom_entry = listed.iter().find(|d| d["digest"] == sha256(&sbom)).expect("the sbom is listed");
        assert_eq!(sbom_entry["mediaType"], OCI_MANIFEST);
        assert_eq!(sbom_entry["size"], sbom.len());
        assert_eq!(sbom_entry["artifactType"], SBOM);
        assert_eq!(sbom_entry["annotations"]["org.opencontainers.image.created"], "2025-01-01T00:00:00Z");
        assert!(listed.iter().any(|d| d["digest"] == sha256(&sig) && d["artifactType"] == SIG), "{body}");

        let r = s.admin(Method::GET, &format!("{path}?artifactType={SBOM}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "oci-filters-applied").as_deref(), Some("artifactType"));
        let body = json_body(r).await;
        assert_eq!(body["manifests"].as_array().map(Vec::len), Some(1), "{body}");
        assert_eq!(body["manifests"][0]["digest"], sha256(&sbom));

        // Deleting a referrer removes it from the list.
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/{}", sha256(&sig))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let body = json_body(s.admin(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(body["manifests"].as_array().map(Vec::len), Some(1), "{body}");
    }

    #[tokio::test]
    async fn referrers_of_an_unknown_digest_are_an_empty_index() {
        let s = TestServer::shared();
        let repo = unique("noreferrers");
        s.push_image(&repo, "v1").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/referrers/{}", sha256(b"unknown"))).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "content-type").as_deref(), Some(OCI_INDEX));
        let body = json_body(r).await;
        assert_eq!(body["manifests"], json!([]));
        assert_eq!(body["mediaType"], OCI_INDEX);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/referrers/sha256:zz")).send().await.unwrap();
        assert_error(r, 400, "DIGEST_INVALID").await;
    }

    #[tokio::test]
    async fn manifest_referencing_a_missing_blob_is_refused() {
        let s = TestServer::shared();
        let repo = unique("missingblob");
        let config = b"{}";
        s.push_blob(&repo, config).await;
        let m = image_manifest(&descriptor(OCI_CONFIG, config), &[descriptor(OCI_LAYER, b"never pushed")]);
        let r = s.put_manifest(&repo, "v1", OCI_MANIFEST, m.to_string().as_bytes()).await;
        assert_error(r, 400, "MANIFEST_BLOB_UNKNOWN").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }

    #[tokio::test]
    async fn invalid_manifests_are_refused() {
        let s = TestServer::shared();
        let repo = unique("invalid");
        s.push_blob(&repo, b"{}").await;
        let config_only = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": empty_config()});
        let cases: [(&str, Vec<u8>); 4] = [
            (OCI_MANIFEST, b"{ this is not json".to_vec()),
            (OCI_MANIFEST, br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#.to_vec()),
            (OCI_MANIFEST, config_only.to_string().into_bytes()),
            // The body says one type, Content-Type another.
            (DOCKER_MANIFEST, image_manifest(&empty_config(), &[]).to_string().into_bytes()),
        ];
        for (media_type, bytes) in cases {
            let r = s.put_manifest(&repo, "bad", media_type, &bytes).await;
            assert_error(r, 400, "MANIFEST_INVALID").await;
        }
    }

    #[tokio::test]
    async fn manifest_over_4_mib_is_413() {
        let s = TestServer::shared();
        let repo = unique("huge");
        s.push_blob(&repo, EMPTY_JSON).await;
        let mut m = artifact("application/vnd.example.big", &[], None);
        m["annotations"] = json!({ "padding": "x".repeat(4 * 1024 * 1024) });
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(bytes.len() > 4 * 1024 * 1024);
        // The server answers as soon as it knows and closes without reading the rest, so a client must read
        // while it writes (reqwest reports the broken pipe of the write instead): a raw connection does.
        let path = format!("/v2/{repo}/manifests/big");
        for body in [RawBody::Length(bytes.clone()), RawBody::Chunked(bytes.clone())] {
            let r = s.raw(Method::PUT, &path, &[("Content-Type", OCI_MANIFEST)], body).await;
            assert_eq!(r.status, 413, "{}", r.body);
            let error: Value = serde_json::from_str(&r.body).expect("JSON error body");
            assert_eq!(error["errors"][0]["code"], "SIZE_INVALID", "{}", r.body);
        }
        let r = s.admin(Method::GET, &path).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
        // Just under the limit is fine.
        m["annotations"]["padding"] = json!("x".repeat(4 * 1024 * 1024 - 400));
        let bytes = serde_json::to_vec(&m).unwrap();
        assert!(bytes.len() <= 4 * 1024 * 1024, "{}", bytes.len());
        s.push_manifest(&repo, "almost", OCI_MANIFEST, &bytes).await;
    }

    #[tokio::test]
    async fn put_by_a_wrong_digest_is_400() {
        let s = TestServer::shared();
        let repo = unique("wrongdigest");
        let image = s.push_image(&repo, "v1").await;
        let wrong = sha256(b"not the manifest");
        let r = s.put_manifest(&repo, &wrong, OCI_MANIFEST, &image.bytes).await;
        assert_error(r, 400, "DIGEST_INVALID").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{wrong}")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }

    #[tokio::test]
    async fn delete_by_tag_removes_only_the_tag() {
        let s = TestServer::shared();
        let repo = unique("deltag");
        let image = s.push_image(&repo, "one").await;
        s.push_manifest(&repo, "two", OCI_MANIFEST, &image.bytes).await;
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/one")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/one")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
        assert_served(&s, &repo, &image.digest, OCI_MANIFEST, &image.bytes).await;
        assert_served(&s, &repo, "two", OCI_MANIFEST, &image.bytes).await;
        let tags = json_body(s.admin(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.unwrap()).await;
        assert_eq!(tags["tags"], json!(["two"]));
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/one")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }

    #[tokio::test]
    async fn delete_by_digest_removes_the_manifest_and_its_tags() {
        let s = TestServer::shared();
        let repo = unique("deldigest");
        let image = s.push_image(&repo, "v1").await;
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/{}", image.digest)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{}", image.digest)).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
        let r = s.admin(Method::HEAD, &format!("/v2/{repo}/manifests/{}", image.digest)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/v1")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
        let r = s.admin(Method::DELETE, &format!("/v2/{repo}/manifests/{}", image.digest)).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }

    #[tokio::test]
    async fn unknown_repository_is_name_unknown() {
        let s = TestServer::shared();
        let repo = unique("never-created");
        let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/latest")).send().await.unwrap();
        assert_error(r, 404, "NAME_UNKNOWN").await;
        let r = s.admin(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.unwrap();
        assert_error(r, 404, "NAME_UNKNOWN").await;
        // In a repository that exists, a missing tag is MANIFEST_UNKNOWN.
        let existing = unique("exists");
        s.push_image(&existing, "v1").await;
        let r = s.admin(Method::GET, &format!("/v2/{existing}/manifests/v2")).send().await.unwrap();
        assert_error(r, 404, "MANIFEST_UNKNOWN").await;
    }
}

mod names {
    use super::*;

    #[tokio::test]
    async fn dot_dot_is_name_invalid() {
        let s = TestServer::shared();
        // reqwest would resolve the `..` before sending; a raw request sends the path as written.
        for path in ["/v2/../x/manifests/v1", "/v2/a/../../b/blobs/uploads/", "/v2/../x/tags/list"] {
            let method = if path.ends_with("uploads/") { Method::POST } else { Method::GET };
            let r = s.raw(method, path, &[], RawBody::None).await;
            assert_eq!(r.status, 400, "{path}: {}", r.body);
            let body: Value = serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", r.body));
            assert_eq!(body["errors"][0]["code"], "NAME_INVALID", "{path}");
        }
    }

    #[tokio::test]
    async fn upper_case_and_overlong_names_are_name_invalid() {
        let s = TestServer::shared();
        for name in ["UPPER".to_owned(), "team/App".to_owned(), "a".repeat(300), "a//b".to_owned(), "-a".to_owned()] {
            for path in [format!("/v2/{name}/manifests/v1"), format!("/v2/{name}/tags/list")] {
                let r = s.admin(Method::GET, &path).send().await.unwrap();
                assert_error(r, 400, "NAME_INVALID").await;
            }
            let r = s.admin(Method::POST, &format!("/v2/{name}/blobs/uploads/")).send().await.unwrap();
            assert_error(r, 400, "NAME_INVALID").await;
        }
    }

    #[tokio::test]
    async fn invalid_tags_are_400() {
        let s = TestServer::shared();
        let repo = unique("badtag");
        let image = s.push_image(&repo, "ok").await;
        for tag in ["-starts-with-dash", ".dot", &"t".repeat(129), "has+plus"] {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/manifests/{tag}")).send().await.unwrap();
            assert_error(r, 400, "TAG_INVALID").await;
            let r = s.put_manifest(&repo, tag, regbridge::oci::media_types::OCI_MANIFEST, &image.bytes).await;
            assert_error(r, 400, "TAG_INVALID").await;
        }
        let longest = "t".repeat(128);
        s.push_manifest(&repo, &longest, regbridge::oci::media_types::OCI_MANIFEST, &image.bytes).await;
    }
}

mod listing {
    use super::*;
    use regbridge::oci::media_types::OCI_MANIFEST;

    /// The `<...>` target of a `Link: <url>; rel="next"` header.
    fn next_target(link: &str) -> String {
        assert!(link.ends_with("; rel=\"next\""), "{link}");
        link.strip_prefix('<').and_then(|l| l.split_once('>')).map(|(t, _)| t.to_owned()).expect("Link target")
    }

    #[tokio::test]
    async fn tags_are_sorted_and_paginated() {
        let s = TestServer::shared();
        let repo = unique("tags");
        let image = s.push_image(&repo, "v2").await;
        for tag in ["latest", "v10", "v1", "A-upper", "_under"] {
            s.push_manifest(&repo, tag, OCI_MANIFEST, &image.bytes).await;
        }
        let mut all = vec!["A-upper", "_under", "latest", "v1", "v10", "v2"];
        all.sort();
        let r = s.admin(Method::GET, &format!("/v2/{repo}/tags/list")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(header(&r, "content-type").as_deref(), Some("application/json"));
        assert_eq!(header(&r, "link"), None);
        assert_eq!(json_body(r).await, json!({ "name": repo, "tags": all }));

        let r = s.admin(Method::GET, &format!("/v2/{repo}/tags/list?n=2")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let link = header(&r, "link").expect("Link on a partial page");
        assert_eq!(link, format!("</v2/{repo}/tags/list?n=2&last={}>; rel=\"next\"", all[1]));
        let mut seen: Vec<String> = serde_json::from_value(json_body(r).await["tags"].clone()).unwrap();
        assert_eq!(seen, all[..2]);
        let mut next = Some(next_target(&link));
        for _ in 0..10 {
            let Some(path) = next.take() else { break };
            let r = s.admin(Method::GET, &path).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200);
            next = header(&r, "link").map(|l| next_target(&l));
            let page: Vec<String> = serde_json::from_value(json_body(r).await["tags"].clone()).unwrap();
            assert!(page.len() <= 2, "{page:?}");
            seen.extend(page);
        }
        assert!(next.is_none(), "pagination did not end");
        assert_eq!(seen, all);

        let r = s.admin(Method::GET, &format!("/v2/{repo}/tags/list?n=3&last=latest")).send().await.unwrap();
        assert_eq!(json_body(r).await["tags"], json!(["v1", "v10", "v2"]));
    }

    #[tokio::test]
    async fn bad_n_is_400() {
        let s = TestServer::shared();
        let repo = unique("badn");
        s.push_image(&repo, "v1").await;
        for n in ["abc", "-1", "1.5"] {
            let r = s.admin(Method::GET, &format!("/v2/{repo}/tags/list?n={n}")).send().await.unwrap();
            assert_error(r, 400, "PAGINATION_NUMBER_INVALID").await;
            let r = s.admin(Method::GET, &format!("/v2/_catalog?n={n}")).send().await.unwrap();
            assert_error(r, 400, "PAGINATION_NUMBER_INVALID").await;
        }
    }

    #[tokio::test]
    async fn catalog_is_sorted_and_paginated() {
        let s = TestServer::start().await;
        let names = ["d", "b/y", "a", "c1/x", "b"];
        for name in names {
            s.push_image(name, "v1").await;
        }
        let r = s.anon(Method::GET, "/v2/_catalog").send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some_and(|c| c.contains("registry:catalog:*")));
        assert_error(r, 401, "UNAUTHORIZED").await;

        let r = s.admin(Method::GET, "/v2/_catalog").send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(json_body(r).await, json!({ "repositories": ["a", "b", "b/y", "c1/x", "d"] }));

        let r = s.admin(Method::GET, "/v2/_catalog?n=2").send().await.unwrap();
        assert_eq!(header(&r, "link").as_deref(), Some("</v2/_catalog?n=2&last=b>; rel=\"next\""));
        assert_eq!(json_body(r).await["repositories"], json!(["a", "b"]));
        let r = s.admin(Method::GET, "/v2/_catalog?n=2&last=b").send().await.unwrap();
        let link = header(&r, "link").expect("Link");
        assert_eq!(json_body(r).await["repositories"], json!(["b/y", "c1/x"]));
        let r = s.admin(Method::GET, &next_target(&link)).send().await.unwrap();
        assert_eq!(header(&r, "link"), None);
        assert_eq!(json_body(r).await["repositories"], json!(["d"]));
    }

    /// `n` and `last` from the client: huge, zero, odd bytes, past the end.
    #[tokio::test]
    async fn hostile_page_bounds() {
        let s = TestServer::start().await;
        let image = s.push_image("hb/a", "v1").await;
        s.push_manifest("hb/a", "v2", OCI_MANIFEST, &image.bytes).await;
        s.push_image("hb/b", "v1").await;
        let (catalog, tags) = ("/v2/_catalog", "/v2/hb/a/tags/list");
        let get = |path: String| {
            let s = &s;
            async move {
                let r = s.admin(Method::GET, &path).send().await.unwrap();
                let (status, link) = (r.status().as_u16(), header(&r, "link"));
                (status, link, json_body(r).await)
            }
        };
        // Larger than any page: the whole list (capped at the largest page), no Link.
        for n in ["18446744073709551615", "10001", "1000000"] {
            let (status, link, body) = get(format!("{catalog}?n={n}")).await;
            assert_eq!((status, link, &body["repositories"]), (200, None, &json!(["hb/a", "hb/b"])));
            let (status, link, body) = get(format!("{tags}?n={n}")).await;
            assert_eq!((status, link, &body["tags"]), (200, None, &json!(["v1", "v2"])));
        }
        // Past what a number may be: refused.
        for path in [format!("{catalog}?n=18446744073709551616"), format!("{tags}?n=99999999999999999999999")] {
            let r = s.admin(Method::GET, &path).send().await.unwrap();
            assert_error(r, 400, "PAGINATION_NUMBER_INVALID").await;
        }
        // Zero: an empty page, and no Link to follow (it would not move on).
        assert_eq!(get(format!("{catalog}?n=0")).await, (200, None, json!({ "repositories": [] })));
        assert_eq!(get(format!("{tags}?n=0")).await, (200, None, json!({ "name": "hb/a", "tags": [] })));
        // After the end, and after a name that is not there.
        assert_eq!(get(format!("{catalog}?last=zzz")).await, (200, None, json!({ "repositories": [] })));
        assert_eq!(get(format!("{catalog}?n=1&last=hb/a0")).await, (200, None, json!({ "repositories": ["hb/b"] })));
        assert_eq!(get(format!("{tags}?last=v9")).await, (200, None, json!({ "name": "hb/a", "tags": [] })));
        assert_eq!(get(format!("{tags}?n=1&last=v10")).await, (200, None, json!({ "name": "hb/a", "tags": ["v2"] })));
        // Odd bytes in `last` are not names or tags: refused, never used as a path or a key.
        for last in ["%00", "hb%2F..%2F..", "..%2Fx", "hb//b", "HB", "%C3%A9", "a%0Ab", &"a".repeat(5000)] {
            let r = s.admin(Method::GET, &format!("{catalog}?last={last}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 400, "catalog last={last}");
        }
        for last in ["%00", "..", "a%2Fb", "-x", "%C3%A9", "a%0Ab", &"a".repeat(200)] {
            let r = s.admin(Method::GET, &format!("{tags}?last={last}")).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 400, "tags last={last}");
        }
    }
}

mod credentials {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use regbridge::oci::media_types::OCI_MANIFEST;
    use regbridge::{ArtifactRegistry, Credentials, CrossAccountAccess, CrossAccountPermissions, Permissions};

    use super::*;

    const TTL: Duration = Duration::from_secs(900);

    fn with(r: reqwest::RequestBuilder, c: &Credentials) -> reqwest::RequestBuilder {
        r.basic_auth(&c.username, Some(c.password.expose()))
    }

    /// A repository owned by `local` with an image tagged `v1`.
    async fn repo_with_image(s: &TestServer, prefix: &str) -> (String, Image) {
        let repo = s.registry.create_repository(&unique(prefix)).await.unwrap().name;
        let image = s.push_image(&repo, "v1").await;
        (repo, image)
    }

    #[tokio::test]
    async fn pull_credentials_can_pull_but_not_push() {
        let s = TestServer::shared();
        let (repo, image) = repo_with_image(&s, "pullcreds").await;
        let c = s.registry.generate_credentials(&repo, Permissions::Pull, TTL).await.unwrap();
        let r = with(s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.bytes().await.unwrap().as_ref(), image.bytes.as_slice());
        let r = with(s.anon(Method::GET, &format!("/v2/{repo}/blobs/{}", sha256(&image.layer))), &c).send();
        assert_eq!(r.await.unwrap().status().as_u16(), 200);
        let r = with(s.anon(Method::GET, &format!("/v2/{repo}/tags/list")), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let r = with(s.anon(Method::GET, "/v2/"), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);

        let r = with(s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")), &c).send().await.unwrap();
        assert_error(r, 403, "DENIED").await;
        let r = with(s.anon(Method::PUT, &format!("/v2/{repo}/manifests/v2")), &c)
            .header("Content-Type", OCI_MANIFEST)
            .body(image.bytes.clone())
            .send()
            .await
            .unwrap();
        assert_error(r, 403, "DENIED").await;
        let r = with(s.anon(Method::DELETE, &format!("/v2/{repo}/manifests/v1")), &c).send().await.unwrap();
        assert_error(r, 403, "DENIED").await;
    }

    #[tokio::test]
    async fn push_pull_credentials_can_push() {
        let s = TestServer::shared();
        let (repo, _) = repo_with_image(&s, "pushcreds").await;
        let c = s.registry.generate_credentials(&repo, Permissions::PushPull, TTL).await.unwrap();
        let data = blob(30, 1000);
        let digest = sha256(&data);
        let r = with(s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/?digest={digest}")), &c)
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        s.push_blob(&repo, EMPTY_JSON).await;
        let m =
            serde_json::to_vec(&image_manifest(&empty_config(), &[descriptor(OCI_LAYER, &blob(30, 1000))])).unwrap();
        let r = with(s.anon(Method::PUT, &format!("/v2/{repo}/manifests/v2")), &c)
            .header("Content-Type", OCI_MANIFEST)
            .body(m)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
    }

    #[tokio::test]
    async fn credentials_are_limited_to_their_repository() {
        let s = TestServer::shared();
        let (a, _) = repo_with_image(&s, "limited-a").await;
        let (b, _) = repo_with_image(&s, "limited-b").await;
        let c = s.registry.generate_credentials(&a, Permissions::PushPull, TTL).await.unwrap();
        let r = with(s.anon(Method::GET, &format!("/v2/{b}/manifests/v1")), &c).send().await.unwrap();
        assert_error(r, 403, "DENIED").await;
        let r = with(s.anon(Method::POST, &format!("/v2/{b}/blobs/uploads/")), &c).send().await.unwrap();
        assert_error(r, 403, "DENIED").await;
        // And they never see other repositories in the catalog.
        let r = with(s.anon(Method::GET, "/v2/_catalog"), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(json_body(r).await["repositories"], json!([a]));
    }

    #[tokio::test]
    async fn expired_credentials_are_401() {
        let s = TestServer::shared();
        let (repo, _) = repo_with_image(&s, "expiring").await;
        let c = s.registry.generate_credentials(&repo, Permissions::Pull, Duration::from_secs(1)).await.unwrap();
        let r = with(s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "fresh credentials work");
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let r = with(s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")), &c).send().await.unwrap();
        assert!(header(&r, "www-authenticate").is_some());
        assert_error(r, 401, "UNAUTHORIZED").await;
    }

    fn local_grant(account: &str, permissions: Permissions) -> CrossAccountPermissions {
        CrossAccountPermissions {
            access: CrossAccountAccess::Local { account_ids: BTreeSet::from([account.to_owned()]) },
            permissions,
        }
    }

    #[tokio::test]
    async fn cross_account_access_follows_grants() {
        let s = TestServer::shared();
        let (repo, _) = repo_with_image(&s, "xacct").await;
        let b = s.registry.clone().with_account("b");
        // Another account's repository: b mints nothing for it until it is granted access.
        assert!(matches!(
            b.generate_credentials(&repo, Permissions::Pull, TTL).await,
            Err(regbridge::Error::Denied { .. })
        ));

        let grant = local_grant("b", Permissions::Pull);
        s.registry.add_cross_account_access(&repo, &grant).await.unwrap();
        let c = b.generate_credentials(&repo, Permissions::Pull, TTL).await.unwrap();
        assert_eq!(c.username, "b");
        let get = || with(s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")), &c).send();
        assert_eq!(get().await.unwrap().status().as_u16(), 200, "after the grant");
        // A pull grant does not let b mint push credentials.
        let push = b.generate_credentials(&repo, Permissions::PushPull, TTL).await;
        assert!(matches!(push, Err(regbridge::Error::Denied { .. })), "{push:?}");

        // Revoking the grant stops the credentials already minted, at once.
        s.registry.remove_cross_account_access(&repo, &grant).await.unwrap();
        assert_error(get().await.unwrap(), 403, "DENIED").await;
    }

    #[tokio::test]
    async fn a_session_token_stops_working_when_its_grant_is_removed() {
        let s = TestServer::shared();
        let (repo, _) = repo_with_image(&s, "xacct-token").await;
        let grant = local_grant("c", Permissions::Pull);
        s.registry.add_cross_account_access(&repo, &grant).await.unwrap();
        let c = s.registry.clone().with_account("c").generate_credentials(&repo, Permissions::Pull, TTL).await;
        let c = c.unwrap();
        let r = with(s.anon(Method::GET, &format!("/token?service=regbridge&scope=repository:{repo}:pull")), &c);
        let token = json_body(r.send().await.unwrap()).await["token"].as_str().expect("token").to_owned();
        let get = || s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")).bearer_auth(&token).send();
        assert_eq!(get().await.unwrap().status().as_u16(), 200);
        s.registry.remove_cross_account_access(&repo, &grant).await.unwrap();
        assert_error(get().await.unwrap(), 403, "DENIED").await;
    }

    #[tokio::test]
    async fn mounting_from_a_repository_the_credentials_cannot_read_uploads_instead() {
        let s = TestServer::shared();
        let (secret, _) = repo_with_image(&s, "mount-secret").await;
        let data = blob(31, 900);
        let digest = s.push_blob(&secret, &data).await;
        let (mine, _) = repo_with_image(&s, "mount-mine").await;
        let c = s.registry.generate_credentials(&mine, Permissions::PushPull, TTL).await.unwrap();
        let r = with(s.anon(Method::POST, &format!("/v2/{mine}/blobs/uploads/?mount={digest}&from={secret}")), &c);
        let r = r.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 202, "no mount from a repository the caller cannot read");
        let r = with(s.anon(Method::HEAD, &format!("/v2/{mine}/blobs/{digest}")), &c).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404);
    }

    #[tokio::test]
    async fn token_from_pull_credentials_cannot_push() {
        let s = TestServer::shared();
        let (repo, _) = repo_with_image(&s, "tokpull").await;
        let c = s.registry.generate_credentials(&repo, Permissions::Pull, TTL).await.unwrap();
        let scope = format!("repository:{repo}:pull,push");
        let r = with(s.anon(Method::GET, &format!("/token?service=regbridge&scope={scope}")), &c).send();
        let r = r.await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let token = json_body(r).await["token"].as_str().expect("token").to_owned();
        let r = s.anon(Method::GET, &format!("/v2/{repo}/manifests/v1")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "pull with the token");
        let r = s.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).bearer_auth(&token).send().await.unwrap();
        // The token lacks push: 401 sends the client back to the token endpoint, which will not grant it.
        assert!(header(&r, "www-authenticate").is_some_and(|c| c.contains(&scope)));
        assert_error(r, 401, "UNAUTHORIZED").await;
    }
}

mod conformance {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use std::time::Duration;

    use regbridge::conformance::{Capabilities, PushProbe, run_all};
    use regbridge::oci::Reference;
    use regbridge::{Credentials, CrossAccountAccess, CrossAccountPermissions, Permissions};

    use super::*;

    struct HttpPushProbe {
        base: String,
        client: reqwest::Client,
    }

    #[async_trait::async_trait]
    impl PushProbe for HttpPushProbe {
        async fn can_push(&self, repository: &str, credentials: &Credentials) -> Result<bool, String> {
            let url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
            let r = self
                .client
                .post(&url)
                .basic_auth(&credentials.username, Some(credentials.password.expose()))
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            match r.status().as_u16() {
                201 | 202 => Ok(true),
                401 | 403 => Ok(false),
                other => Err(format!("POST {url}: unexpected {other}: {}", r.text().await.unwrap_or_default())),
            }
        }
    }

    fn grant(account: &str) -> CrossAccountPermissions {
        CrossAccountPermissions {
            access: CrossAccountAccess::Local { account_ids: BTreeSet::from([account.to_owned()]) },
            permissions: Permissions::Pull,
        }
    }

    #[tokio::test]
    async fn local_provider_passes_the_conformance_suite() {
        let s = TestServer::shared();
        let repo = unique("conf-existing");
        s.push_image(&repo, "v1").await;
        let mut caps = Capabilities::new("conf");
        caps.ttl_bounds = (Duration::from_secs(1), Duration::from_secs(12 * 3600));
        caps.grants = Some((grant("acct-a"), grant("acct-b")));
        caps.push_probe = Some(Arc::new(HttpPushProbe { base: s.base.clone(), client: s.client.clone() }));
        caps.existing_manifest = Some((repo, Reference::parse("v1").unwrap()));
        let result = run_all(&s.registry, &caps).await;
        assert_eq!(result, Ok(()));
    }
}
