//! The filesystem storage's listing index: pages agree with the directories whatever happened to the
//! index (removed, left behind by a killed writer, rebuilt halfway) and with two instances writing one
//! directory (as `regbridge gc` or a CLI process next to the server do).

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use regbridge::oci::{Digest, Reference, RepositoryName, Tag};
use regbridge_providers::local::{FsStorage, ListPage, References, Storage, StoredManifest};

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).expect("name")
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).expect("tag")
}

fn manifest() -> StoredManifest {
    let bytes = Bytes::from_static(b"{\"schemaVersion\":2,\"index\":1}");
    StoredManifest {
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        digest: Digest::sha256(&bytes),
        bytes,
        subject: None,
    }
}

async fn put_tag(s: &FsStorage, repo: &RepositoryName, t: &str) {
    s.put_manifest(repo, &manifest(), &References::default(), None, Some(&tag(t))).await.unwrap();
}

async fn catalog(s: &FsStorage) -> Vec<String> {
    let page = s.list_repositories_page(None, 10_000).await.unwrap();
    assert!(!page.more);
    page.names
}

async fn tags(s: &FsStorage, repo: &RepositoryName) -> Vec<String> {
    let page = s.list_tags_page(repo, None, 10_000).await.unwrap();
    assert!(!page.more);
    page.names
}

/// Runs one statement on the index file behind the storage's back (what a killed writer leaves).
fn tamper(root: &Path, sql: &str) {
    let db = rusqlite::Connection::open(root.join("index.sqlite")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    db.execute_batch(sql).unwrap();
}

/// Three repositories, one nested, and tags on one of them.
async fn populated(root: &Path) -> FsStorage {
    let s = FsStorage::open(root).unwrap();
    for n in ["ix/a", "ix/a/b", "ix/c"] {
        s.create_repository(&name(n), "owner").await.unwrap();
    }
    for t in ["v1", "v2", "v3"] {
        put_tag(&s, &name("ix/a"), t).await;
    }
    s
}

#[tokio::test]
async fn the_index_lives_in_the_storage_directory() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path()).await;
    assert_eq!(s.index_path(), dir.path().join("index.sqlite"));
    assert!(s.index_path().is_file());
    assert_eq!(catalog(&s).await, ["ix/a", "ix/a/b", "ix/c"]);
}

#[tokio::test]
async fn a_removed_index_is_rebuilt_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path()).await;
    drop(s);
    for file in ["index.sqlite", "index.sqlite-wal", "index.sqlite-shm"] {
        let _ = std::fs::remove_file(dir.path().join(file));
    }
    let s = FsStorage::open(dir.path()).unwrap();
    assert_eq!(catalog(&s).await, ["ix/a", "ix/a/b", "ix/c"]);
    assert_eq!(tags(&s, &name("ix/a")).await, ["v1", "v2", "v3"]);
    assert_eq!(
        s.list_repositories_page(Some("ix/a"), 1).await.unwrap(),
        ListPage { names: vec!["ix/a/b".into()], more: true }
    );
}

#[tokio::test]
async fn an_unfinished_rebuild_is_done_again_at_open() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path()).await);
    // Half a rebuild: some entries, no completion mark (its transaction never committed, as it were).
    tamper(dir.path(), "DELETE FROM meta; DELETE FROM repositories WHERE name = 'ix/c'; DELETE FROM tags;");
    let s = FsStorage::open(dir.path()).unwrap();
    assert_eq!(catalog(&s).await, ["ix/a", "ix/a/b", "ix/c"]);
    assert_eq!(tags(&s, &name("ix/a")).await, ["v1", "v2", "v3"]);
}

#[tokio::test]
async fn entries_a_killed_writer_left_are_skipped_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path()).await;
    // Killed after indexing and before writing the files (create), or after removing the files and
    // before the index (delete): entries without files, among and after the real ones.
    tamper(
        dir.path(),
        "INSERT INTO repositories (name) VALUES ('ix/a0'), ('ix/b'), ('ix/zz'), ('../../etc'), ('IX/Bad');
         INSERT INTO tags (repo, tag) VALUES ('ix/a', 'v1a'), ('ix/a', 'v4'), ('ix/a', '..'), ('ix/c', 'v1');",
    );
    std::fs::remove_file(dir.path().join("repositories/ix/c/_meta.json")).unwrap();
    std::fs::remove_file(dir.path().join("repositories/ix/a/_tags/v2")).unwrap();
    // Pages are full and in order whatever the leftovers.
    assert_eq!(s.list_repositories_page(None, 1).await.unwrap(), ListPage { names: vec!["ix/a".into()], more: true });
    assert_eq!(
        s.list_repositories_page(Some("ix/a"), 1).await.unwrap(),
        ListPage { names: vec!["ix/a/b".into()], more: false }
    );
    assert_eq!(tags(&s, &name("ix/a")).await, ["v1", "v3"]);
    assert_eq!(
        s.list_tags_page(&name("ix/a"), None, 1).await.unwrap(),
        ListPage { names: vec!["v1".into()], more: true }
    );
    // And the leftovers seen are gone from the index.
    let db = rusqlite::Connection::open(dir.path().join("index.sqlite")).unwrap();
    let count = |sql: &str| db.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT count(*) FROM repositories"), 2);
    assert_eq!(count("SELECT count(*) FROM tags WHERE repo = 'ix/a'"), 2);
    // A repository created again after its entry was removed is listed again.
    s.create_repository(&name("ix/c"), "owner").await.unwrap();
    assert_eq!(catalog(&s).await, ["ix/a", "ix/a/b", "ix/c"]);
}

#[tokio::test]
async fn directories_changed_behind_the_storage_are_seen_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let s = populated(dir.path()).await;
    // A restored backup: a repository and a tag the index never saw.
    let restored = dir.path().join("repositories/ix/restored");
    std::fs::create_dir_all(restored.join("_tags")).unwrap();
    std::fs::copy(dir.path().join("repositories/ix/c/_meta.json"), restored.join("_meta.json")).unwrap();
    std::fs::write(restored.join("_tags/v9"), manifest().digest.to_string()).unwrap();
    s.rebuild_index().await.unwrap();
    assert_eq!(catalog(&s).await, ["ix/a", "ix/a/b", "ix/c", "ix/restored"]);
    assert_eq!(tags(&s, &name("ix/restored")).await, ["v9"]);
    assert_eq!(catalog(&s).await, s.list_repositories().await.unwrap());
}

/// Two instances on one directory (two processes, as far as SQLite and the lock are concerned: separate
/// connections, separate lock file handles) writing at once: both list what the directories hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_writing_one_directory_agree_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(FsStorage::open(dir.path()).unwrap());
    let b = Arc::new(FsStorage::open(dir.path()).unwrap());
    let repo = name("two/shared");
    a.create_repository(&repo, "owner").await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let repo = repo.clone();
        tasks.push(tokio::spawn(async move {
            let own = name(&format!("two/r{i:02}"));
            s.create_repository(&own, "owner").await.unwrap();
            put_tag(&s, &repo, &format!("t{i:02}")).await;
            // Every third one is deleted again, by the other instance's half of the writers too.
            if i % 3 == 0 {
                s.delete_repository(&own).await.unwrap();
                s.delete_manifest(&repo, &Reference::Tag(tag(&format!("t{i:02}")))).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let truth = a.list_repositories().await.unwrap();
    assert_eq!(truth.len(), 1 + 40 - 14);
    assert_eq!(catalog(&a).await, truth);
    assert_eq!(catalog(&b).await, truth);
    let truth_tags = a.list_tags(&repo).await.unwrap();
    assert_eq!(truth_tags.len(), 40 - 14);
    assert_eq!(tags(&a, &repo).await, truth_tags);
    assert_eq!(tags(&b, &repo).await, truth_tags);
    // A third instance opened now uses the same index (nothing to rebuild) and agrees too.
    let c = FsStorage::open(dir.path()).unwrap();
    assert_eq!(catalog(&c).await, truth);
}
