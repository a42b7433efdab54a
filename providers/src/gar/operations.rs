//! Long-running operations (`google.longrunning.Operation`): polled until `done`, within a time limit, and
//! their `error` (a `google.rpc.Status`) turned into a [`regbridge::Error`].
//!
//! See <https://cloud.google.com/artifact-registry/docs/reference/rest/v1/projects.locations.operations>.

use std::time::Duration;

use regbridge::{Error, Resource, Result};
use serde::Deserialize;
use tokio::time::Instant;

use super::client::GarApi;
use super::server_error;

/// The first wait between two polls; it doubles up to [`MAX_POLL_INTERVAL`].
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The longest wait between two polls.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(5);

/// An operation as the API answers it.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Operation {
    /// `projects/{p}/locations/{l}/operations/{id}`.
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) done: bool,
    #[serde(default)]
    pub(crate) error: Option<Status>,
}

/// A `google.rpc.Status`: a numeric `google.rpc.Code` and a message.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Status {
    #[serde(default)]
    pub(crate) code: i32,
    #[serde(default)]
    pub(crate) message: String,
}

/// Polls `op` until it is done, for at most `timeout`: `Ok` when it succeeded, its error otherwise
/// (`AlreadyExists` for `ALREADY_EXISTS`, which creators accept). `what` names the operation ("create
/// repository ...") in errors.
pub(crate) async fn wait(api: &GarApi, mut op: Operation, timeout: Duration, what: &str) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let mut interval = FIRST_POLL_INTERVAL;
    while !op.done {
        if op.name.is_empty() {
            return Err(server_error(format!("{what}: the operation returned has no name to poll")));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(server_error(format!(
                "{what}: operation {} did not finish within {} s; it may still complete: check it with `gcloud \
                 artifacts operations describe`, then try again",
                op.name,
                timeout.as_secs()
            )));
        }
        // The last poll falls on the deadline itself.
        tokio::time::sleep(interval.min(deadline - now)).await;
        interval = (interval * 2).min(MAX_POLL_INTERVAL);
        op = api.get_operation(&op.name).await?;
    }
    match &op.error {
        None => Ok(()),
        Some(status) => Err(status_error(&op.name, what, status)),
    }
}

/// The error for an operation that finished with `status` (codes of `google.rpc.Code`).
/// `FAILED_PRECONDITION` is the cloud's setup refusing the operation (an organisation policy such as
/// `constraints/gcp.resourceLocations`, a disabled API): a server error, as the client asked nothing wrong.
fn status_error(name: &str, what: &str, status: &Status) -> Error {
    let message = format!("{what}: operation {name} failed: {}", status.message);
    match status.code {
        3 | 11 => Error::bad_input(message),
        5 => Error::NotFound { resource: Resource::Repository, name: message, source: None },
        6 => Error::AlreadyExists { resource: Resource::Repository, name: message },
        8 => Error::TooManyRequests { message, retry_after: None },
        // The operation ran as the server's identity: a refusal is its setup (see `client::explain`).
        7 | 16 => server_error(format!("{message} (the server's Google identity was refused)")),
        9 => server_error(format!("{message} (FAILED_PRECONDITION: the project's setup refuses it)")),
        code => server_error(format!("{message} (code {code})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_errors() {
        let status = |code| Status { code, message: "boom".into() };
        assert!(matches!(status_error("op", "create", &status(7)), Error::Upstream { .. }));
        assert!(matches!(status_error("op", "create", &status(5)), Error::NotFound { .. }));
        assert!(matches!(status_error("op", "create", &status(3)), Error::InvalidInput { .. }));
        assert!(matches!(status_error("op", "create", &status(9)), Error::Upstream { .. }), "a server error");
        let err = status_error("op/1", "create repository x", &status(13));
        assert!(matches!(err, Error::Upstream { .. }));
        assert!(err.to_string().contains("op/1") && err.to_string().contains("boom"), "{err}");
    }
}
