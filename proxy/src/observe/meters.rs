//! The request metrics' handles, created on first use per label set and kept, and the label values.

use std::sync::OnceLock;

use crate::routing::RoutingTable;

/// Endpoint kinds, the `endpoint` label's values.
pub(super) const ENDPOINTS: [&str; 13] = [
    "ping",
    "token",
    "metrics",
    "health",
    "admin",
    "other",
    "invalid",
    "catalog",
    "manifest",
    "blob",
    "upload",
    "tags",
    "referrers",
];

/// Methods with a label of their own; the rest count as `other`.
pub(super) const METHODS: [&str; 8] = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "other"];

pub(super) fn method_index(method: &axum::http::Method) -> usize {
    METHODS.iter().position(|m| *m == method.as_str()).unwrap_or(METHODS.len() - 1)
}

/// Route labels: the index of the route in the routing table, or one of these for requests no route serves.
pub(super) const NO_REPOSITORY: usize = usize::MAX;
pub(super) const NO_ROUTE: usize = usize::MAX - 1;

/// The `route` label of a route index: its prefix, `(default)` for the catch-all route.
pub(super) fn route_label(routes: &RoutingTable, index: usize) -> String {
    match index {
        NO_REPOSITORY => "-".into(),
        NO_ROUTE => "(none)".into(),
        i => match routes.routes().get(i) {
            Some(r) if r.prefix.is_empty() => "(default)".into(),
            Some(r) => r.prefix.clone(),
            None => "(none)".into(),
        },
    }
}

/// One server's metric handles, created on first use and kept: a request then costs a few atomic adds, not
/// the registry's lookup of a freshly built label set.
#[derive(Debug, Default)]
pub struct Meters {
    requests: std::sync::RwLock<std::collections::HashMap<(usize, usize, usize, u16), metrics::Counter>>,
    bytes: std::sync::RwLock<std::collections::HashMap<usize, (metrics::Counter, metrics::Counter)>>,
    durations: OnceLock<Vec<metrics::Histogram>>,
}

impl Meters {
    pub(super) fn requests(&self, routes: &RoutingTable, key: (usize, usize, usize, u16)) -> metrics::Counter {
        if let Some(c) = self.requests.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return c.clone();
        }
        let (route, endpoint, method, status) = key;
        let labels = [
            ("route", route_label(routes, route)),
            ("endpoint", ENDPOINTS[endpoint].to_owned()),
            ("method", METHODS[method].to_owned()),
            ("status", status.to_string()),
        ];
        let counter = metrics::counter!("regbridge_http_requests_total", &labels);
        self.requests.write().unwrap_or_else(|e| e.into_inner()).insert(key, counter.clone());
        counter
    }

    /// Bytes received and sent on `route`.
    pub(super) fn bytes(&self, routes: &RoutingTable, route: usize) -> (metrics::Counter, metrics::Counter) {
        if let Some(c) = self.bytes.read().unwrap_or_else(|e| e.into_inner()).get(&route) {
            return c.clone();
        }
        let label = [("route", route_label(routes, route))];
        let pair = (
            metrics::counter!("regbridge_http_received_bytes_total", &label),
            metrics::counter!("regbridge_http_sent_bytes_total", &label),
        );
        self.bytes.write().unwrap_or_else(|e| e.into_inner()).insert(route, pair.clone());
        pair
    }

    pub(super) fn duration(&self, endpoint: usize) -> &metrics::Histogram {
        let all = self.durations.get_or_init(|| {
            ENDPOINTS
                .iter()
                .map(|e| metrics::histogram!("regbridge_http_request_duration_seconds", "endpoint" => *e))
                .collect()
        });
        &all[endpoint]
    }
}
