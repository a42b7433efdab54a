//! Opening the configured storage: the filesystem, or an `object_store` client checked at start-up.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use object_store::signer::Signer;
use object_store::{ClientOptions, RetryConfig};
use regbridge::{Error, Result};
use regbridge_providers::local::{Bucket, FsStorage, ObjectStorage, Presigner, Storage};

use super::{StorageConfig, StorageUrl};

/// A configured bucket: its client, and the same client as a URL signer where the store can presign.
struct Built {
    bucket: Arc<dyn Bucket>,
    signer: Option<Arc<dyn Signer>>,
}

/// How long the start-up check may take to list the prefix before the bucket counts as unreachable.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens the storage `config` names: the one path from configuration to storage for `regbridge serve`, the
/// CLI's commands on this host and the library factory. `data_dir` holds the default `fs` storage;
/// `upload_expiry` is how long an idle upload session lives.
///
/// For object storage the bucket is listed once (bounded by `REACH_TIMEOUT`, 10 s), so a wrong bucket, endpoint
/// or credentials fail here, at start-up, with a message naming the setting, not at the first push.
pub fn open_storage(config: &StorageConfig, data_dir: &Path, upload_expiry: Duration) -> Result<Arc<dyn Storage>> {
    let prefix = match &config.url {
        StorageUrl::Fs(_) => {
            let path = config.fs_root(data_dir)?;
            return Ok(Arc::new(FsStorage::open(path)?.with_upload_expiry(upload_expiry)));
        }
        StorageUrl::Memory => String::new(),
        StorageUrl::S3 { prefix, .. } | StorageUrl::Gcs { prefix, .. } | StorageUrl::Azure { prefix, .. } => {
            check_reachable(config)?;
            prefix.clone()
        }
    };
    let Built { bucket, signer } = build(config, RetryConfig::default())?;
    let storage = ObjectStorage::new(bucket, &prefix).with_upload_expiry(upload_expiry);
    Ok(Arc::new(match signer {
        Some(signer) => storage.with_presigner(Presigner::new(signer)),
        None => storage,
    }))
}

/// The client of the configured bucket. `retry` bounds how long one request is retried.
fn build(config: &StorageConfig, retry: RetryConfig) -> Result<Built> {
    let s = &config.settings;
    let mut options = ClientOptions::new();
    if let Some(allow) = s.allow_http {
        options = options.with_allow_http(allow);
    }
    let built: std::result::Result<Built, object_store::Error> = match &config.url {
        StorageUrl::Fs(_) => unreachable!("fs storage has no object store client"),
        StorageUrl::Memory => Ok(Built { bucket: Arc::new(object_store::memory::InMemory::new()), signer: None }),
        StorageUrl::S3 { bucket, .. } => {
            let mut b = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(region) = &s.region {
                b = b.with_region(region);
            }
            if let Some(endpoint) = &s.endpoint {
                b = b.with_endpoint(endpoint);
            }
            if let Some(path_style) = s.path_style {
                b = b.with_virtual_hosted_style_request(!path_style);
            }
            if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
                b = b.with_access_key_id(id).with_secret_access_key(secret.expose());
            }
            b.build().map(signing)
        }
        StorageUrl::Gcs { bucket, .. } => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(endpoint) = &s.endpoint {
                b = b.with_base_url(endpoint);
            }
            if let Some(path) = &s.service_account_path {
                b = b.with_service_account_path(path.to_string_lossy());
            }
            b.build().map(signing)
        }
        StorageUrl::Azure { container, .. } => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_container_name(container)
                .with_client_options(options)
                .with_retry(retry);
            if let Some(account) = &s.account {
                b = b.with_account(account);
            }
            if let Some(endpoint) = &s.endpoint {
                b = b.with_endpoint(endpoint.clone());
            }
            if let Some(key) = &s.access_key {
                b = b.with_access_key(key.expose());
            }
            b.build().map(signing)
        }
    };
    built.map_err(|e| {
        Error::bad_input(format!(
            "{} {}: cannot configure the client: {e}; check [storage] (region, endpoint, account, credentials)",
            config.source, config.url
        ))
    })
}

/// A client of a store that presigns URLs, as both the bucket and its signer.
fn signing<S: Bucket + Signer>(store: S) -> Built {
    let store = Arc::new(store);
    Built { bucket: store.clone(), signer: Some(store) }
}

/// Lists the prefix once, on a runtime of its own (callers may be inside one or not), within
/// [`REACH_TIMEOUT`].
fn check_reachable(config: &StorageConfig) -> Result<()> {
    let config = config.clone();
    let checked = std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal("storage check runtime", e))?;
        // Few quick retries: an endpoint that refuses connections is reported, not retried for minutes.
        let retry = RetryConfig { max_retries: 2, retry_timeout: REACH_TIMEOUT, ..Default::default() };
        let bucket = build(&config, retry)?.bucket;
        let prefix = object_store::path::Path::from(prefix_of(&config.url));
        let listed = runtime.block_on(async {
            tokio::time::timeout(REACH_TIMEOUT, async { bucket.list(Some(&prefix)).next().await }).await
        });
        let why = match listed {
            Ok(None | Some(Ok(_))) => return Ok(()),
            Ok(Some(Err(e))) => e.to_string(),
            Err(_) => format!("no answer within {} s", REACH_TIMEOUT.as_secs()),
        };
        Err(Error::bad_input(format!(
            "{} {}: the bucket cannot be listed: {why}; check that it exists, the endpoint and region, and that \
             the credentials may list it",
            config.source, config.url
        )))
    });
    checked.join().map_err(|_| Error::bad_input("the storage check panicked"))?
}

fn prefix_of(url: &StorageUrl) -> &str {
    match url {
        StorageUrl::S3 { prefix, .. } | StorageUrl::Gcs { prefix, .. } | StorageUrl::Azure { prefix, .. } => prefix,
        StorageUrl::Fs(_) | StorageUrl::Memory => "",
    }
}
