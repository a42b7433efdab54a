//! Repository metadata: one key per repository under `catalog/`, created create-only and rewritten with
//! compare-and-swap, so racing replicas never lose a grant.

use chrono::Utc;
use regbridge::oci::RepositoryName;
use regbridge::{Error, Resource, Result};

use super::ObjectStorage;
use super::store::{CAS_ATTEMPTS, backoff};
use crate::local::storage::{MetaUpdate, RepositoryMeta};

fn parse(name: &RepositoryName, bytes: &[u8]) -> Result<RepositoryMeta> {
    serde_json::from_slice(bytes).map_err(|e| Error::internal(format!("corrupt metadata of {name}"), e))
}

fn contended(name: &RepositoryName) -> Error {
    Error::TooManyRequests {
        message: format!("the metadata of {name} is being changed by many writers at once; retry"),
        retry_after: Some(std::time::Duration::from_secs(1)),
    }
}

impl ObjectStorage {
    pub(super) async fn create_meta(&self, name: &RepositoryName, owner: &str) -> Result<RepositoryMeta> {
        let meta = RepositoryMeta {
            name: name.to_string(),
            owner: owner.into(),
            created_at: Utc::now(),
            grants: Default::default(),
        };
        let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
        if self.put_create(&self.keys.meta(name), json).await? {
            return Ok(meta);
        }
        // Created before (or by a racing replica): the first creation stands, as on the filesystem.
        match self.read_meta(name).await? {
            Some(existing) => Ok(existing),
            None => Err(Error::internal(
                format!("repository {name} was deleted while being created"),
                std::io::Error::other("retry the request"),
            )),
        }
    }

    pub(super) async fn read_meta(&self, name: &RepositoryName) -> Result<Option<RepositoryMeta>> {
        match self.get_optional(&self.keys.meta(name)).await? {
            Some(bytes) => parse(name, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub(super) async fn update_meta(&self, name: &RepositoryName, update: MetaUpdate) -> Result<RepositoryMeta> {
        let key = self.keys.meta(name);
        for attempt in 0..CAS_ATTEMPTS {
            let current =
                self.get_versioned(&key).await?.ok_or_else(|| Error::not_found(Resource::Repository, name.as_str()))?;
            let mut meta = parse(name, &current.bytes)?;
            // Applied to the version just read; when another writer wins, it is applied again to theirs.
            update(&mut meta);
            let json = serde_json::to_vec_pretty(&meta).expect("meta serialises");
            if self.put_conditional(&key, json, Some(current.version)).await? {
                return Ok(meta);
            }
            backoff(attempt).await;
        }
        Err(contended(name))
    }

    pub(super) async fn delete_meta(&self, name: &RepositoryName) -> Result<()> {
        let key = self.keys.meta(name);
        if self.head_optional(&key).await?.is_none() {
            return Err(Error::not_found(Resource::Repository, name.as_str()));
        }
        // The metadata goes first: from then on the repository is gone even if the rest is interrupted.
        self.delete(&key).await?;
        for prefix in self.keys.repo_contents(name) {
            self.delete_prefix(&prefix).await?;
        }
        Ok(())
    }
}
