use std::time::Duration;

use super::*;

fn section(toml_text: &str) -> StorageSection {
    crate::config_file::FileConfig::parse(toml_text).unwrap().storage
}

fn no_vars(_: &str) -> Option<String> {
    None
}

fn error(toml_text: &str) -> String {
    let parsed = crate::config_file::FileConfig::parse(toml_text);
    match parsed {
        Err(e) => e.to_string(),
        Ok(file) => StorageConfig::resolve_with(file.storage, no_vars).unwrap_err().to_string(),
    }
}

#[test]
fn absent_is_the_data_directory_on_local_disk() {
    let config = StorageConfig::resolve_with(section(""), no_vars).unwrap();
    assert_eq!(config.url, StorageUrl::Fs(None));
    assert!(config.redirect);
    assert_eq!(config.presign_ttl, Duration::from_secs(600));
}

#[test]
fn every_scheme_parses() {
    let url = |text: &str| StorageUrl::parse(text, "[storage] url").unwrap();
    assert_eq!(url("fs:/var/lib/x"), StorageUrl::Fs(Some("/var/lib/x".into())));
    assert_eq!(url("fs:relative/dir"), StorageUrl::Fs(Some("relative/dir".into())));
    assert_eq!(url("memory://"), StorageUrl::Memory);
    assert_eq!(url("s3://my-bucket"), StorageUrl::S3 { bucket: "my-bucket".into(), prefix: "".into() });
    assert_eq!(url("s3://my-bucket/a/b/"), StorageUrl::S3 { bucket: "my-bucket".into(), prefix: "a/b".into() });
    assert_eq!(url("gs://bkt/reg"), StorageUrl::Gcs { bucket: "bkt".into(), prefix: "reg".into() });
    assert_eq!(url("az://cont/reg"), StorageUrl::Azure { container: "cont".into(), prefix: "reg".into() });
}

#[test]
fn the_other_settings_and_their_defaults() {
    let text = "[storage]\nurl = \"s3://bkt/p\"\nregion = \"eu-west-1\"\nendpoint = \"http://127.0.0.1:9000\"\n\
                allow_http = true\npath_style = true\nredirect = false\npresign_ttl = \"5m\"\n\
                access_key_id = \"AKIA\"\nsecret_access_key = \"very-secret\"";
    let config = StorageConfig::resolve_with(section(text), no_vars).unwrap();
    assert!(!config.redirect);
    assert_eq!(config.presign_ttl, Duration::from_secs(300));
    assert_eq!(config.settings.region.as_deref(), Some("eu-west-1"));
    let shown = format!("{config:?}");
    assert!(!shown.contains("very-secret"), "the secret key is redacted in Debug: {shown}");
}

#[test]
fn variables_override_the_file_and_errors_name_them() {
    let vars = |name: &str| match name {
        URL_VAR => Some("gs://from-env/x".to_owned()),
        REGION_VAR => Some("us-west-2".to_owned()),
        _ => None,
    };
    let config = StorageConfig::resolve_with(section("[storage]\nurl = \"s3://bkt\""), vars).unwrap();
    assert_eq!(config.url, StorageUrl::Gcs { bucket: "from-env".into(), prefix: "x".into() });
    assert_eq!(config.source, URL_VAR);
    assert_eq!(config.settings.region.as_deref(), Some("us-west-2"));
    let err = StorageConfig::resolve_with(section(""), |n| (n == URL_VAR).then(|| "ftp://x".to_owned()));
    let err = err.unwrap_err().to_string();
    assert!(err.starts_with("REGBRIDGE_STORAGE_URL \"ftp://x\": unknown scheme \"ftp\""), "{err}");
}

#[test]
fn bad_input_says_what_to_write() {
    for (text, expected) in [
        ("url = \"ftp://bkt\"", "[storage] url \"ftp://bkt\": unknown scheme \"ftp\"; write fs:PATH"),
        ("url = \"bucket\"", "not a storage URL"),
        ("url = \"fs:\"", "fs: needs a directory"),
        ("url = \"file:///x\"", "local disk is written fs:PATH"),
        ("url = \"memory://x\"", "memory:// takes no bucket"),
        ("url = \"s3://\"", "invalid bucket"),
        ("url = \"s3://Upper\"", "invalid bucket"),
        ("url = \"s3://bkt/a/../b\"", "may not have empty, . or .. segments"),
        ("url = \"s3://bkt?x=1\"", "a query"),
        ("url = \"s3://bkt\"\npresign_ttl = \"0s\"", "presign_ttl must be between"),
        ("url = \"s3://bkt\"\npresign_ttl = \"30d\"", "presign_ttl must be between"),
        ("url = \"s3://bkt\"\npresign_ttl = \"soon\"", "is not a duration"),
        ("url = \"s3://bkt\"\naccess_key_id = \"A\"", "give access_key_id and secret_access_key together"),
        ("url = \"gs://bkt\"\npath_style = true", "path_style is an s3 setting; url is gs"),
        ("url = \"s3://bkt\"\naccess_key = \"k\"", "access_key is an az setting"),
        ("url = \"s3://bkt\"\nendpoint = \"not a url\"", "endpoint \"not a url\" is not a URL"),
        ("url = \"s3://bkt\"\nendpoint = \"http://127.0.0.1:9000\"", "set allow_http = true"),
        ("urll = \"s3://bkt\"", "unknown field `urll`"),
    ] {
        let err = error(&format!("[storage]\n{text}"));
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn credentials_never_appear_in_messages() {
    let err = error("[storage]\nurl = \"s3://AKIA:hunter2@bkt/p\"");
    assert!(err.contains("credentials do not go in the URL"), "{err}");
    assert!(!err.contains("hunter2") && !err.contains("AKIA"), "{err}");
    let err = error("[storage]\nurl = \"s3://bkt\"\nendpoint = \"http://u:hunter2@127.0.0.1\"\nallow_http = true");
    assert!(err.contains("credentials do not go in the URL") && !err.contains("hunter2"), "{err}");
}

#[test]
fn memory_storage_opens_without_touching_the_data_directory() {
    let config = StorageConfig::resolve_with(section("[storage]\nurl = \"memory://\""), no_vars).unwrap();
    let dir = tempfile::tempdir().unwrap();
    open_storage(&config, &dir.path().join("data"), Duration::from_secs(60)).unwrap();
    assert!(!dir.path().join("data").exists(), "memory:// writes nothing to disk");
}

#[test]
fn fs_storage_opens_where_the_url_says() {
    let dir = tempfile::tempdir().unwrap();
    let at = dir.path().join("elsewhere");
    let text = format!("[storage]\nurl = \"fs:{}\"", at.display());
    let config = StorageConfig::resolve_with(section(&text), no_vars).unwrap();
    open_storage(&config, &dir.path().join("data"), Duration::from_secs(60)).unwrap();
    assert!(at.is_dir(), "the storage directory is the one the URL names");
    assert!(!dir.path().join("data/storage").exists());
}
