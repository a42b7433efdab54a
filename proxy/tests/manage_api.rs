//! The management API (`/admin/v1/`) of a running server: API tokens, repositories, cross-account access,
//! credentials in every format, cleanup, gc, the OpenAPI document, the one error shape; the hostile cases
//! (a token minting a longer one, registry tokens on the management API, minted credentials reaching
//! another repository, names that escape); and the CLI through `regbridge login` against a server in
//! another data directory.

mod common;

use common::cli::{away as cli, ok};
use common::{ADMIN, PASSWORD, TestServer, unique};
use regbridge::ArtifactRegistry;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn json_of(r: reqwest::Response) -> Value {
    let status = r.status();
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {text}"))
}

/// Asserts the one error shape with `code`, and answers the first message.
async fn error_of(r: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(r.status().as_u16(), status);
    let body = json_of(r).await;
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    body["errors"][0]["message"].as_str().unwrap().to_owned()
}

async fn api_token(server: &TestServer) -> String {
    let r = server.admin(Method::POST, "/admin/v1/tokens").json(&json!({"ttl": "1h"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    json_of(r).await["token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn tokens_authenticate_the_management_api_only_and_cannot_extend_themselves() {
    let server = TestServer::start().await;
    let token = api_token(&server).await;
    let who = server.anon(Method::GET, "/admin/v1/whoami").bearer_auth(&token).send().await.unwrap();
    assert_eq!(json_of(who).await, json!({"user": ADMIN, "admin": true}));
    // A token cannot issue another (which could live longer than it).
    let again = server.anon(Method::POST, "/admin/v1/tokens").bearer_auth(&token).send().await.unwrap();
    assert!(error_of(again, 401, "UNAUTHORIZED").await.contains("user name and password"));
    // Lifetimes are bounded.
    for ttl in ["8d", "0s", "soon"] {
        let r = server.admin(Method::POST, "/admin/v1/tokens").json(&json!({"ttl": ttl})).send().await.unwrap();
        assert!(error_of(r, 400, "INVALID").await.contains("ttl"), "{ttl}");
    }
    // The API token grants nothing on the registry API.
    let repo = format!("{}/app", unique("tok"));
    server.push_image(&repo, "v1").await;
    let v2 = server.anon(Method::GET, &format!("/v2/{repo}/tags/list")).bearer_auth(&token).send().await.unwrap();
    assert!(v2.status() == 401 || v2.status() == 403, "{}", v2.status());
    let catalog = server.anon(Method::GET, "/v2/_catalog").bearer_auth(&token).send().await.unwrap();
    assert!(!catalog.text().await.unwrap().contains(&repo), "the catalog shows an API token nothing");
    // Registry session tokens and minted credentials are not API tokens.
    let session = server.admin(Method::GET, "/token?scope=repository:a/b:pull").send().await.unwrap();
    let session = json_of(session).await["token"].as_str().unwrap().to_owned();
    let r = server.anon(Method::GET, "/admin/v1/whoami").bearer_auth(&session).send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
    let r = server.anon(Method::GET, "/admin/v1/whoami").bearer_auth("not.a.token").send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
    let r = server.anon(Method::GET, "/admin/v1/whoami").send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
    let r = server.anon(Method::GET, "/admin/v1/whoami").basic_auth(ADMIN, Some("wrong")).send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn repositories_are_created_read_and_deleted_on_their_route() {
    let server = TestServer::shared();
    let name = format!("{}/app", unique("mgmt"));
    let r = server.admin(Method::POST, "/admin/v1/repositories").json(&json!({"name": name})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"], format!("/admin/v1/repositories/{name}").as_str());
    assert_eq!(json_of(r).await["name"], name.as_str());
    let r = server.admin(Method::GET, &format!("/admin/v1/repositories/{name}")).send().await.unwrap();
    assert_eq!(json_of(r).await["name"], name.as_str());
    let r = server.admin(Method::DELETE, &format!("/admin/v1/repositories/{name}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = server.admin(Method::GET, &format!("/admin/v1/repositories/{name}")).send().await.unwrap();
    error_of(r, 404, "NOT_FOUND").await;
    // Names that are not repository names, whatever they try.
    for bad in ["../etc", "Team/App", "a//b", "a/%2e%2e/b", "-x"] {
        let r = server.admin(Method::POST, "/admin/v1/repositories").json(&json!({"name": bad})).send().await.unwrap();
        error_of(r, 400, "INVALID").await;
        let r = server.admin(Method::GET, &format!("/admin/v1/repositories/{bad}")).send().await.unwrap();
        assert!(r.status() == 400 || r.status() == 404, "{bad}: {}", r.status());
    }
    // Bodies that are not what the endpoint takes say what to send.
    let r = server.admin(Method::POST, "/admin/v1/repositories").body("{").send().await.unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("team/app"));
    let r = server
        .admin(Method::POST, "/admin/v1/repositories")
        .json(&json!({"name": "a/b", "owner": "x"}))
        .send()
        .await
        .unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("owner"));
}

#[tokio::test]
async fn access_is_granted_listed_and_revoked_at_every_level() {
    let server = TestServer::shared();
    let name = format!("{}/app", unique("acc"));
    server.admin(Method::POST, "/admin/v1/repositories").json(&json!({"name": name})).send().await.unwrap();
    let grant = |permissions: &str| json!({"repository": name, "grant": {"access": {"platform": "local", "accountIds": ["team-b"]}, "permissions": permissions}});
    for level in ["pull", "pushPull"] {
        let r = server.admin(Method::POST, "/admin/v1/access").json(&grant(level)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let r = server.admin(Method::GET, "/admin/v1/access").query(&[("repository", &name)]).send().await.unwrap();
    assert_eq!(json_of(r).await.as_array().unwrap().len(), 2);
    let revoke = json!({"repository": name, "access": {"platform": "local", "accountIds": ["team-b"]}});
    let r = server.admin(Method::POST, "/admin/v1/access/revoke").json(&revoke).send().await.unwrap();
    assert_eq!(json_of(r).await, json!([]), "revoked at every level");
    let r = server.admin(Method::POST, "/admin/v1/access/revoke").json(&revoke).send().await.unwrap();
    error_of(r, 404, "NOT_FOUND").await;
    let r = server.admin(Method::GET, "/admin/v1/access").send().await.unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("repository="));
}

#[tokio::test]
async fn minted_credentials_come_in_every_format_and_reach_their_repository_only() {
    let server = TestServer::shared();
    let name = format!("{}/app", unique("mint"));
    let other = format!("{}/app", unique("other"));
    server.admin(Method::POST, "/admin/v1/repositories").json(&json!({"name": name})).send().await.unwrap();
    let mint = |format: &str| json!({"repository": name, "push": true, "ttl": "10m", "format": format});
    let r = server.admin(Method::POST, "/admin/v1/credentials").json(&mint("json")).send().await.unwrap();
    let answer = json_of(r).await;
    assert_eq!(answer["registry"], server.base.as_str(), "{answer}");
    assert_eq!(answer["registry"], server.base.as_str());
    assert_eq!(answer["throughProxy"], false);
    let user = answer["credentials"]["username"].as_str().unwrap().to_owned();
    let password = answer["credentials"]["password"].as_str().unwrap().to_owned();
    let expires: chrono::DateTime<chrono::Utc> = answer["credentials"]["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires <= chrono::Utc::now() + chrono::Duration::seconds(601), "no longer than asked");
    // They push to their repository, and to no other.
    let start = |repo: &str| {
        server.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).basic_auth(&user, Some(&password)).send()
    };
    assert_eq!(start(&name).await.unwrap().status(), StatusCode::ACCEPTED);
    let denied = start(&other).await.unwrap().status();
    assert!(denied == 401 || denied == 403, "{denied}");

    let text = |format: &'static str| {
        let body = mint(format);
        let request = server.admin(Method::POST, "/admin/v1/credentials").json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK, "{format}");
            let kind = r.headers()["content-type"].to_str().unwrap().to_owned();
            (kind, r.text().await.unwrap())
        }
    };
    let (kind, env) = text("env").await;
    assert!(kind.starts_with("text/plain") && env.contains("REGBRIDGE_PASSWORD='"), "{env}");
    let (kind, config) = text("docker-config").await;
    assert_eq!(kind, "application/json");
    let host = server.base.trim_start_matches("http://");
    assert!(serde_json::from_str::<Value>(&config).unwrap()["auths"][host]["auth"].is_string(), "{config}");
    let (kind, secret) = text("k8s-secret").await;
    assert!(kind == "application/yaml" && secret.contains("kubernetes.io/dockerconfigjson"), "{secret}");
    let (_, header) = text("x-registry-auth").await;
    assert!(!header.trim().is_empty());

    for (body, what) in [
        (json!({"repository": name, "ttl": "0s"}), "ttl"),
        (json!({"repository": name, "format": "pem"}), "pem"),
        (json!({"repository": "../x"}), "name"),
        (json!({"repository": name, "permissions": "admin"}), "permissions"),
    ] {
        let r = server.admin(Method::POST, "/admin/v1/credentials").json(&body).send().await.unwrap();
        let message = error_of(r, 400, "INVALID").await.to_lowercase();
        assert!(message.contains(what), "{what}: {message}");
    }
    let r = server
        .admin(Method::POST, "/admin/v1/credentials/cleanup")
        .json(&json!({"repository": name}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn gc_runs_and_reports_its_status() {
    let server = TestServer::start().await;
    let r = server.admin(Method::GET, "/admin/v1/gc").send().await.unwrap();
    assert_eq!(json_of(r).await, json!({"running": false}));
    let r =
        server.admin(Method::POST, "/admin/v1/gc").json(&json!({"dryRun": true, "grace": "0s"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(json_of(r).await["dryRun"], true);
    let status = json_of(server.admin(Method::GET, "/admin/v1/gc").send().await.unwrap()).await;
    assert_eq!(status["running"], false);
    assert!(status["finishedAt"].is_string() && status["last"].is_object(), "{status}");
    let r = server.admin(Method::POST, "/admin/v1/gc").json(&json!({"grace": "a while"})).send().await.unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("grace"));
    let r = server.anon(Method::POST, "/admin/v1/gc").send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn the_openapi_document_is_served_and_is_the_checked_in_one() {
    let server = TestServer::shared();
    let r = server.anon(Method::GET, "/admin/v1/openapi.json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let served = r.text().await.unwrap();
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    assert_eq!(served, checked_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_from_another_host_through_login() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let cwd = tempfile::tempdir().unwrap();
    let (home_path, cwd_path) = (home.path().to_owned(), cwd.path().to_owned());
    let base = server.base.clone();
    let run = move |args: Vec<String>, stdin: String| {
        let (h, c) = (home_path.clone(), cwd_path.clone());
        tokio::task::spawn_blocking(move || cli(&h, &c, &args.iter().map(String::as_str).collect::<Vec<_>>(), &stdin))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    // A wrong password stores nothing.
    let out = run(args(&["login", &base, "--password-stdin"]), "wrong\n".into()).await.unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!home.path().join("regbridge/logins.json").exists());

    ok(&run(args(&["login", &base, "--password-stdin"]), format!("{PASSWORD}\n")).await.unwrap());
    let logins = home.path().join("regbridge/logins.json");
    let stored = std::fs::read_to_string(&logins).unwrap();
    assert!(!stored.contains(PASSWORD), "the password is never stored");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&logins).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let name = "remote/app";
    let repo: Value =
        serde_json::from_str(&ok(&run(args(&["repo", "create", name]), String::new()).await.unwrap())).unwrap();
    assert_eq!(repo["name"], name);
    // It went to the server: the server's storage has it.
    server.registry.get_repository(name).await.unwrap();
    let out = ok(&run(args(&["access", "add", name, "--local-account", "team-c"]), String::new()).await.unwrap());
    assert!(out.contains("team-c"));
    let out = ok(&run(args(&["access", "remove", name, "--local-account", "team-c"]), String::new()).await.unwrap());
    assert!(!out.contains("team-c"));
    let out = run(args(&["access", "remove", name, "--local-account", "team-c"]), String::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "not held: {}", String::from_utf8_lossy(&out.stderr));
    let creds: Value =
        serde_json::from_str(&ok(&run(args(&["creds", "mint", name, "--ttl", "5m"]), String::new()).await.unwrap()))
            .unwrap();
    assert!(creds["password"].is_string() && creds["expiresAt"].is_string(), "{creds}");
    let config = ok(&run(args(&["creds", "mint", name, "--format", "docker-config"]), String::new()).await.unwrap());
    assert!(config.contains("auths"));
    // The credential helper answers for the logged-in server through its API, away from its data directory.
    let host = base.trim_start_matches("http://").to_owned();
    let helped: Value =
        serde_json::from_str(&ok(&run(args(&["credential-helper", "get"]), host.clone()).await.unwrap())).unwrap();
    let (user, secret) = (helped["Username"].as_str().unwrap(), helped["Secret"].as_str().unwrap());
    let r = server
        .anon(Method::POST, &format!("/v2/{name}/blobs/uploads/"))
        .basic_auth(user, Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED, "the helper's credentials push");
    let report = ok(&run(args(&["gc", "--dry-run"]), String::new()).await.unwrap());
    assert!(report.contains("dryRun"));
    let out = run(args(&["repo", "get", "remote/missing"]), String::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(3));
    ok(&run(args(&["repo", "delete", name]), String::new()).await.unwrap());
    assert!(server.registry.get_repository(name).await.is_err());

    // After logout the commands act on this host again, where there is no data directory: they say so.
    ok(&run(args(&["logout"]), String::new()).await.unwrap());
    let out = run(args(&["repo", "create", name]), String::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a regbridge data directory"));
    // --server names a server without a login: the message says how to log in.
    let out = run(args(&["repo", "get", name, "--server", &base]), String::new()).await.unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&out.stderr).contains("regbridge login"));
}

#[tokio::test]
async fn a_member_manages_only_the_repositories_its_rules_give_it() {
    let server = TestServer::start().await;
    let rules = json!([{"repositories": "team/*", "actions": ["pull", "push"]}]);
    let r = server
        .admin(Method::POST, "/admin/v1/users")
        .json(&json!({"name": "mia", "rules": rules}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let password = json_of(r).await["password"].as_str().unwrap().to_owned();
    let member = |method: Method, path: &str| server.anon(method, path).basic_auth("mia", Some(&password));
    for name in ["team/a", "other/b"] {
        server.admin(Method::POST, "/admin/v1/repositories").json(&json!({"name": name})).send().await.unwrap();
    }
    // Inside its rules: create, read, mint.
    let r = member(Method::POST, "/admin/v1/repositories").json(&json!({"name": "team/new"})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = member(Method::POST, "/admin/v1/credentials")
        .json(&json!({"repository": "team/a", "push": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Outside: another repository, a look-alike prefix, delete (not given), admin endpoints.
    for (method, path, body) in [
        (Method::POST, "/admin/v1/repositories", json!({"name": "other/c"})),
        (Method::POST, "/admin/v1/repositories", json!({"name": "teamx/a"})),
        (Method::POST, "/admin/v1/credentials", json!({"repository": "other/b"})),
        (Method::POST, "/admin/v1/credentials/cleanup", json!({"repository": "other/b"})),
        (
            Method::POST,
            "/admin/v1/access",
            json!({"repository": "team/a", "grant": {"access": {"platform": "local", "accountIds": ["x"]}, "permissions": "pull"}}),
        ),
        (Method::POST, "/admin/v1/gc", json!({"dryRun": true})),
    ] {
        let r = member(method, path).json(&body).send().await.unwrap();
        error_of(r, 403, "DENIED").await;
    }
    for path in ["/admin/v1/repositories/other/b", "/admin/v1/users", "/admin/v1/registries"] {
        error_of(member(Method::GET, path).send().await.unwrap(), 403, "DENIED").await;
    }
    error_of(member(Method::DELETE, "/admin/v1/repositories/team/a").send().await.unwrap(), 403, "DENIED").await;
    // The listing shows what it may pull, across pages.
    let mut names = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut request = member(Method::GET, "/admin/v1/repositories").query(&[("limit", "1")]);
        if let Some(after) = &after {
            request = request.query(&[("after", after)]);
        }
        let page = json_of(request.send().await.unwrap()).await;
        names.extend(page["repositories"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    names.sort();
    assert_eq!(names, ["team/a", "team/new"]);
    let r = server.admin(Method::GET, "/admin/v1/repositories").query(&[("after", "7:x")]).send().await.unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("cursor"));
    // Its API token carries its rules, not more.
    let r = member(Method::POST, "/admin/v1/tokens").send().await.unwrap();
    let token = json_of(r).await["token"].as_str().unwrap().to_owned();
    let r = server
        .anon(Method::POST, "/admin/v1/repositories")
        .bearer_auth(&token)
        .json(&json!({"name": "other/d"}))
        .send()
        .await
        .unwrap();
    error_of(r, 403, "DENIED").await;
    let who = json_of(server.anon(Method::GET, "/admin/v1/whoami").bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(who, json!({"user": "mia", "admin": false}));
    // Deleting the user ends its token at once.
    server.admin(Method::DELETE, "/admin/v1/users/mia").send().await.unwrap();
    let r = server.anon(Method::GET, "/admin/v1/whoami").bearer_auth(&token).send().await.unwrap();
    error_of(r, 401, "UNAUTHORIZED").await;
}

/// Server-wide helper credentials (`POST /admin/v1/credentials/server`, what `docker-credential-regbridge`
/// answers for a logged-in server) of a member and a robot carry exactly their rules: every repository
/// their globs cover, with their actions, and nothing else; a robot's never outlive it; they end with the
/// account.
#[tokio::test]
async fn a_members_server_credentials_reach_exactly_its_rules() {
    let server = TestServer::start().await;
    let rules = json!([
        {"repositories": "team/*", "actions": ["pull", "push"]},
        {"repositories": "ro/**", "actions": ["pull"]},
    ]);
    let r = server.admin(Method::POST, "/admin/v1/users").json(&json!({"name": "hel", "rules": rules})).send();
    let r = r.await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let password = json_of(r).await["password"].as_str().unwrap().to_owned();
    for repo in ["ro/app", "other/app", "team/a", "teamx/a"] {
        server.push_image(repo, "v1").await;
    }
    let server_creds = |body: Value| {
        server.anon(Method::POST, "/admin/v1/credentials/server").basic_auth("hel", Some(&password)).json(&body).send()
    };
    let r = server_creds(json!({"ttl": "13h"})).await.unwrap();
    assert!(error_of(r, 400, "INVALID").await.contains("ttl"), "bounded as for admins");
    let creds = json_of(server_creds(json!({"ttl": "10m"})).await.unwrap()).await;
    let user = creds["username"].as_str().unwrap().to_owned();
    let secret = creds["secret"].as_str().unwrap().to_owned();
    assert_eq!(user, "regbridge-credential-helper@hel");
    let expires: chrono::DateTime<chrono::Utc> = creds["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires <= chrono::Utc::now() + chrono::Duration::seconds(601));

    // What the rules give: push to team/*, pull there and below ro/.
    let as_helper = |user: &str, secret: &str, method: Method, path: &str| {
        server.anon(method, path).basic_auth(user, Some(secret.to_owned()))
    };
    let push_blob = |user: String, secret: String, repo: &'static str| {
        let request = as_helper(
            &user,
            &secret,
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", common::sha256(b"x")),
        )
        .header("Content-Type", "application/octet-stream")
        .body(b"x".to_vec());
        async move { request.send().await.unwrap() }
    };
    assert_eq!(push_blob(user.clone(), secret.clone(), "team/a").await.status(), StatusCode::CREATED);
    let manifest = |repo: &str| format!("/v2/{repo}/manifests/v1");
    for repo in ["team/a", "ro/app"] {
        let r = as_helper(&user, &secret, Method::GET, &manifest(repo)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{repo}");
    }
    // And nothing more: another repository, a look-alike, push where it may only pull, delete (not given).
    let refused = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        assert!(status == 401 || status == 403, "{status}");
        let body = json_of(r).await;
        let code = body["errors"][0]["code"].as_str().unwrap_or_default().to_owned();
        assert!(["DENIED", "UNAUTHORIZED"].contains(&code.as_str()), "an OCI error: {body}");
    };
    for repo in ["other/app", "teamx/a"] {
        refused(as_helper(&user, &secret, Method::GET, &manifest(repo)).send().await.unwrap()).await;
    }
    refused(push_blob(user.clone(), secret.clone(), "ro/app").await).await;
    refused(push_blob(user.clone(), secret.clone(), "other/app").await).await;
    refused(as_helper(&user, &secret, Method::DELETE, &manifest("team/a")).send().await.unwrap()).await;
    // The token endpoint grants a session only what the rules give.
    let token = |scope: &str| {
        let r = as_helper(&user, &secret, Method::GET, &format!("/token?scope={scope}")).send();
        async move { json_of(r.await.unwrap()).await["token"].as_str().unwrap().to_owned() }
    };
    let session = token("repository:other/app:pull").await;
    let r = server.anon(Method::GET, &manifest("other/app")).bearer_auth(&session).send().await.unwrap();
    refused(r).await;
    let session = token("repository:team/a:pull").await;
    let r = server.anon(Method::GET, &manifest("team/a")).bearer_auth(&session).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Pull-only: the rules' pulls alone.
    let pull = json_of(server_creds(json!({"pullOnly": true})).await.unwrap()).await;
    let pull_secret = pull["secret"].as_str().unwrap().to_owned();
    refused(push_blob(user.clone(), pull_secret.clone(), "team/a").await).await;
    let r = as_helper(&user, &pull_secret, Method::GET, &manifest("team/a")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // A forged user name does not widen them: the token names its subject.
    let r = as_helper("regbridge-credential-helper", &secret, Method::GET, &manifest("other/app")).send();
    refused(r.await.unwrap()).await;

    // A robot's: its globs, never past its expiry.
    let body = json!({"name": "pusher", "rules": [{"repositories": "team/*", "actions": ["push"]}], "expires": "1h"});
    let r = server.admin(Method::POST, "/admin/v1/robots").json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let robot = json_of(r).await;
    let (robot_name, robot_secret) =
        (robot["name"].as_str().unwrap().to_owned(), robot["secret"].as_str().unwrap().to_owned());
    let robot_expires: chrono::DateTime<chrono::Utc> = robot["expiresAt"].as_str().unwrap().parse().unwrap();
    let robot_creds = |body: Value| {
        server
            .anon(Method::POST, "/admin/v1/credentials/server")
            .basic_auth(&robot_name, Some(&robot_secret))
            .json(&body)
            .send()
    };
    let r = robot_creds(json!({"pullOnly": true})).await.unwrap();
    assert!(error_of(r, 403, "DENIED").await.contains("pull"), "a push-only robot has nothing to pull");
    let creds = json_of(robot_creds(json!({"ttl": "12h"})).await.unwrap()).await;
    let expires: chrono::DateTime<chrono::Utc> = creds["expiresAt"].as_str().unwrap().parse().unwrap();
    assert!(expires <= robot_expires, "{expires} is past the robot's expiry {robot_expires}");
    let (robot_user, robot_token) =
        (creds["username"].as_str().unwrap().to_owned(), creds["secret"].as_str().unwrap().to_owned());
    assert_eq!(push_blob(robot_user.clone(), robot_token.clone(), "team/b").await.status(), StatusCode::CREATED);
    refused(as_helper(&robot_user, &robot_token, Method::GET, &manifest("team/a")).send().await.unwrap()).await;

    // Narrowing the member's rules narrows the credentials issued before.
    let narrowed = json!({"rules": [{"repositories": "team/*", "actions": ["pull"]}]});
    let r = server.admin(Method::PATCH, "/admin/v1/users/hel").json(&narrowed).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    refused(push_blob(user.clone(), secret.clone(), "team/a").await).await;
    refused(as_helper(&user, &secret, Method::GET, &manifest("ro/app")).send().await.unwrap()).await;
    let r = as_helper(&user, &pull_secret, Method::GET, &manifest("team/a")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "what the rules still give");

    // Deleting the account ends them at once.
    server.admin(Method::DELETE, "/admin/v1/users/hel").send().await.unwrap();
    let r = as_helper(&user, &secret, Method::GET, &manifest("team/a")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let path = format!("/admin/v1/robots/{}", robot_name.trim_start_matches("robot$"));
    let r = server.admin(Method::DELETE, &path).send().await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    refused(push_blob(robot_user, robot_token, "team/b").await).await;
}

/// `docker-credential-regbridge` logged in as a member (`regbridge login --username`) answers with the
/// member's server-wide credentials: they push inside its rules only, and `--pull-only` ones never push.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_logged_in_as_a_member_answers_with_its_rules() {
    let server = TestServer::start().await;
    let rules = json!([{"repositories": "team/*", "actions": ["pull", "push"]}]);
    let r = server.admin(Method::POST, "/admin/v1/users").json(&json!({"name": "cli-m", "rules": rules})).send();
    let password = json_of(r.await.unwrap()).await["password"].as_str().unwrap().to_owned();
    let (home, cwd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (home_path, cwd_path) = (home.path().to_owned(), cwd.path().to_owned());
    let run = move |args: Vec<String>, stdin: String| {
        let (h, c) = (home_path.clone(), cwd_path.clone());
        tokio::task::spawn_blocking(move || cli(&h, &c, &args.iter().map(String::as_str).collect::<Vec<_>>(), &stdin))
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let login = args(&["login", &server.base, "--username", "cli-m", "--password-stdin"]);
    ok(&run(login, format!("{password}\n")).await.unwrap());
    let host = server.base.trim_start_matches("http://").to_owned();
    let helper = |extra: &[&str]| {
        let mut a = args(&["credential-helper", "get"]);
        a.extend(args(extra));
        let answer = run(a, host.clone());
        async move {
            let helped: Value = serde_json::from_str(&ok(&answer.await.unwrap())).unwrap();
            (helped["Username"].as_str().unwrap().to_owned(), helped["Secret"].as_str().unwrap().to_owned())
        }
    };
    let start = |repo: &str, (user, secret): &(String, String)| {
        server.anon(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).basic_auth(user, Some(secret)).send()
    };
    let full = helper(&[]).await;
    assert_eq!(full.0, "regbridge-credential-helper@cli-m");
    assert_eq!(start("team/app", &full).await.unwrap().status(), StatusCode::ACCEPTED);
    let r = start("other/app", &full).await.unwrap();
    assert!(error_of(r, 403, "DENIED").await.contains("other/app"));
    let pull = helper(&["--pull-only"]).await;
    let r = start("team/app", &pull).await.unwrap();
    assert!(r.status() == 401 || r.status() == 403, "{}", r.status());
}
