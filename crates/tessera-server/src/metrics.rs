//! Prometheus metrics on `prometheus-client`: per-route request counts and latency
//! histograms, token operations, login failures, OAuth token requests per grant and
//! outcome, and OAuth operations (client authentication failures, introspections,
//! revocations).
//!
//! Every label has a fixed set of values, so that no client can grow the page: the
//! method is one of the methods the server routes (anything else is `other`), the
//! route is the matched route template (`unmatched` for every path no route takes),
//! and the status is a three-digit number. Recording takes a shared read lock on
//! the family; only the first request of a new label set writes.

use prometheus_client::encoding::text::encode;
use std::fmt::{self, Write as _};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The label every path gets that no route matched.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Token operations counted in `tessera_token_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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

impl EncodeLabelValue for TokenOp {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.name())
    }
}

/// The grant of an OAuth token request, as a label: one of the three this server
/// knows, or `other` (whatever a client sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GrantLabel {
    /// `authorization_code`.
    AuthorizationCode,
    /// `refresh_token`.
    RefreshToken,
    /// `client_credentials`.
    ClientCredentials,
    /// Anything else, or none.
    Other,
}

impl GrantLabel {
    const ALL: [GrantLabel; 4] = [
        Self::AuthorizationCode,
        Self::RefreshToken,
        Self::ClientCredentials,
        Self::Other,
    ];

    /// The label of a `grant_type` parameter.
    pub fn of(grant_type: Option<&str>) -> Self {
        match grant_type {
            Some("authorization_code") => Self::AuthorizationCode,
            Some("refresh_token") => Self::RefreshToken,
            Some("client_credentials") => Self::ClientCredentials,
            _ => Self::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::RefreshToken => "refresh_token",
            Self::ClientCredentials => "client_credentials",
            Self::Other => "other",
        }
    }
}

impl EncodeLabelValue for GrantLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.name())
    }
}

/// What became of a token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Outcome {
    Issued,
    Refused,
}

impl EncodeLabelValue for Outcome {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(match self {
            Self::Issued => "issued",
            Self::Refused => "refused",
        })
    }
}

/// OAuth operations counted in `tessera_oauth_operations_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthOp {
    /// A client failed to authenticate (wrong secret, unknown client).
    ClientAuthFailure,
    /// An introspection answered `active: true`.
    IntrospectionActive,
    /// An introspection answered `active: false`.
    IntrospectionInactive,
    /// A token was revoked at `/oauth/revoke`.
    Revocation,
    /// An authorization code was issued.
    CodeIssued,
    /// An authorization code was redeemed at the token endpoint.
    CodeRedeemed,
    /// A spent authorization code was presented again (what it issued is revoked).
    CodeReplay,
    /// A user consented on the consent page.
    ConsentGranted,
    /// A user denied consent.
    ConsentDenied,
    /// A user withdrew a consent.
    ConsentWithdrawn,
    /// A provider session ended by RP-initiated logout.
    ProviderLogout,
}

impl OAuthOp {
    const ALL: [OAuthOp; 11] = [
        Self::ClientAuthFailure,
        Self::IntrospectionActive,
        Self::IntrospectionInactive,
        Self::Revocation,
        Self::CodeIssued,
        Self::CodeRedeemed,
        Self::CodeReplay,
        Self::ConsentGranted,
        Self::ConsentDenied,
        Self::ConsentWithdrawn,
        Self::ProviderLogout,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::ClientAuthFailure => "client_auth_failure",
            Self::IntrospectionActive => "introspection_active",
            Self::IntrospectionInactive => "introspection_inactive",
            Self::Revocation => "revocation",
            Self::CodeIssued => "code_issued",
            Self::CodeRedeemed => "code_redeemed",
            Self::CodeReplay => "code_replay",
            Self::ConsentGranted => "consent_granted",
            Self::ConsentDenied => "consent_denied",
            Self::ConsentWithdrawn => "consent_withdrawn",
            Self::ProviderLogout => "provider_logout",
        }
    }
}

impl EncodeLabelValue for OAuthOp {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.name())
    }
}

/// An HTTP method as a label: the ones a route of ours takes, or `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MethodLabel {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl MethodLabel {
    fn of(method: &str) -> Self {
        match method {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            _ => Self::Other,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
            Self::Other => "other",
        }
    }
}

impl EncodeLabelValue for MethodLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        encoder.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: MethodLabel,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LatencyLabels {
    method: MethodLabel,
    route: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OpLabels {
    op: TokenOp,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GrantLabels {
    grant: GrantLabel,
    outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OAuthOpLabels {
    op: OAuthOp,
}

type HistogramFamily = Family<LatencyLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    ops: Family<OpLabels, Counter>,
    grants: Family<GrantLabels, Counter>,
    oauth_ops: Family<OAuthOpLabels, Counter>,
    login_failures: Counter,
    rate_limited: Counter,
    denylist_entries: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The server's metrics, registered and at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "tessera_http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "tessera_http_request_duration_seconds",
            "HTTP request latency by method and route",
            latency.clone(),
        );
        let ops = Family::<OpLabels, Counter>::default();
        for op in TokenOp::ALL {
            // Every operation is on the page from the start, at zero.
            drop(ops.get_or_create(&OpLabels { op }));
        }
        registry.register("tessera_token_operations", "Token operations", ops.clone());
        let grants = Family::<GrantLabels, Counter>::default();
        for grant in GrantLabel::ALL {
            for outcome in [Outcome::Issued, Outcome::Refused] {
                drop(grants.get_or_create(&GrantLabels { grant, outcome }));
            }
        }
        registry.register(
            "tessera_oauth_token_requests",
            "OAuth token endpoint requests by grant and outcome",
            grants.clone(),
        );
        let oauth_ops = Family::<OAuthOpLabels, Counter>::default();
        for op in OAuthOp::ALL {
            drop(oauth_ops.get_or_create(&OAuthOpLabels { op }));
        }
        registry.register(
            "tessera_oauth_operations",
            "OAuth operations: client authentication failures, introspections, revocations",
            oauth_ops.clone(),
        );
        let login_failures = Counter::default();
        registry.register(
            "tessera_login_failures",
            "Failed logins and refreshes",
            login_failures.clone(),
        );
        let rate_limited = Counter::default();
        registry.register(
            "tessera_rate_limited",
            "Requests refused with 429",
            rate_limited.clone(),
        );
        let denylist_entries = Gauge::default();
        registry.register(
            "tessera_denylist_entries",
            "Entries in the access-token denylist",
            denylist_entries.clone(),
        );
        Self {
            registry,
            requests,
            latency,
            ops,
            grants,
            oauth_ops,
            login_failures,
            rate_limited,
            denylist_entries,
        }
    }

    /// Records one request. `route` is the matched route template, or
    /// [`UNMATCHED_ROUTE`]: never the path the client sent.
    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = MethodLabel::of(method);
        let route = route.to_owned();
        self.latency
            .get_or_create(&LatencyLabels {
                method,
                route: route.clone(),
            })
            .observe(seconds);
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts a token operation.
    pub fn op(&self, op: TokenOp) {
        self.ops.get_or_create(&OpLabels { op }).inc();
    }

    /// Counts a token endpoint request of `grant`: tokens issued, or refused.
    pub fn grant(&self, grant: GrantLabel, issued: bool) {
        let outcome = if issued {
            Outcome::Issued
        } else {
            Outcome::Refused
        };
        self.grants
            .get_or_create(&GrantLabels { grant, outcome })
            .inc();
    }

    /// Counts an OAuth operation.
    pub fn oauth(&self, op: OAuthOp) {
        self.oauth_ops.get_or_create(&OAuthOpLabels { op }).inc();
    }

    /// Counts a failed login or refresh.
    pub fn login_failure(&self) {
        self.login_failures.inc();
    }

    /// Counts a 429.
    pub fn rate_limited(&self) {
        self.rate_limited.inc();
    }

    /// The exposition (OpenMetrics text, which Prometheus also reads as its text
    /// format).
    pub fn render(&self, denylist_entries: usize) -> String {
        self.denylist_entries
            .set(i64::try_from(denylist_entries).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
