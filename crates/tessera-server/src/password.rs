//! Password hashing: argon2id with configurable cost, and a dummy hash so that an
//! unknown user costs the same time as a wrong password.
//!
//! Each hash runs in memory blocks taken from a small pool and given back afterwards:
//! allocating ~19 MiB per hash (what `PasswordHasher::hash_password` does) costs an
//! mmap, page faults and an munmap every time, and with every core hashing at once
//! those cost about a quarter of the parallel rate (measured on 2 cores: 63–67
//! hashes/s allocating, 83–94/s reusing).
//!
//! The server's hashes run on a pool of threads of their own, one per core, fed from
//! a queue. A thread that finishes a hash takes the next one at once, without waiting
//! for the async runtime to hand it over. With `spawn_blocking` behind a semaphore, that
//! hand-over left the cores idle about a tenth of the time under a login load (the
//! server used 1.75–1.80 of 2 cores; now 1.96, and login went from 144/s to 165/s at
//! m = 7168 KiB, t = 5, and from 102–107/s to 115–117/s at the default). The queue holds
//! at most one hash per core beyond those running, and a place in it is given back only
//! when its hash has ended, even if the request that asked for it was dropped: a client
//! that hangs up cannot make the server hash more at once than it has cores.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};

use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

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
    /// The largest memory cost (KiB) of a stored hash that [`Hasher::verify`] will
    /// compute: a stored hash is our own data, but its parameters must not make us
    /// allocate without bound.
    max_m_kib: u32,
    blocks: BlockPool,
    /// Places for async hashes: one running and one queued per core. More running
    /// would only share the cores and thrash the caches (each hash touches
    /// `memory_kib` of memory); the queued ones keep every core busy.
    places: Arc<tokio::sync::Semaphore>,
    /// The hashing threads' queue; they end when it is dropped.
    jobs: mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

/// `threads` threads that run the jobs sent on the returned queue, until it is dropped.
fn spawn_workers(threads: usize) -> Result<mpsc::Sender<Job>, HashError> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = Arc::clone(&rx);
        std::thread::Builder::new()
            .name(format!("tessera-argon2-{i}"))
            .spawn(move || {
                loop {
                    // The lock is held only while waiting; the next thread waits after.
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok(job) = job else { break };
                    // A panic ends the job (its caller sees an error), not the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            })
            .map_err(|e| HashError(format!("cannot start a hashing thread: {e}")))?;
    }
    Ok(tx)
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
        let blocks = BlockPool::new(params.block_count(), cores);
        let dummy = hash_with(&params, &blocks, crypto::random_token()?.as_bytes())?;
        Ok(Self {
            inner: Arc::new(Inner {
                max_m_kib: max_m_kib(memory_kib),
                params,
                dummy,
                blocks,
                places: Arc::new(tokio::sync::Semaphore::new(2 * cores)),
                jobs: spawn_workers(cores)?,
            }),
        })
    }

    /// The PHC string of a new hash of `password`.
    pub fn hash(&self, password: &Password) -> Result<String, HashError> {
        hash_with(&self.inner.params, &self.inner.blocks, password.as_bytes())
    }

    /// Whether `password` matches `phc`; with `None` (unknown user), checks against
    /// the dummy hash and answers false, in the same time.
    pub fn verify(&self, password: &Password, phc: Option<&str>) -> bool {
        let target = phc.unwrap_or(&self.inner.dummy);
        let ok = self.inner.matches(password.as_bytes(), target);
        ok && phc.is_some()
    }

    /// [`Hasher::hash`] on the hashing threads.
    pub async fn hash_async(&self, password: Password) -> Result<String, HashError> {
        self.on_workers(move |h| h.hash(&password)).await?
    }

    /// [`Hasher::verify`] on the hashing threads.
    pub async fn verify_async(
        &self,
        password: Password,
        phc: Option<String>,
    ) -> Result<bool, HashError> {
        self.on_workers(move |h| h.verify(&password, phc.as_deref()))
            .await
    }

    /// `f` run on a hashing thread once a place in the queue is free; the place is
    /// held until `f` has returned, whether or not its answer is still awaited.
    async fn on_workers<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Self) -> R + Send + 'static,
    ) -> Result<R, HashError> {
        let place = Arc::clone(&self.inner.places)
            .acquire_owned()
            .await
            .map_err(|e| HashError(e.to_string()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let h = self.clone();
        let job: Job = Box::new(move || {
            let r = f(&h);
            drop(place);
            let _ = tx.send(r);
        });
        self.inner
            .jobs
            .send(job)
            .map_err(|_| HashError("the hashing threads have ended".into()))?;
        rx.await
            .map_err(|_| HashError("a hashing thread failed".into()))
    }
}

impl Inner {
    /// Whether `password` matches the PHC string `phc`. The parameters of the stored
    /// hash apply, so a hash made at older parameters still verifies; any argon2
    /// variant is accepted (as `PasswordVerifier` did), anything else is not.
    fn matches(&self, password: &[u8], phc: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return false;
        };
        let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
            return false;
        };
        let version = match parsed.version.map(Version::try_from) {
            None => Version::default(),
            Some(Ok(v)) => v,
            Some(Err(_)) => return false,
        };
        // Also takes the output length from the stored hash.
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        if params.m_cost() > self.max_m_kib {
            return false;
        }
        let mut salt_buf = [0u8; Salt::MAX_LENGTH];
        let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
            return false;
        };
        let mut out = [0u8; Output::MAX_LENGTH];
        let out = &mut out[..expected.len()];
        let a2 = Argon2::new(algorithm, version, params);
        let computed = self.blocks.with(a2.params().block_count(), |blocks| {
            a2.hash_password_into_with_memory(password, salt, out, blocks)
        });
        computed.is_ok() && crypto::ct_eq(out, expected.as_bytes())
    }
}

/// The PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`) of a new hash of
/// `password` at `params`, with a random 128-bit salt.
fn hash_with(params: &Params, pool: &BlockPool, password: &[u8]) -> Result<String, HashError> {
    let err = |e: argon2::password_hash::Error| HashError(e.to_string());
    let salt_bytes = crypto::random_bytes::<16>()?;
    let salt = SaltString::encode_b64(&salt_bytes).map_err(err)?;
    let a2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    pool.with(params.block_count(), |blocks| {
        a2.hash_password_into_with_memory(password, &salt_bytes, &mut out, blocks)
    })
    .map_err(|e| HashError(e.to_string()))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(err)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(err)?),
    };
    Ok(phc.to_string())
}

/// The memory cap for a stored hash: four times the configured cost, but at least
/// four times the OWASP default (so a deployment that lowers its cost still verifies
/// the hashes it made before) and at most 1 GiB (unless the configured cost is higher).
fn max_m_kib(configured_kib: u32) -> u32 {
    const ONE_GIB_IN_KIB: u32 = 1 << 20;
    configured_kib
        .saturating_mul(4)
        .clamp(4 * Params::DEFAULT_M_COST, ONE_GIB_IN_KIB)
        .max(configured_kib)
}

/// Argon2 memory kept between hashes: at most `keep` buffers, each exactly the
/// configured size. A hash that needs more memory (a stored hash made at a higher
/// cost) gets a buffer of its own, freed afterwards.
struct BlockPool {
    free: Mutex<Vec<Vec<Block>>>,
    size: usize,
    keep: usize,
}

impl BlockPool {
    fn new(size: usize, keep: usize) -> Self {
        Self {
            free: Mutex::new(Vec::with_capacity(keep)),
            size,
            keep,
        }
    }

    /// `f` run on `count` blocks (their contents are left from earlier hashes; argon2
    /// overwrites every block it reads before reading it).
    fn with<R>(&self, count: usize, f: impl FnOnce(&mut [Block]) -> R) -> R {
        let pooled = if count <= self.size {
            self.lock().pop()
        } else {
            None
        };
        let mut buf = pooled.unwrap_or_else(|| vec![Block::default(); count.max(self.size)]);
        let r = f(&mut buf[..count]);
        if buf.len() == self.size {
            let mut free = self.lock();
            if free.len() < self.keep {
                free.push(buf);
            }
        }
        r
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<Block>>> {
        // The list has no invariant that a panic elsewhere could break.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher as _;

    use super::*;

    fn pw(s: &str) -> Password {
        Password::presented(s.into())
    }

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

    #[test]
    fn the_phc_string_has_the_old_shape() {
        let h = Hasher::new(256, 2, 1).unwrap();
        let phc = h.hash(&pw("correct horse")).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert_eq!(parsed.version, Some(19));
        assert_eq!(parsed.params.to_string(), "m=256,t=2,p=1");
        assert_eq!(parsed.salt.unwrap().as_str().len(), 22); // 16 bytes, base64
        assert_eq!(parsed.hash.unwrap().len(), 32);
        // Two hashes of one password differ (fresh salt each time).
        assert_ne!(phc, h.hash(&pw("correct horse")).unwrap());
    }

    #[test]
    fn a_hash_from_the_argon2_crate_verifies() {
        // What the server stored before it reused blocks: existing databases hold these.
        let params = Params::new(128, 2, 1, None).unwrap();
        let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
        let old = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"correct horse", &salt)
            .unwrap()
            .to_string();
        let h = Hasher::new(64, 1, 1).unwrap();
        assert!(h.verify(&pw("correct horse"), Some(&old)));
        assert!(!h.verify(&pw("correct horsf"), Some(&old)));
    }

    #[test]
    fn a_new_hash_verifies_with_the_argon2_crate() {
        use argon2::PasswordVerifier as _;
        let h = Hasher::new(128, 1, 2).unwrap();
        let phc = h.hash(&pw("correct horse")).unwrap();
        let parsed = PasswordHash::new(&phc).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
    }

    #[test]
    fn the_stored_hash_parameters_apply() {
        let low = Hasher::new(64, 1, 1).unwrap();
        let high = Hasher::new(512, 3, 2).unwrap();
        let from_high = high.hash(&pw("correct horse")).unwrap();
        let from_low = low.hash(&pw("correct horse")).unwrap();
        // Larger than the low hasher's pooled buffers, and smaller.
        assert!(low.verify(&pw("correct horse"), Some(&from_high)));
        assert!(high.verify(&pw("correct horse"), Some(&from_low)));
        assert!(!low.verify(&pw("wrong horse"), Some(&from_high)));
        // Other argon2 variants and versions, as before.
        for (alg, version) in [
            (Algorithm::Argon2i, Version::V0x13),
            (Algorithm::Argon2d, Version::V0x10),
        ] {
            let salt = SaltString::encode_b64(b"sixteen byte slt").unwrap();
            let phc = Argon2::new(alg, version, Params::new(64, 1, 1, None).unwrap())
                .hash_password(b"correct horse", &salt)
                .unwrap()
                .to_string();
            assert!(low.verify(&pw("correct horse"), Some(&phc)), "{phc}");
        }
    }

    #[test]
    fn garbage_and_foreign_hashes_do_not_verify() {
        let h = Hasher::new(64, 1, 1).unwrap();
        let good = h.hash(&pw("correct horse")).unwrap();
        let mut cases = vec![
            String::new(),
            "garbage".to_owned(),
            "$argon2id$".to_owned(),
            "$argon2id$v=19$m=64,t=1,p=1$c2l4dGVlbiBieXRlIHNsdA".to_owned(),
            "$scrypt$ln=4,r=8,p=1$c2l4dGVlbiBieXRlIHNsdA$aGFzaGhhc2hoYXNoaGFzaA".to_owned(),
            good.replace("argon2id", "argon2x"),
            good.replace("v=19", "v=18"),
            good.replace("m=64", "m=zz"),
            good.replace("m=64", "m=65,x=1"),
            good[..good.len() - 4].to_owned(),
        ];
        cases.push(good.replace("m=64", &format!("m={}", 4 * Params::DEFAULT_M_COST + 1)));
        for phc in &cases {
            assert!(!h.verify(&pw("correct horse"), Some(phc)), "{phc}");
        }
        assert!(h.verify(&pw("correct horse"), Some(&good)));
    }

    #[test]
    fn a_stored_hash_above_the_memory_cap_is_refused() {
        let mut h = Hasher::new(64, 1, 1).unwrap();
        Arc::get_mut(&mut h.inner).unwrap().max_m_kib = 64;
        let at_cap = h.hash(&pw("correct horse")).unwrap();
        let above = Hasher::new(72, 1, 1)
            .unwrap()
            .hash(&pw("correct horse"))
            .unwrap();
        assert!(h.verify(&pw("correct horse"), Some(&at_cap)));
        assert!(!h.verify(&pw("correct horse"), Some(&above)));
    }

    #[test]
    fn the_memory_cap() {
        assert_eq!(max_m_kib(64), 4 * Params::DEFAULT_M_COST);
        assert_eq!(max_m_kib(19_456), 4 * 19_456);
        assert_eq!(max_m_kib(512 * 1024), 1 << 20);
        assert_eq!(max_m_kib(2 << 20), 2 << 20);
    }

    /// A request dropped while its hash waits or runs (a client that hangs up) keeps
    /// its place until the hash ends: the server never has more hashes queued than
    /// places, nor running than cores, however many requests are abandoned.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_request_keeps_its_place_until_its_hash_ends() {
        use std::sync::Condvar;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        let h = Hasher::new(64, 1, 1).unwrap();
        let phc = h.hash(&pw("correct horse")).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let places = h.inner.places.available_permits();
        assert_eq!(places, 2 * cores);
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        for _ in 0..places {
            let (gate, running, most) = (gate.clone(), running.clone(), most.clone());
            let job = h.on_workers(move |_| {
                let n = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                let (open, cv) = &*gate;
                let guard = open.lock().unwrap();
                drop(cv.wait_while(guard, |open| !*open).unwrap());
                running.fetch_sub(1, Ordering::SeqCst);
            });
            // Polled until it waits for its answer, then dropped.
            assert!(
                tokio::time::timeout(Duration::from_millis(1), job)
                    .await
                    .is_err()
            );
        }
        assert_eq!(h.inner.places.available_permits(), 0);
        let (open, cv) = &*gate;
        *open.lock().unwrap() = true;
        cv.notify_all();
        // A new request gets a place once one is free, and its answer.
        assert!(
            h.verify_async(pw("correct horse"), Some(phc.clone()))
                .await
                .unwrap()
        );
        assert!(!h.verify_async(pw("wrong horse"), Some(phc)).await.unwrap());
        assert!(most.load(Ordering::SeqCst) <= cores);
        for _ in 0..1000 {
            if h.inner.places.available_permits() == places {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(h.inner.places.available_permits(), places);
    }

    #[test]
    fn the_pool_keeps_at_most_its_bound_and_only_its_size() {
        let pool = BlockPool::new(16, 2);
        let inner = |n| pool.with(n, |b: &mut [Block]| b.len());
        assert_eq!(inner(8), 8);
        assert_eq!(inner(32), 32);
        assert_eq!(pool.lock().len(), 1);
        assert!(pool.lock().iter().all(|b| b.len() == 16));
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| pool.with(16, |b| b.len()));
            }
        });
        assert!(pool.lock().len() <= 2);
    }
}
