//! Azure Container Registry.
use azure_core as _;
use azure_identity as _;
