//! `GET /auth/revocations`: the revocation feed for resource servers, as
//! Server-Sent Events, so that a guard refuses a revoked access token without Redis
//! credentials or a database of its own.
//!
//! A connection first gets every entry in force (or, with `Last-Event-ID`, those
//! past that cursor), then each entry as this node reads it from the store, in
//! cursor order, every event carrying its cursor as its id. An entry this node has
//! heard of by broadcast but not yet read from the store goes out in the snapshot
//! without an id (the client's cursor must never pass an entry it has not had), and
//! again, with its id, once read. So a client that resumes from its last id, on
//! this node or another, misses nothing; it may get an entry twice, which changes
//! nothing in a denylist.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt as _, stream};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::crypto;
use crate::error::ApiError;
use crate::http::AppState;
use crate::store::{DenyKind, Revoked};

/// How often a comment keeps an idle connection alive (DESIGN.md: at least every 15 s).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// One event's `data`.
#[derive(Debug, Serialize)]
struct Data<'a> {
    kind: &'static str,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_before: Option<i64>,
    expires_at: i64,
}

/// The revocation feed.
#[utoipa::path(get, path = "/auth/revocations",
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this cursor")),
    responses(
        (status = 200, description = "Server-Sent Events: `event: revoked`, `id: CURSOR`, `data: {\"kind\", \"value\", \"issued_before\"?, \"expires_at\"}`", content_type = "text/event-stream", body = String),
        (status = 401, body = crate::routes::ErrorBody),
        (status = 404, description = "No revocation_feed_tokens configured", body = crate::routes::ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn revocations(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if s.feed_tokens.is_empty() {
        return Err(ApiError::not_found("no such route"));
    }
    let token = tessera_guard::bearer_token(&headers)
        .map_err(|e| ApiError::malformed_authorization(e.description().to_owned()))?
        .ok_or_else(ApiError::missing_token)?;
    let presented = crypto::hash_secret(token);
    // Every configured token is compared, in constant time each.
    let allowed = s
        .feed_tokens
        .iter()
        .fold(false, |ok, t| ok | crypto::ct_eq(t, &presented));
    if !allowed {
        return Err(ApiError::invalid_token(
            "this token may not read the revocation feed",
        ));
    }
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|&c| c >= 0)
        .unwrap_or(0);
    let denylist = &s.core.denylist;
    // Subscribe before the snapshot, so that nothing falls between the two.
    let live = denylist.feed();
    let cursor = denylist.cursor();
    let snapshot = denylist.snapshot(after, s.core.now());
    let first = stream::iter(
        snapshot
            .into_iter()
            .map(move |r| Ok(event(&r, r.seq <= cursor))),
    );
    let seen = after.max(cursor);
    let rest = stream::unfold((live, seen), |(mut live, seen)| async move {
        loop {
            match live.recv().await {
                Ok(r) if r.seq <= seen => continue,
                Ok(r) => {
                    let seq = r.seq;
                    return Some((Ok(event(&r, true)), (live, seq)));
                }
                // Too slow a reader: the connection ends, and the client resumes
                // from its last id.
                Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
            }
        }
    });
    let mut stopping = s.stopping.subscribe();
    let stopped = async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(first.chain(rest).take_until(stopped));
    let mut res = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response();
    // Proxies must pass events on as they come.
    res.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn event(r: &Revoked, with_id: bool) -> Event {
    let e = &r.entry;
    let data = Data {
        kind: e.kind.as_str(),
        value: &e.value,
        issued_before: (e.kind == DenyKind::User).then_some(e.cutoff),
        expires_at: e.expires_at,
    };
    // Plain strings and integers always serialize.
    let json = serde_json::to_string(&data).unwrap_or_default();
    let ev = Event::default().event("revoked").data(json);
    if with_id {
        ev.id(r.seq.to_string())
    } else {
        ev
    }
}
