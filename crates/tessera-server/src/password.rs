//! Password hashing: argon2id with configurable cost, and a dummy hash so that an
//! unknown user costs the same time as a wrong password.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::crypto::{self, CryptoError};
use crate::domain::Password;

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    dummy: String,
    /// One hash per core at a time: more would only share the cores and thrash the
    /// caches (each hash touches `memory_kib` of memory), and queued work stays bounded.
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("params", &self.inner.params)
            .finish()
    }
}

/// Hashing failed (bad parameters, or no randomness).
#[derive(Debug)]
pub struct HashError(pub String);

impl std::fmt::Display for HashError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for HashError {}

impl From<CryptoError> for HashError {
    fn from(e: CryptoError) -> Self {
        Self(e.to_string())
    }
}

impl Hasher {
    /// A hasher at these argon2id parameters (memory in KiB, iterations, lanes).
    pub fn new(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<Self, HashError> {
        let params = Params::new(memory_kib, iterations, parallelism, None)
            .map_err(|e| HashError(e.to_string()))?;
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut h = Self {
            inner: Arc::new(Inner {
                params,
                dummy: String::new(),
                permits: tokio::sync::Semaphore::new(cores),
            }),
        };
        let pw = crypto::random_token()?;
        let dummy = h.hash(&Password::presented(pw))?;
        h.inner = Arc::new(Inner {
            params: h.inner.params.clone(),
            dummy,
            permits: tokio::sync::Semaphore::new(cores),
        });
        Ok(h)
    }

    /// The PHC string of a new hash of `password`.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        let salt_bytes = crypto::random_bytes::<16>()?;
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| HashError(e.to_string()))?;
        self.argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches `phc`; with `None` (unknown user), checks against
    /// the dummy hash and answers false, in the same time.
    pub fn verify(&self, password: &Password, phc: Option<&str>) -> bool {
        let target = phc.unwrap_or(&self.inner.dummy);
        let Ok(parsed) = PasswordHash::new(target) else {
            return false;
        };
        // The parameters of the stored hash apply (a hash made at older parameters
        // still verifies); the argon2 crate compares in constant time.
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && phc.is_some()
    }

    /// [`Hasher::hash`] on the blocking pool, at most one per core at a time.
    pub async fn hash_async(&self, password: Password) -> Result<String, HashError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let h = self.clone();
        tokio::task::spawn_blocking(move || h.hash(&password))
            .await
            .map_err(|e| HashError(e.to_string()))?
    }

    /// [`Hasher::verify`] on the blocking pool, at most one per core at a time.
    pub async fn verify_async(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<bool, HashError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let h = self.clone();
        tokio::task::spawn_blocking(move || h.verify(&password, phc.as_deref()))
            .await
            .map_err(|e| HashError(e.to_string()))
    }

    fn argon2(&self) -> Argon2<'static> {
        Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            self.inner.params.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = Hasher::new(64, 1, 1).unwrap();
        let pw = Password::parse("correct horse".into()).unwrap();
        let phc = h.hash(&pw).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(&pw, Some(&phc)));
        assert!(!h.verify(&Password::presented("wrong horse".into()), Some(&phc)));
        assert!(!h.verify(&pw, None));
        assert!(!h.verify(&pw, Some("garbage")));
    }
}
