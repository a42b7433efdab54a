//! The list commands of the CLI (`repo list`, `--output`) and configuration discovery, end to end against
//! a running server's data directory.

mod common;

use common::TestServer;
use common::cli::{ok_json, on_data_dir};
use serde_json::Value;

fn names(listed: &Value) -> Vec<&str> {
    listed.as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repo_list_covers_every_route_once() {
    let server = TestServer::start().await;
    for name in ["team/a", "team/b", "other/x"] {
        ok_json(&on_data_dir(&server, &["repo", "create", name], ""));
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("regbridge.toml");
    std::fs::write(
        &config,
        "[[routes]]\nprovider = \"local\"\n[[routes]]\nprefix = \"team\"\nprovider = \"local\"\n\
         [[routes]]\nprefix = \"hub\"\nprovider = \"generic\"\nregistry = \"127.0.0.1:9\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let out = on_data_dir(&server, &["repo", "list", "--config", config], "");
    let all = ok_json(&out);
    // Route by route, longest prefix first, each route in its provider's order.
    assert_eq!(names(&all), ["team/a", "team/b", "other/x"], "{all}");
    // Each repository under the route that serves it, not under the default route as well.
    let route = |name: &str| all.as_array().unwrap().iter().find(|r| r["name"] == name).unwrap()["route"].clone();
    assert!(route("team/a").as_str().unwrap().starts_with("route 2"), "{all}");
    assert!(route("other/x").as_str().unwrap().starts_with("route 1"), "{all}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot list"), "the generic route is named as skipped");

    let team = ok_json(&on_data_dir(&server, &["repo", "list", "--prefix", "team/", "--config", config], ""));
    assert_eq!(names(&team), ["team/a", "team/b"]);
    let one = ok_json(&on_data_dir(&server, &["repo", "list", "--limit", "1", "--config", config], ""));
    assert_eq!(names(&one).len(), 1);
    // A prefix that only looks like a route's prefix matches nothing of it.
    let none = ok_json(&on_data_dir(&server, &["repo", "list", "--prefix", "teamx", "--config", config], ""));
    assert_eq!(names(&none), Vec::<&str>::new());

    let table = on_data_dir(&server, &["repo", "list", "--output", "table", "--config", config], "");
    let text = String::from_utf8_lossy(&table.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("NAME") && lines[0].contains("ROUTE"), "{text}");
    assert_eq!(lines.len(), 4, "{text}");
}
