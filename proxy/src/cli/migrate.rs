//! `regbridge migrate`: copy the storage `serve` uses (or `--from`) into another one (`--to`), typically a
//! local registry into object storage. The copying is [`crate::manage::migrate`]'s; this module turns the
//! flags into the two [`StorageConfig`]s and opens both with [`open_storage`], as `serve` would.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use regbridge::{Error, Result};
use regbridge_providers::local::gc::GcOptions;

use super::context::ConfigArgs;
use crate::manage::migrate::{Progress, migrate};
use crate::storage_config::{StorageConfig, StorageSection, StorageUrl, open_storage};

/// The flags of `migrate`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  \
    regbridge migrate --data-dir /srv/regbridge --to s3://my-bucket/registry --to-region eu-west-1\n  \
    regbridge migrate --from fs:./regbridge-data/storage --to s3://reg --to-endpoint http://127.0.0.1:9000 \
    --to-allow-http\n\n\
    Stop the servers writing to the source first. Run it again after an interruption (or after the source \
    changed): it copies only what the destination is missing. Then point [storage] url at the destination.")]
pub struct MigrateArgs {
    /// The destination storage: s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], az://CONTAINER[/PREFIX] or
    /// fs:PATH. Credentials come from the cloud's standard chain (AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, profiles or roles; AZURE_STORAGE_*; GOOGLE_APPLICATION_CREDENTIALS).
    #[arg(long, value_name = "URL")]
    to: String,
    /// The destination's endpoint: an S3-compatible server (MinIO), an emulator, a private endpoint.
    #[arg(long, value_name = "URL")]
    to_endpoint: Option<String>,
    /// The destination's region (S3) [default: AWS_REGION / AWS_DEFAULT_REGION].
    #[arg(long, value_name = "REGION")]
    to_region: Option<String>,
    /// Allow plain HTTP to --to-endpoint.
    #[arg(long)]
    to_allow_http: bool,
    /// The source storage, as --to is written [default: the configured [storage], as `serve` opens it:
    /// --config's [storage] url, REGBRIDGE_STORAGE_URL, else DATA_DIR/storage].
    #[arg(long, value_name = "URL")]
    from: Option<String>,
    /// The configuration file whose [storage] is the source (see `serve --help`).
    #[arg(long, short, env = "REGBRIDGE_CONFIG")]
    config: Option<PathBuf>,
    /// The data directory whose storage is the source [default: the file's, else regbridge-data].
    #[arg(long, env = "REGBRIDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

/// Runs the copy: progress on stderr when it is a terminal, the report as JSON on stdout.
pub fn run(args: MigrateArgs) -> ExitCode {
    super::block_on(copy(args))
}

async fn copy(args: MigrateArgs) -> Result<()> {
    let config = ConfigArgs::of_data_dir(args.config.clone(), args.data_dir.clone()).load()?;
    let source = match &args.from {
        Some(url) => flag_storage("--from", url, StorageSection::default())?,
        None => config.storage.clone(),
    };
    let destination = flag_storage(
        "--to",
        &args.to,
        StorageSection {
            endpoint: args.to_endpoint.clone(),
            region: args.to_region.clone(),
            allow_http: args.to_allow_http.then_some(true),
            ..StorageSection::default()
        },
    )?;
    let data_dir = &config.data_dir;
    if same_place(&source, &destination, data_dir) {
        return Err(Error::bad_input(format!("--to {} is the source itself", destination.url)));
    }
    // The source must exist: a wrong --data-dir must not migrate an empty registry.
    let options = GcOptions { upload_expiry: config.upload_expiry, ..GcOptions::default() };
    let from = crate::manage::gc::open_configured(&source, data_dir, &options)?;
    let to = open_storage(&destination, data_dir, config.upload_expiry)?;
    let names = (describe(&source, data_dir), describe(&destination, data_dir));
    eprintln!("migrate: copying {} to {}", names.0, names.1);
    let terminal = std::io::stderr().is_terminal();
    let show = std::sync::Arc::new(move |p: &Progress| {
        if terminal {
            eprint!(
                "\rmigrate: {}/{} blobs, {}/{} MiB",
                p.blobs_done,
                p.blobs_total,
                p.bytes_done >> 20,
                p.bytes_total >> 20
            );
            if p.blobs_done == p.blobs_total {
                eprintln!();
            }
        }
    });
    let report = migrate(&*from, &*to, names, show).await?;
    eprintln!(
        "migrate: {} blobs copied ({} bytes), {} mounted, {} already there; {} manifests and {} tags copied, \
         {} and {} already there",
        report.blobs.copied,
        report.bytes.copied,
        report.blobs.mounted,
        report.blobs.skipped,
        report.manifests.copied,
        report.tags.copied,
        report.manifests.skipped,
        report.tags.skipped
    );
    super::print_json(&report);
    Ok(())
}

/// The storage a flag names: its URL checked under the flag's name, `section`'s settings, and none of
/// the `REGBRIDGE_STORAGE_*` variables (they configure the server's storage, the source).
fn flag_storage(flag: &'static str, url: &str, section: StorageSection) -> Result<StorageConfig> {
    StorageUrl::parse(url, flag)?;
    let section = StorageSection { url: Some(url.to_owned()), ..section };
    let mut config = StorageConfig::resolve_with(section, |_| None)
        .map_err(|e| Error::bad_input(format!("{flag} and its --to-* settings: {e}")))?;
    config.source = flag;
    Ok(config)
}

/// The URL of `storage` for messages and the report, a default fs directory spelled out.
fn describe(storage: &StorageConfig, data_dir: &std::path::Path) -> String {
    match storage.fs_root(data_dir) {
        Ok(path) => format!("fs:{}", path.display()),
        Err(_) => storage.url.to_string(),
    }
}

/// Whether both name the same place (copying a storage into itself would only report everything skipped,
/// or for fs, the same directory under two spellings).
fn same_place(a: &StorageConfig, b: &StorageConfig, data_dir: &std::path::Path) -> bool {
    match (a.fs_root(data_dir), b.fs_root(data_dir)) {
        (Ok(x), Ok(y)) => x == y || x.canonicalize().ok().is_some_and(|x| y.canonicalize().ok() == Some(x)),
        (Err(_), Err(_)) => a.url == b.url && a.settings.endpoint == b.settings.endpoint,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_themselves_in_errors() {
        let err = flag_storage("--to", "s4://bucket", StorageSection::default()).unwrap_err().to_string();
        assert!(err.starts_with("--to \"s4://bucket\"") && err.contains("unknown scheme"), "{err}");
        let http = StorageSection { endpoint: Some("http://127.0.0.1:9000".into()), ..StorageSection::default() };
        let err = flag_storage("--to", "s3://bucket", http).unwrap_err().to_string();
        assert!(err.starts_with("--to and its --to-* settings") && err.contains("allow_http"), "{err}");
        let err = flag_storage("--to", "s3://user:secret@bucket", StorageSection::default()).unwrap_err().to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn the_same_storage_is_refused() {
        let dir = std::path::Path::new("/srv/data");
        let default = StorageConfig::default();
        let spelled = flag_storage("--to", "fs:/srv/data/storage", StorageSection::default()).unwrap();
        assert!(same_place(&default, &spelled, dir));
        let s3 = flag_storage("--to", "s3://bucket/p", StorageSection::default()).unwrap();
        assert!(!same_place(&default, &s3, dir));
        assert!(same_place(&s3, &s3.clone(), dir));
    }
}
