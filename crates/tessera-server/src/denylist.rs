//! The denylist of access tokens, in memory (checked on every authenticated
//! request) and persisted by the flows through the store (reloaded at start).

use std::collections::HashMap;
use std::sync::RwLock;

use crate::store::{DenyEntry, DenyKind};
use crate::tokens::AccessClaims;

/// Revoked tokens, sessions, and per-user cutoffs.
#[derive(Debug, Default)]
pub struct Denylist {
    inner: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    jti: HashMap<String, i64>,
    sid: HashMap<String, i64>,
    /// user id → (cutoff, expires_at): tokens with iat < cutoff are denied.
    user: HashMap<String, (i64, i64)>,
}

impl Denylist {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds entries.
    pub fn insert(&self, entries: &[DenyEntry]) {
        let mut m = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for e in entries {
            match e.kind {
                DenyKind::Jti => {
                    let v = m.jti.entry(e.value.clone()).or_insert(e.expires_at);
                    *v = (*v).max(e.expires_at);
                }
                DenyKind::Sid => {
                    let v = m.sid.entry(e.value.clone()).or_insert(e.expires_at);
                    *v = (*v).max(e.expires_at);
                }
                DenyKind::User => {
                    let v = m
                        .user
                        .entry(e.value.clone())
                        .or_insert((e.cutoff, e.expires_at));
                    *v = (v.0.max(e.cutoff), v.1.max(e.expires_at));
                }
            }
        }
    }

    /// Whether a token with these claims is revoked at `now`.
    pub fn is_denied(&self, c: &AccessClaims, now: i64) -> bool {
        self.is_denied_parts(Some(&c.jti), Some(&c.sid), Some(&c.sub), Some(c.iat), now)
    }

    /// Whether a token with these identifiers is revoked at `now`.
    pub fn is_denied_parts(
        &self,
        jti: Option<&str>,
        sid: Option<&str>,
        sub: Option<&str>,
        iat: Option<i64>,
        now: i64,
    ) -> bool {
        let m = match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if jti.is_some_and(|j| m.jti.get(j).is_some_and(|&exp| exp > now))
            || sid.is_some_and(|s| m.sid.get(s).is_some_and(|&exp| exp > now))
        {
            return true;
        }
        sub.and_then(|s| m.user.get(s))
            .is_some_and(|&(cutoff, exp)| exp > now && iat.is_none_or(|iat| iat < cutoff))
    }

    /// Forgets entries that deny nothing any more.
    pub fn purge(&self, now: i64) {
        let mut m = match self.inner.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        m.jti.retain(|_, exp| *exp > now);
        m.sid.retain(|_, exp| *exp > now);
        m.user.retain(|_, (_, exp)| *exp > now);
    }

    /// The number of entries (for metrics).
    pub fn len(&self) -> usize {
        let m = match self.inner.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        m.jti.len() + m.sid.len() + m.user.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str, sid: &str, sub: &str, iat: i64) -> AccessClaims {
        AccessClaims {
            iss: "i".into(),
            sub: sub.into(),
            aud: "a".into(),
            exp: iat + 900,
            iat,
            jti: jti.into(),
            sid: sid.into(),
            roles: vec![],
            scope: String::new(),
            username: "u".into(),
        }
    }

    fn entry(kind: DenyKind, value: &str, cutoff: i64, expires_at: i64) -> DenyEntry {
        DenyEntry {
            kind,
            value: value.into(),
            cutoff,
            expires_at,
        }
    }

    #[test]
    fn kinds_and_expiry() {
        let d = Denylist::new();
        d.insert(&[
            entry(DenyKind::Jti, "j1", 0, 200),
            entry(DenyKind::Sid, "s1", 0, 200),
            entry(DenyKind::User, "u1", 100, 200),
        ]);
        assert!(d.is_denied(&claims("j1", "s", "u", 50), 100));
        assert!(d.is_denied(&claims("j", "s1", "u", 50), 100));
        assert!(d.is_denied(&claims("j", "s", "u1", 99), 100));
        assert!(!d.is_denied(&claims("j", "s", "u1", 100), 100));
        assert!(!d.is_denied(&claims("j", "s", "u", 50), 100));
        assert!(!d.is_denied(&claims("j1", "s", "u", 50), 200));
        d.purge(200);
        assert!(d.is_empty());
    }
}
