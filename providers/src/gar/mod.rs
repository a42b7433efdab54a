//! Google Artifact Registry.
use google_cloud_auth as _;
