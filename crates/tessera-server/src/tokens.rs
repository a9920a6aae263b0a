//! Access tokens: minted and checked here, and only here, through tessera-jose.
//! RFC 9068 shape: header `typ: at+jwt`; claims `iss`, `sub`, `aud`, `exp`, `iat`,
//! `jti`, `sid`, `roles`, `scope` (plus `username`, which `/auth/me` answers).
//!
//! Bearer verification of the server's own routes goes through [`Verifier`], so
//! moving it onto tessera-guard is a change in one place.

use serde::{Deserialize, Serialize};
use tessera_jose::jws::Header;
use tessera_jose::jwt::{self, Validation};

use crate::denylist::Denylist;
use crate::keys::KeyRing;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// Issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Token id (the denylist key of logout).
    pub jti: String,
    /// Session (refresh family) id.
    pub sid: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Scope, space-separated.
    pub scope: String,
    /// The normalized username.
    pub username: String,
}

/// Why a bearer token was refused (the description goes to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// Signs access tokens with the ring's current key.
pub fn mint(ring: &KeyRing, claims: &AccessClaims) -> Result<String, tessera_jose::Error> {
    let keys = ring.current();
    let header = Header::new(keys.alg)
        .with_typ("at+jwt")
        .with_kid(keys.kid.clone());
    jwt::encode(&header, claims, &keys.signer)
}

/// Checks bearer tokens: signature by a published key, `typ`, `iss`, `aud`, `exp`,
/// then the denylist.
#[derive(Debug, Clone)]
pub struct Verifier {
    validation: Validation,
}

impl Verifier {
    /// A verifier for tokens of this issuer and audience.
    pub fn new(issuer: &str, audience: &str) -> Self {
        let validation = Validation::new()
            .typ("at+jwt")
            .issuer(issuer)
            .audience(audience)
            .require("iat")
            .require("jti")
            .require("sid")
            .max_size(8 * 1024);
        Self { validation }
    }

    /// The verified, not revoked claims of `token` at `now`.
    pub fn verify(
        &self,
        ring: &KeyRing,
        denylist: &Denylist,
        token: &str,
        now: i64,
    ) -> Result<AccessClaims, Refused> {
        let keys = ring.current();
        let data = jwt::decode_at::<AccessClaims>(token, &keys.published, &self.validation, now)
            .map_err(|e| {
                use tessera_jose::ErrorKind as K;
                Refused(match e.kind() {
                    K::Expired => "the access token has expired",
                    K::InvalidSignature | K::KeyNotFound | K::AlgorithmNotAllowed => {
                        "the access token's signature is not valid"
                    }
                    K::InvalidIssuer | K::InvalidAudience | K::InvalidType => {
                        "the access token is not for this server"
                    }
                    _ => "the access token is malformed",
                })
            })?;
        if denylist.is_denied(&data.claims, now) {
            return Err(Refused("the access token has been revoked"));
        }
        Ok(data.claims)
    }
}
