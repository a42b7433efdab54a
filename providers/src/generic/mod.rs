//! The generic provider: any OCI registry with stored credentials.
