//! A loopback load generator for the server benchmarks in docs/benchmarks.md.
//!
//! ```text
//! tessera-loadgen get URL [--header 'Name: value']... [--connections N] [--seconds S]
//! tessera-loadgen refresh BASE_URL [--connections N] [--seconds S]
//! tessera-loadgen login BASE_URL [--connections N] [--seconds S]
//! tessera-loadgen argon2 [--m KIB] [--t N] [--p N] [--iterations N]
//! ```
//!
//! Each prints one JSON object. `refresh` gives every connection its own login session
//! and spends, on each request, the refresh token that the previous answer gave: a
//! refresh that reused a token would measure nothing.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tessera_server::domain::Password;
use tessera_server::password::Hasher;
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = Opts::parse(&args).unwrap_or_else(|e| {
        eprintln!("tessera-loadgen: {e}");
        std::process::exit(2)
    });
    if opts.command == "argon2" {
        println!("{}", argon2_bound(&opts));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tessera-loadgen: {e}");
            std::process::exit(2)
        });
    match rt.block_on(run(&opts)) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("tessera-loadgen: {e}");
            std::process::exit(1)
        }
    }
}

struct Opts {
    command: String,
    url: String,
    headers: Vec<(String, String)>,
    connections: usize,
    seconds: f64,
    threads: usize,
    m: u32,
    t: u32,
    p: u32,
    iterations: u32,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut it = args.iter();
        let command = it.next().ok_or("usage: see the crate docs")?.clone();
        let defaults = tessera_server::Config::default();
        let mut o = Opts {
            command,
            url: String::new(),
            headers: Vec::new(),
            connections: 32,
            seconds: 10.0,
            threads: 1,
            // The server's defaults.
            m: defaults.argon2_memory_kib,
            t: defaults.argon2_iterations,
            p: defaults.argon2_parallelism,
            iterations: 10,
        };
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
            match a.as_str() {
                "--header" => {
                    let h = val()?;
                    let (n, v) = h.split_once(':').ok_or("a header is 'Name: value'")?;
                    o.headers.push((n.trim().to_owned(), v.trim().to_owned()));
                }
                "--connections" => {
                    o.connections = val()?.parse().map_err(|_| "bad --connections")?
                }
                "--seconds" => o.seconds = val()?.parse().map_err(|_| "bad --seconds")?,
                "--threads" => o.threads = val()?.parse().map_err(|_| "bad --threads")?,
                "--m" => o.m = val()?.parse().map_err(|_| "bad --m")?,
                "--t" => o.t = val()?.parse().map_err(|_| "bad --t")?,
                "--p" => o.p = val()?.parse().map_err(|_| "bad --p")?,
                "--iterations" => o.iterations = val()?.parse().map_err(|_| "bad --iterations")?,
                url if !url.starts_with("--") && o.url.is_empty() => o.url = url.to_owned(),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if o.command != "argon2" && o.url.is_empty() {
            return Err("a URL is required".into());
        }
        Ok(o)
    }
}

/// Host, address and path of an `http://` URL.
fn split_url(url: &str) -> Result<(String, SocketAddr, String), String> {
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = host
        .parse::<SocketAddr>()
        .map_err(|_| format!("{host} is not IP:PORT"))?;
    Ok((host.to_owned(), addr, path.to_owned()))
}

struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(host: &str, addr: SocketAddr) -> Result<Self, String> {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Self {
            sender,
            host: host.to_owned(),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<&Value>,
    ) -> Result<(u16, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(b.to_string())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(body)).map_err(|e| e.to_string())?;
        let resp = self
            .sender
            .send_request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, bytes))
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

async fn run(o: &Opts) -> Result<Value, String> {
    let (host, addr, path) = split_url(&o.url)?;
    let base = path.trim_end_matches('/').to_owned();
    let user = format!("bench{}", std::process::id());
    let password = "correct horse battery staple";
    if o.command == "refresh" || o.command == "login" {
        let mut c = Conn::open(&host, addr).await?;
        let body = json!({"username": user, "password": password});
        let (status, _) = c
            .send("POST", &format!("{base}/auth/register"), &[], Some(&body))
            .await?;
        if status != 201 {
            return Err(format!("register answered {status}"));
        }
    }
    let deadline = Instant::now() + Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::new();
    for _ in 0..o.connections {
        let (host, path, base, headers, user) = (
            host.clone(),
            path.clone(),
            base.clone(),
            o.headers.clone(),
            user.clone(),
        );
        let command = o.command.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&host, addr).await?;
            let mut tally = Tally::default();
            let creds = json!({"username": user, "password": password});
            let mut refresh_token = String::new();
            if command == "refresh" {
                let (status, body) = conn
                    .send("POST", &format!("{base}/auth/login"), &[], Some(&creds))
                    .await?;
                if status != 200 {
                    return Err(format!("login answered {status}"));
                }
                refresh_token = token_of(&body)?;
            }
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = match command.as_str() {
                    "get" => conn.send("GET", &path, &headers, None).await,
                    "login" => {
                        conn.send(
                            "POST",
                            &format!("{base}/auth/login"),
                            &headers,
                            Some(&creds),
                        )
                        .await
                    }
                    "refresh" => {
                        let body = json!({"refresh_token": refresh_token});
                        conn.send(
                            "POST",
                            &format!("{base}/auth/refresh"),
                            &headers,
                            Some(&body),
                        )
                        .await
                    }
                    other => return Err(format!("unknown command {other}")),
                };
                let elapsed = started.elapsed();
                match result {
                    Ok((status, body)) if (200..300).contains(&status) => {
                        if command == "refresh" {
                            refresh_token = token_of(&body)?;
                        }
                        tally.ok += 1;
                        tally
                            .latencies_us
                            .push(u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok((status, _)) => {
                        tally.errors += 1;
                        if command == "refresh" {
                            return Err(format!("refresh answered {status}: the chain broke"));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok::<Tally, String>(tally)
        }));
    }
    let started = Instant::now();
    let mut total = Tally::default();
    for t in tasks {
        let tally = t.await.map_err(|e| e.to_string())??;
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.latencies_us.extend(tally.latencies_us);
    }
    let seconds = started.elapsed().as_secs_f64().max(o.seconds);
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        let v = &total.latencies_us;
        if v.is_empty() {
            return 0.0;
        }
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        f64::from(v[i]) / 1000.0
    };
    Ok(json!({
        "scenario": o.command,
        "url": o.url,
        "connections": o.connections,
        "seconds": seconds,
        "requests": total.ok,
        "errors": total.errors,
        "rps": total.ok as f64 / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }))
}

fn token_of(body: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    v["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "the answer has no refresh_token".into())
}

/// The login bound: cores / seconds per argon2id hash at the given parameters, each
/// hash made by the server's own [`Hasher`] (memory blocks reused from one hash to the
/// next). `hash_ms` is the fastest of `--iterations` timed hashes after a warm-up, so
/// the bound is the strict one; `hash_ms_median` is beside it.
fn argon2_bound(o: &Opts) -> Value {
    fn fail(e: impl std::fmt::Display) -> ! {
        eprintln!("tessera-loadgen: {e}");
        std::process::exit(2)
    }
    // Hasher::new makes one hash (its dummy): the warm-up of the first buffer.
    let hasher = Hasher::new(o.m, o.t, o.p).unwrap_or_else(|e| fail(e));
    let hash = || {
        let pw = Password::presented("correct horse battery staple".into());
        std::hint::black_box(hasher.hash(&pw).unwrap_or_else(|e| fail(e)));
    };
    let n = o.iterations.max(1);
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let started = Instant::now();
            hash();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let fastest = times[0];
    let median = times[times.len() / 2];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The same hash on every core at once, each thread warmed up by one hash before
    // the clock starts: what the machine really sustains, since argon2id is
    // memory-hard and cores share caches and memory bandwidth.
    let start = std::sync::Barrier::new(cores + 1);
    let started = std::thread::scope(|s| {
        for _ in 0..cores {
            s.spawn(|| {
                hash();
                start.wait();
                for _ in 0..n {
                    hash();
                }
            });
        }
        start.wait();
        Instant::now()
    });
    // The scope joined every thread before it returned: this is until the last ended.
    let parallel_per_s = (cores as f64 * f64::from(n)) / started.elapsed().as_secs_f64();
    json!({
        "parallel_per_s": parallel_per_s,
        "m_kib": o.m, "t": o.t, "p": o.p,
        "hash_ms": fastest * 1000.0,
        "hash_ms_median": median * 1000.0,
        "cores": cores,
        "bound_per_s": cores as f64 / fastest,
    })
}
