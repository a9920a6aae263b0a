//! A loopback load generator for the server benchmarks in docs/benchmarks.md.
//!
//! ```text
//! tessera-loadgen get URL... [--header 'Name: value']... [--connections N] [--seconds S] [--cpu NAME=PID,...]...
//! tessera-loadgen refresh BASE_URL... [--connections N] [--seconds S] [--cpu NAME=PID,...]...
//! tessera-loadgen login BASE_URL... [--connections N] [--seconds S] [--cpu NAME=PID,...]...
//! tessera-loadgen form URL... --body 'a=b&c=d' [--basic ID:SECRET] [--expect FIELD]
//!                 [--header 'Name: value']... [--connections N] [--seconds S] [--cpu NAME=PID,...]...
//! tessera-loadgen codeflow BASE_URL --basic ID:SECRET --redirect-uri URI [--scope S]
//!                 [--flows N]
//! tessera-loadgen argon2 [--m KIB] [--t N] [--p N] [--iterations N]
//! ```
//!
//! Each prints one JSON object. `refresh` gives every connection its own login session
//! and spends, on each request, the refresh token that the previous answer gave: a
//! refresh that reused a token would measure nothing.
//!
//! `form` POSTs the same `application/x-www-form-urlencoded` body again and again
//! (with HTTP Basic client authentication if `--basic`); an answer counts as done only
//! if it is a 200 whose JSON object has `FIELD` (with `--expect`) set to something
//! other than null, false or "": every other answer is an error.
//!
//! `codeflow` runs whole authorization code flows one after another, each as a new
//! browser would: a fresh connection and an empty cookie jar, `GET /oauth/authorize`
//! (PKCE S256), the login page's form (its hidden `csrf_token` read from the page),
//! the consent page's "Allow", the redirect with the code, then the client's
//! `POST /oauth/token` on a connection of its own. Each flow signs in a user of its
//! own, registered before the clock starts, so that consent is asked every time (it
//! is remembered per user and client). It prints the latency of the whole flow and
//! of each step.
//!
//! With `--cpu NAME=PID,...` (Linux; repeatable), the JSON also holds `cpu`: the CPU
//! seconds, over the measured window, of each named group of processes (`NAME_s`),
//! of every process named `postgres` on the machine (`postgres_all_s`), of the load
//! generator itself (`loadgen_s`), and of the whole machine (`busy_s`,
//! `busy_of_cores`).
//!
//! Connections open (and, for `refresh`, log in) before the clock starts.
//!
//! Given several URLs (nodes of one deployment), connection `i` goes to URL
//! `i mod n`, as a load balancer that spreads connections round-robin would send it;
//! the user is registered on the first. Connections are kept alive, so each one's
//! requests all go to its node.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::HeaderMap;
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tessera_server::domain::Password;
use tessera_server::password::Hasher;
use tokio::net::TcpStream;
use tokio::sync::Barrier;

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
    let work = async {
        if opts.command == "codeflow" {
            codeflow(&opts).await
        } else {
            run(&opts).await
        }
    };
    match rt.block_on(work) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("tessera-loadgen: {e}");
            std::process::exit(1)
        }
    }
}

struct Opts {
    command: String,
    urls: Vec<String>,
    headers: Vec<(String, String)>,
    connections: usize,
    seconds: f64,
    threads: usize,
    m: u32,
    t: u32,
    p: u32,
    iterations: u32,
    body: String,
    expect: Option<String>,
    basic: Option<(String, String)>,
    redirect_uri: String,
    scope: String,
    flows: usize,
    cpu_groups: Vec<(String, Vec<u32>)>,
}

impl Opts {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut it = args.iter();
        let command = it.next().ok_or("usage: see the crate docs")?.clone();
        let defaults = tessera_server::Config::default();
        let mut o = Opts {
            command,
            urls: Vec::new(),
            headers: Vec::new(),
            connections: 32,
            seconds: 10.0,
            threads: 1,
            // The server's defaults.
            m: defaults.argon2_memory_kib,
            t: defaults.argon2_iterations,
            p: defaults.argon2_parallelism,
            iterations: 10,
            body: String::new(),
            expect: None,
            basic: None,
            redirect_uri: String::new(),
            scope: "openid".into(),
            flows: 50,
            cpu_groups: Vec::new(),
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
                "--body" => o.body = val()?,
                "--expect" => o.expect = Some(val()?),
                "--basic" => {
                    let b = val()?;
                    let (id, secret) = b.split_once(':').ok_or("--basic is ID:SECRET")?;
                    o.basic = Some((id.to_owned(), secret.to_owned()));
                }
                "--redirect-uri" => o.redirect_uri = val()?,
                "--scope" => o.scope = val()?,
                "--flows" => o.flows = val()?.parse().map_err(|_| "bad --flows")?,
                "--cpu" => {
                    let group = val()?;
                    let (name, pids) = group.split_once('=').ok_or("--cpu is NAME=PID,...")?;
                    let pids = pids
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(|p| p.trim().parse().map_err(|_| "bad --cpu"))
                        .collect::<Result<_, _>>()?;
                    o.cpu_groups.push((name.to_owned(), pids));
                }
                url if !url.starts_with("--") => o.urls.push(url.to_owned()),
                other => return Err(format!("unknown argument {other}")),
            }
        }
        if o.command != "argon2" && o.urls.is_empty() {
            return Err("a URL is required".into());
        }
        if o.command == "codeflow" && (o.basic.is_none() || o.redirect_uri.is_empty()) {
            return Err("codeflow needs --basic ID:SECRET and --redirect-uri".into());
        }
        if let Some((id, secret)) = &o.basic {
            // RFC 6749 §2.3.1: each form-urlencoded, then joined by a colon.
            let enc = |x: &str| form_urlencoded::byte_serialize(x.as_bytes()).collect::<String>();
            let creds = format!("{}:{}", enc(id), enc(secret));
            let b64 = base64::engine::general_purpose::STANDARD.encode(creds);
            o.headers
                .push(("authorization".into(), format!("Basic {b64}")));
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
        let body = body.map(|b| ("application/json", Bytes::from(b.to_string())));
        let (status, _, bytes) = self.exchange(method, path, headers, body).await?;
        Ok((status, bytes))
    }

    /// One request with a body of the given content type, if any; the answer's
    /// status, headers and body.
    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: Option<(&str, Bytes)>,
    ) -> Result<(u16, HeaderMap, Bytes), String> {
        self.sender.ready().await.map_err(|e| e.to_string())?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        let body = match body {
            Some((content_type, b)) => {
                req = req.header("content-type", content_type);
                b
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
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok((status, parts.headers, bytes))
    }
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

async fn run(o: &Opts) -> Result<Value, String> {
    let targets = o
        .urls
        .iter()
        .map(|u| split_url(u))
        .collect::<Result<Vec<_>, _>>()?;
    let user = format!("bench{}", std::process::id());
    let password = "correct horse battery staple";
    if o.command == "refresh" || o.command == "login" {
        // Opts::parse refused an empty list of URLs.
        let (host, addr, path) = &targets[0];
        let base = path.trim_end_matches('/');
        let mut c = Conn::open(host, *addr).await?;
        let body = json!({"username": user, "password": password});
        let (status, _) = c
            .send("POST", &format!("{base}/auth/register"), &[], Some(&body))
            .await?;
        if status != 201 {
            return Err(format!("register answered {status}"));
        }
    }
    // Every connection opens (and, for refresh, logs in) before the clock starts:
    // the window holds only the requests it measures.
    let ready = Arc::new(Barrier::new(o.connections + 1));
    let window = Duration::from_secs_f64(o.seconds);
    let mut tasks = Vec::new();
    for i in 0..o.connections {
        let (host, addr, path) = targets[i % targets.len()].clone();
        let base = path.trim_end_matches('/').to_owned();
        let (headers, user) = (o.headers.clone(), user.clone());
        let command = o.command.clone();
        let form_body = Bytes::from(o.body.clone());
        let expect = o.expect.clone();
        let ready = Arc::clone(&ready);
        tasks.push(tokio::spawn(async move {
            let creds = json!({"username": user, "password": password});
            let setup = async {
                let mut conn = Conn::open(&host, addr).await?;
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
                Ok::<_, String>((conn, refresh_token))
            }
            .await;
            // Waited for even after a failed setup, so that the others are not held.
            ready.wait().await;
            let (mut conn, mut refresh_token) = setup?;
            let deadline = Instant::now() + window;
            let mut tally = Tally::default();
            while Instant::now() < deadline {
                let started = Instant::now();
                let result = match command.as_str() {
                    "get" => conn.send("GET", &path, &headers, None).await,
                    "form" => conn
                        .exchange("POST", &path, &headers, Some((FORM, form_body.clone())))
                        .await
                        .map(|(status, _, body)| (status, body)),
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
                let result = match (result, &expect) {
                    // An answer without the expected field is a failure like a 4xx.
                    (Ok((200, body)), Some(field)) if !has_field(&body, field) => Ok((0, body)),
                    (Ok((status, _)), Some(_)) if status != 200 => Ok((0, Bytes::new())),
                    (other, _) => other,
                };
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
    ready.wait().await;
    let measure_cpu = !o.cpu_groups.is_empty();
    let cpu_before = measure_cpu.then(|| CpuSnapshot::take(&o.cpu_groups));
    let started = Instant::now();
    let mut total = Tally::default();
    for t in tasks {
        let tally = t.await.map_err(|e| e.to_string())??;
        total.ok += tally.ok;
        total.errors += tally.errors;
        total.latencies_us.extend(tally.latencies_us);
    }
    let seconds = started.elapsed().as_secs_f64().max(o.seconds);
    let cpu = match cpu_before {
        Some(before) => CpuSnapshot::take(&o.cpu_groups).since(&before, seconds),
        None => Value::Null,
    };
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
        "url": o.urls.join(" "),
        "connections": o.connections,
        "seconds": seconds,
        "requests": total.ok,
        "errors": total.errors,
        "rps": total.ok as f64 / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu": cpu,
    }))
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Whether a JSON object answer has `field` set to something other than null,
/// false or "".
fn has_field(body: &[u8], field: &str) -> bool {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    match v.get(field) {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// CPU time so far, in clock ticks, from /proc (Linux): of each named group of
/// processes (all their threads), of every process named `postgres` (the database's
/// backends on this machine, whoever they serve), of this load generator, and the
/// machine's busy time over all cores. A process that ended counts 0.
struct CpuSnapshot {
    groups: Vec<(String, u64)>,
    postgres_all: u64,
    own: u64,
    /// The machine's `/proc/stat` line: user nice system idle iowait irq softirq steal.
    machine: [u64; 8],
}

impl CpuSnapshot {
    fn take(groups: &[(String, Vec<u32>)]) -> Self {
        let mut postgres_all = 0;
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for entry in dir.flatten() {
                let path = entry.path();
                let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
                if comm.trim_end() == "postgres" {
                    postgres_all += process_ticks(&path);
                }
            }
        }
        let mut machine = [0; 8];
        if let Ok(stat) = std::fs::read_to_string("/proc/stat") {
            let fields = stat.lines().next().unwrap_or("").split_whitespace().skip(1);
            for (m, f) in machine.iter_mut().zip(fields) {
                *m = f.parse().unwrap_or(0);
            }
        }
        let groups = groups
            .iter()
            .map(|(name, pids)| {
                let ticks = pids
                    .iter()
                    .map(|p| process_ticks(Path::new(&format!("/proc/{p}"))))
                    .sum();
                (name.clone(), ticks)
            })
            .collect();
        Self {
            groups,
            postgres_all,
            own: process_ticks(Path::new("/proc/self")),
            machine,
        }
    }

    /// Seconds of CPU between `before` and now, and how busy the cores were. `busy_s`
    /// is user, nice, system, irq and softirq time (not idle, iowait, or steal: time
    /// the hypervisor gave to another guest); `irq_s` is the irq and softirq part of
    /// it (the loopback's packets are mostly handled there, and not counted to any
    /// process).
    fn since(&self, before: &Self, wall: f64) -> Value {
        // USER_HZ is 100 on every Linux architecture that this runs on.
        let secs = |a: u64, b: u64| a.saturating_sub(b) as f64 / 100.0;
        let field = |i: usize| secs(self.machine[i], before.machine[i]);
        let busy = [0, 1, 2, 5, 6].iter().map(|&i| field(i)).sum::<f64>();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut v = json!({
            "postgres_all_s": secs(self.postgres_all, before.postgres_all),
            "loadgen_s": secs(self.own, before.own),
            "busy_s": busy,
            "irq_s": field(5) + field(6),
            "steal_s": field(7),
            "busy_of_cores": busy / (wall * cores as f64),
        });
        for ((name, now), (_, then)) in self.groups.iter().zip(&before.groups) {
            v[format!("{name}_s")] = json!(secs(*now, *then));
        }
        v
    }
}

/// utime + stime of a process (every thread), in clock ticks; 0 if it is gone.
fn process_ticks(proc_dir: &Path) -> u64 {
    let Ok(stat) = std::fs::read_to_string(proc_dir.join("stat")) else {
        return 0;
    };
    // The command name may hold spaces and parentheses: the fields follow the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5), counted from the state (field 3) here.
    let field = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
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
    let (started, ticks_before) = std::thread::scope(|s| {
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
        (Instant::now(), process_ticks(Path::new("/proc/self")))
    });
    // The scope joined every thread before it returned: this is until the last ended.
    let parallel_per_s = (cores as f64 * f64::from(n)) / started.elapsed().as_secs_f64();
    // CPU time per hash while all cores hashed (Linux; clock ticks of 10 ms): unlike
    // the rate, it does not count time a neighbour's process took from these cores.
    let ticks = process_ticks(Path::new("/proc/self")).saturating_sub(ticks_before);
    json!({
        "parallel_per_s": parallel_per_s,
        "parallel_cpu_ms_per_hash": ticks as f64 * 10.0 / (cores as f64 * f64::from(n)),
        "m_kib": o.m, "t": o.t, "p": o.p,
        "hash_ms": fastest * 1000.0,
        "hash_ms_median": median * 1000.0,
        "cores": cores,
        "bound_per_s": cores as f64 / fastest,
    })
}

/// A browser's cookies for one host: name and value, as the last `Set-Cookie` left
/// them (a cookie set empty or with `Max-Age=0` goes).
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(hyper::header::SET_COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let expired = parts.any(|a| a.trim().eq_ignore_ascii_case("max-age=0"));
            self.0.retain(|(n, _)| n != name);
            if !expired && !value.is_empty() {
                self.0.push((name.to_owned(), value.to_owned()));
            }
        }
    }

    /// The `Cookie` header to send, if any.
    fn header(&self) -> Option<(String, String)> {
        if self.0.is_empty() {
            return None;
        }
        let v: Vec<String> = self.0.iter().map(|(n, v)| format!("{n}={v}")).collect();
        Some(("cookie".into(), v.join("; ")))
    }
}

/// The value of the page's hidden `csrf_token` field.
fn csrf_of(page: &[u8]) -> Result<String, String> {
    let page = std::str::from_utf8(page).map_err(|e| e.to_string())?;
    let marker = r#"name="csrf_token" value=""#;
    let at = page
        .find(marker)
        .ok_or("the page has no csrf_token field")?
        + marker.len();
    let end = page[at..]
        .find('"')
        .ok_or("the csrf_token field is not closed")?;
    Ok(page[at..at + end].to_owned())
}

fn form(pairs: &[(&str, &str)]) -> Bytes {
    let mut f = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        f.append_pair(k, v);
    }
    Bytes::from(f.finish())
}

/// Milliseconds of each step of one flow: authorize, login, consent, token, and the
/// whole.
type FlowTimes = [f64; 5];

/// One whole authorization code flow for `user`, as a new browser and the client's
/// back end run it.
async fn one_flow(
    o: &Opts,
    host: &str,
    addr: SocketAddr,
    base: &str,
    user: &str,
    password: &str,
) -> Result<FlowTimes, String> {
    let client_id = &o.basic.as_ref().ok_or("--basic is required")?.0;
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;
    let verifier = tessera_server::crypto::random_token().map_err(|e| e.to_string())?;
    let state = tessera_server::crypto::random_id().map_err(|e| e.to_string())?;
    let challenge = tessera_server::crypto::pkce_s256(&verifier);
    let mut times = [0.0; 5];
    let started = Instant::now();

    // The browser: a connection and a cookie jar of its own.
    let mut browser = Conn::open(host, addr).await?;
    let mut jar = Jar::default();
    let t = Instant::now();
    let query = form(&[
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", &o.redirect_uri),
        ("scope", &o.scope),
        ("state", &state),
        ("nonce", &state),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let path = format!(
        "{base}/oauth/authorize?{}",
        std::str::from_utf8(&query).map_err(|e| e.to_string())?
    );
    let (status, headers, page) = browser.exchange("GET", &path, &[], None).await?;
    if status != 200 {
        return Err(format!("authorize answered {status}"));
    }
    jar.take(&headers);
    let csrf = csrf_of(&page)?;
    times[0] = ms(t);

    let t = Instant::now();
    let cookies: Vec<_> = jar.header().into_iter().collect();
    let body = form(&[
        ("csrf_token", &csrf),
        ("username", user),
        ("password", password),
    ]);
    let (status, headers, page) = browser
        .exchange(
            "POST",
            &format!("{base}/oauth/authorize/login"),
            &cookies,
            Some((FORM, body)),
        )
        .await?;
    if status != 200 || !page.windows(15).any(|w| w == br#"name="decision""#) {
        return Err(format!("the login answered {status}, not the consent page"));
    }
    jar.take(&headers);
    let csrf = csrf_of(&page)?;
    times[1] = ms(t);

    let t = Instant::now();
    let cookies: Vec<_> = jar.header().into_iter().collect();
    let body = form(&[("csrf_token", &csrf), ("decision", "allow")]);
    let (status, headers, _) = browser
        .exchange(
            "POST",
            &format!("{base}/oauth/authorize/consent"),
            &cookies,
            Some((FORM, body)),
        )
        .await?;
    let location = headers
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if status != 303 || !location.starts_with(&o.redirect_uri) {
        return Err(format!(
            "the consent answered {status}, not a redirect to the client"
        ));
    }
    let query = location.split_once('?').map_or("", |(_, q)| q);
    let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if get("state") != Some(state.as_str()) {
        return Err("the redirect does not carry the state".into());
    }
    let code = get("code")
        .ok_or("the redirect carries no code")?
        .to_owned();
    times[2] = ms(t);

    // The client's back end: a connection of its own.
    let t = Instant::now();
    let mut client = Conn::open(host, addr).await?;
    let body = form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", &o.redirect_uri),
        ("code_verifier", &verifier),
    ]);
    let (status, _, answer) = client
        .exchange(
            "POST",
            &format!("{base}/oauth/token"),
            &o.headers,
            Some((FORM, body)),
        )
        .await?;
    if status != 200 || !has_field(&answer, "access_token") {
        return Err(format!("the token endpoint answered {status}"));
    }
    times[3] = ms(t);
    times[4] = ms(started);
    Ok(times)
}

/// `codeflow`: `--flows` whole flows one after another (see the crate docs).
async fn codeflow(o: &Opts) -> Result<Value, String> {
    // Opts::parse refused an empty list of URLs; a flow runs on the first.
    let (host, addr, path) = split_url(&o.urls[0])?;
    let base = path.trim_end_matches('/').to_owned();
    let password = "correct horse battery staple";
    // A user per flow, so that every flow asks for consent; registered before the
    // clock starts.
    let users: Vec<String> = (0..o.flows)
        .map(|i| format!("flow{}x{i}", std::process::id()))
        .collect();
    let mut c = Conn::open(&host, addr).await?;
    for u in &users {
        let body = json!({"username": u, "password": password});
        let (status, _) = c
            .send("POST", &format!("{base}/auth/register"), &[], Some(&body))
            .await?;
        if status != 201 {
            return Err(format!("register answered {status}"));
        }
    }
    drop(c);
    let mut flows = Vec::with_capacity(o.flows);
    for u in &users {
        flows.push(one_flow(o, &host, addr, &base, u, password).await?);
    }
    let stats = |i: usize| {
        let mut v: Vec<f64> = flows.iter().map(|f| f[i]).collect();
        v.sort_by(f64::total_cmp);
        let at = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        json!({"p50_ms": at(0.5), "p95_ms": at(0.95), "max_ms": v[v.len() - 1], "min_ms": v[0]})
    };
    Ok(json!({
        "scenario": "codeflow",
        "url": o.urls[0],
        "flows": flows.len(),
        "scope": o.scope,
        "whole": stats(4),
        "authorize": stats(0),
        "login": stats(1),
        "consent": stats(2),
        "token": stats(3),
    }))
}
