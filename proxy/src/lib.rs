//! The regbridge server: the OCI distribution API over local storage and, through the routing table,
//! over cloud registries.

#![warn(missing_docs)]
