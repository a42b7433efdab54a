//! The one HTTP client every provider uses for a registry's `/v2/` API.
