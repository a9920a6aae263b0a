//! Prometheus metrics, kept by hand: per-route request counts and latency
//! histograms, token operations, login failures.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Token operations counted in `tessera_token_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOp {
    /// An access token was minted.
    AccessIssued,
    /// A refresh family started (login).
    RefreshIssued,
    /// A refresh token was rotated.
    RefreshRotated,
    /// A spent refresh token answered its successor within the reuse interval.
    RefreshReplayed,
    /// A spent refresh token revoked its family.
    RefreshReuse,
    /// A refresh was refused.
    RefreshRefused,
    /// An access token was refused.
    AccessRefused,
    /// A session or token was revoked (logout, logout-all, DELETE session).
    Revoked,
}

impl TokenOp {
    const ALL: [TokenOp; 8] = [
        Self::AccessIssued,
        Self::RefreshIssued,
        Self::RefreshRotated,
        Self::RefreshReplayed,
        Self::RefreshReuse,
        Self::RefreshRefused,
        Self::AccessRefused,
        Self::Revoked,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::AccessIssued => "access_issued",
            Self::RefreshIssued => "refresh_issued",
            Self::RefreshRotated => "refresh_rotated",
            Self::RefreshReplayed => "refresh_replayed",
            Self::RefreshReuse => "refresh_reuse_detected",
            Self::RefreshRefused => "refresh_refused",
            Self::AccessRefused => "access_refused",
            Self::Revoked => "revoked",
        }
    }
}

/// The stats of one (method, status) of a route.
#[derive(Debug)]
struct Entry {
    method: String,
    status: u16,
    stat: RouteStat,
}

#[derive(Debug, Default)]
struct RouteStat {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// route → [(method, status, stats)]: looked up by &str, allocating once per key.
    routes: Mutex<HashMap<String, Vec<Entry>>>,
    ops: [AtomicU64; 8],
    login_failures: AtomicU64,
    rate_limited: AtomicU64,
}

impl Metrics {
    /// Empty metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one request.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut m = match self.routes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if !m.contains_key(route) {
            m.insert(route.to_string(), Vec::new());
        }
        let Some(list) = m.get_mut(route) else { return };
        let i = match list
            .iter()
            .position(|e| e.method == method && e.status == status)
        {
            Some(i) => i,
            None => {
                list.push(Entry {
                    method: method.to_string(),
                    status,
                    stat: RouteStat::default(),
                });
                list.len() - 1
            }
        };
        let s = &mut list[i].stat;
        s.count += 1;
        s.sum += seconds;
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                s.buckets[i] += 1;
            }
        }
    }

    /// Counts a token operation.
    pub fn op(&self, op: TokenOp) {
        if let Some(i) = TokenOp::ALL.iter().position(|o| *o == op) {
            self.ops[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failed login or refresh.
    pub fn login_failure(&self) {
        self.login_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429.
    pub fn rate_limited(&self) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self, denylist_entries: usize) -> String {
        let mut out = String::new();
        out.push_str("# HELP tessera_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE tessera_http_requests_total counter\n");
        let m = match self.routes.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut rows: BTreeMap<(&str, &str, u16), &RouteStat> = BTreeMap::new();
        for (route, list) in m.iter() {
            for e in list {
                rows.insert((e.method.as_str(), route.as_str(), e.status), &e.stat);
            }
        }
        for ((method, route, status), s) in &rows {
            let _ = writeln!(
                out,
                "tessera_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str(
            "# HELP tessera_http_request_duration_seconds HTTP request latency by route.\n",
        );
        out.push_str("# TYPE tessera_http_request_duration_seconds histogram\n");
        let mut merged: BTreeMap<(String, String), RouteStat> = BTreeMap::new();
        for ((method, route, _), s) in &rows {
            let e = merged
                .entry((method.to_string(), route.to_string()))
                .or_default();
            e.count += s.count;
            e.sum += s.sum;
            for i in 0..BUCKETS.len() {
                e.buckets[i] += s.buckets[i];
            }
        }
        drop(rows);
        drop(m);
        for ((method, route), s) in &merged {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tessera_http_request_duration_seconds_bucket{{{labels},le=\"{b}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_sum{{{labels}}} {}",
                s.sum
            );
            let _ = writeln!(
                out,
                "tessera_http_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        out.push_str("# HELP tessera_token_operations_total Token operations.\n");
        out.push_str("# TYPE tessera_token_operations_total counter\n");
        for (i, op) in TokenOp::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "tessera_token_operations_total{{op=\"{}\"}} {}",
                op.name(),
                self.ops[i].load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP tessera_login_failures_total Failed logins and refreshes.\n");
        out.push_str("# TYPE tessera_login_failures_total counter\n");
        let _ = writeln!(
            out,
            "tessera_login_failures_total {}",
            self.login_failures.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tessera_rate_limited_total Requests refused with 429.\n");
        out.push_str("# TYPE tessera_rate_limited_total counter\n");
        let _ = writeln!(
            out,
            "tessera_rate_limited_total {}",
            self.rate_limited.load(Ordering::Relaxed)
        );
        out.push_str("# HELP tessera_denylist_entries Entries in the access-token denylist.\n");
        out.push_str("# TYPE tessera_denylist_entries gauge\n");
        let _ = writeln!(out, "tessera_denylist_entries {denylist_entries}");
        out
    }
}
