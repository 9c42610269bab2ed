//! The peer: Matrix Synapse from `bench/synapse/setup.sh`, on loopback with
//! SQLite, driven through an adapter that maps each comparable case to the
//! Client-Server API. Synapse has no bulk store API, so its room history is
//! written through the API (its send cases count towards it).

use crate::cases::Settings;
use crate::load::{self, Conn, MakeReq, Progress, Req};
use crate::procs::{Peer, Sampler, tail};
use crate::report::{CaseResult, Headline};
use anyhow::{Context, anyhow, bail};
use hmac::{Hmac, Mac};
use hyper::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where Synapse is installed and configured.
#[derive(Clone, Debug)]
pub struct SynapseSpec {
    /// The virtual environment from setup.sh.
    pub venv: PathBuf,
    /// The generated base configuration (homeserver.yaml).
    pub conf_dir: PathBuf,
    /// The committed overrides (rate limits).
    pub overlay: PathBuf,
}

/// A running Synapse.
pub struct Synapse {
    peer: Peer,
    /// Its client API address.
    pub addr: SocketAddr,
    secret: String,
    log: PathBuf,
}

/// Percent-encodes everything but unreserved characters (room ids, tokens).
fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl SynapseSpec {
    /// The installed version, or why it is missing.
    pub async fn version(&self) -> anyhow::Result<String> {
        let python = self.venv.join("bin/python");
        let out = tokio::process::Command::new(&python)
            .args(["-c", "import importlib.metadata as m; print(m.version('matrix-synapse'))"])
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {} (run bench/synapse/setup.sh first)", python.display()))?;
        if !out.status.success() {
            bail!("matrix-synapse is not installed in {} (run bench/synapse/setup.sh)", self.venv.display());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// Starts Synapse with a fresh SQLite database in `dir` and waits until it answers.
    pub async fn start(&self, dir: &Path) -> anyhow::Result<Synapse> {
        let base = self.conf_dir.join("homeserver.yaml");
        if !base.exists() {
            bail!("{} is missing: run bench/synapse/setup.sh", base.display());
        }
        // Synapse runs in its data directory, so every path it is given must be absolute.
        let abs = |p: &Path| std::fs::canonicalize(p).with_context(|| format!("{} is missing", p.display()));
        let (base, overlay, python) = (abs(&base)?, abs(&self.overlay)?, abs(&self.venv)?.join("bin/python"));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
            l.local_addr()?.port()
        };
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let run = dir.join("run.yaml");
        let d = dir.display();
        let yaml = format!(
            "listeners:\n  - port: {port}\n    bind_addresses: ['127.0.0.1']\n    type: http\n    tls: false\n    x_forwarded: false\n    resources:\n      - names: [client]\n        compress: false\n\
             database:\n  name: sqlite3\n  args:\n    database: {d}/homeserver.db\n\
             media_store_path: {d}/media\npid_file: {d}/homeserver.pid\nregistration_shared_secret: \"{secret}\"\n"
        );
        std::fs::write(&run, yaml).with_context(|| format!("writing {}", run.display()))?;
        let log = dir.join("synapse.out");
        let out = std::fs::File::create(&log)?;
        let child = tokio::process::Command::new(python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(&base)
            .arg("-c")
            .arg(&overlay)
            .arg("-c")
            .arg(&run)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .context("starting Synapse")?;
        let pid = child.id().ok_or_else(|| anyhow!("Synapse exited at once"))?;
        let mut peer = Peer { child, pid };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(mut c) = Conn::open(addr).await
                && let Ok((status, _)) = c.send(Req::get("/_matrix/client/versions")).await
                && status.is_success()
            {
                break;
            }
            if let Some(status) = peer.child.try_wait()? {
                bail!("Synapse exited with {status}:\n{}", tail(&log, 30));
            }
            if Instant::now() > deadline {
                bail!("Synapse did not answer within 120 s:\n{}", tail(&log, 30));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(Synapse { peer, addr, secret, log })
    }
}

impl Synapse {
    /// Process id, for CPU and memory.
    pub fn pid(&self) -> u32 {
        self.peer.pid
    }

    /// Registers a user with the shared secret; returns its access token.
    async fn register(&self, conn: &mut Conn, user: &str) -> anyhow::Result<String> {
        let nonce = conn.call(Req::get("/_synapse/admin/v1/register")).await?;
        let nonce = nonce["nonce"].as_str().context("no nonce")?.to_owned();
        let password = format!("pw-{user}-{}", &self.secret[..8]);
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(self.secret.as_bytes()).context("HMAC key")?;
        for (i, part) in [nonce.as_str(), user, password.as_str(), "notadmin"].iter().enumerate() {
            if i > 0 {
                mac.update(b"\0");
            }
            mac.update(part.as_bytes());
        }
        let body = json!({
            "nonce": nonce, "username": user, "password": password, "admin": false,
            "mac": hex::encode(mac.finalize().into_bytes()),
        });
        let v = conn.call(Req::with_json(Method::POST, "/_synapse/admin/v1/register", &body)).await?;
        v["access_token"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no access token in {v}"))
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.peer.child.kill().await;
        let _ = self.log;
    }
}

fn bearer(req: Req, token: &str) -> Req {
    req.header("authorization", format!("Bearer {token}"))
}

fn send_req(token: &str, room: &str, txn: &str, body: &str) -> Req {
    let path = format!("/_matrix/client/v3/rooms/{}/send/m.room.message/{}", enc(room), enc(txn));
    bearer(Req::with_json(Method::PUT, path, &json!({ "msgtype": "m.text", "body": body })), token)
}

fn messages_req(token: &str, room: &str, from: Option<&str>, limit: u32) -> Req {
    let mut path = format!("/_matrix/client/v3/rooms/{}/messages?dir=b&limit={limit}", enc(room));
    if let Some(f) = from {
        path.push_str("&from=");
        path.push_str(&enc(f));
    }
    bearer(Req::get(path), token)
}

/// Runs the comparable cases against a running Synapse, all but the mixed
/// workload, which [`run_mixed`] runs on a fresh process so that its peak
/// RSS is its own.
pub async fn run_cases(
    syn: &Synapse,
    settings: &Settings,
    page_messages: u64,
    deep_offset: u64,
    progress: &Arc<Progress>,
) -> anyhow::Result<Vec<CaseResult>> {
    let mut setup = Conn::open(syn.addr).await?;
    let token = Arc::new(syn.register(&mut setup, "bench_sender").await.context("registering a user")?);
    let room = conn_create_room(&mut setup, &token).await?;
    let room = Arc::new(room);
    let addrs = [syn.addr];
    let pids = [syn.pid()];
    let warmup = (settings.duration / 5).min(Duration::from_secs(1));
    let mut results = Vec::new();
    let mut sent = 0u64;

    let closed = |name: String, what: String, conns: usize, make: MakeReq| {
        let progress = Arc::clone(progress);
        async move {
            progress.begin(&format!("[synapse] {name}"), settings.duration);
            let sampler = Sampler::start(&pids);
            let m = load::closed_loop(&addrs, conns, warmup, settings.duration, make, &progress).await;
            let usage = sampler.finish();
            progress.end();
            let mut r = CaseResult::new("synapse", &name, &what, Headline::Throughput, conns);
            match m {
                Ok(m) => {
                    r.seconds = m.elapsed.as_secs_f64();
                    r.ok = m.ok;
                    r.errors = m.errors;
                    r.throughput = m.throughput();
                    r.latency_ms = load::Latency::of(&m.latency);
                    if !m.error_kinds.is_empty() {
                        r.extra.insert("error_kinds".into(), json!(m.error_kinds));
                    }
                    if let Some(e) = &m.first_error {
                        r.extra.insert("first_error".into(), json!(e));
                    }
                    r.server = Some(usage);
                }
                Err(e) => r.failure = Some(format!("{e:#}")),
            }
            r
        }
    };

    if settings.wants("healthz-c64") {
        let make: MakeReq = Arc::new(|_, _| (0, Req::get("/_matrix/client/versions")));
        let what = "GET /_matrix/client/versions: the HTTP stack's ceiling".to_owned();
        results.push(closed("healthz-c64".into(), what, 64, make).await);
    }
    for &c in &settings.send_levels {
        let name = format!("send-hot-c{c}");
        if !settings.wants(&name) {
            continue;
        }
        let (t, r) = (Arc::clone(&token), Arc::clone(&room));
        let make: MakeReq =
            Arc::new(move |w, i| (0, send_req(&t, &r, &format!("c{c}w{w}n{i}"), &format!("hot w{w} n{i}"))));
        let what = "PUT /rooms/{room}/send/m.room.message/{txn} into one room".to_owned();
        let res = closed(name, what, c, make).await;
        sent += res.ok + res.errors;
        results.push(res);
    }
    if settings.wants("page-") {
        // Top the room up to the page session's size, through the API.
        let missing = page_messages.saturating_sub(sent);
        if missing > 0 {
            progress.begin("[synapse] seeding history through the API", Duration::ZERO);
            let reqs =
                (0..missing).map(|i| send_req(&token, &room, &format!("seed{i}"), &format!("seed {i}"))).collect();
            load::batch(&addrs, 16, reqs, progress).await.context("seeding the room")?;
            progress.end();
        }
        // A `from` token `deep_offset` events back from the newest.
        let mut from: Option<String> = None;
        let mut back = 0;
        while back < deep_offset {
            let limit = (deep_offset - back).min(1000) as u32;
            let v = setup.call(messages_req(&token, &room, from.as_deref(), limit)).await?;
            let got = v["chunk"].as_array().map(Vec::len).unwrap_or(0) as u64;
            from = Some(v["end"].as_str().context("no end token: the room is shorter than the offset")?.to_owned());
            if got == 0 {
                break;
            }
            back += got;
        }
        let deep = Arc::new(from.context("no deep token")?);
        for (name, deep_from) in [("page-latest-c64", None), ("page-deep-c64", Some(deep))] {
            if !settings.wants(name) {
                continue;
            }
            let (t, r) = (Arc::clone(&token), Arc::clone(&room));
            let what = match &deep_from {
                None => "GET /rooms/{room}/messages?dir=b&limit=10".to_owned(),
                Some(_) => format!("GET /rooms/{{room}}/messages?dir=b&limit=10&from=<{deep_offset} events back>"),
            };
            let make: MakeReq =
                Arc::new(move |_, _| (0, messages_req(&t, &r, deep_from.as_deref().map(String::as_str), 10)));
            results.push(closed(name.into(), what, 64, make).await);
        }
    }
    Ok(results)
}

/// Runs the mixed workload on its own, fresh Synapse (see [`run_cases`]).
pub async fn run_mixed(syn: &Synapse, settings: &Settings, progress: &Arc<Progress>) -> anyhow::Result<CaseResult> {
    let mut setup = Conn::open(syn.addr).await?;
    let token = Arc::new(syn.register(&mut setup, "bench_mixed").await.context("registering a user")?);
    Ok(mixed(syn, settings, &token, progress).await)
}

/// Rooms the mixed workload spreads over (room creation is slow on Synapse,
/// so fewer than livechat's sessions).
const MIXED_ROOMS: usize = 50;
/// `/sync` long-polls held open during the mixed workload.
const MIXED_SYNCS: usize = 50;

/// The mixed workload through the adapter: the same operation shares as
/// livechat's (history page, a room lookup, the room list, search, send)
/// over several rooms, with `/sync` long-polls as the open streams.
async fn mixed(syn: &Synapse, settings: &Settings, token: &Arc<String>, progress: &Arc<Progress>) -> CaseResult {
    let conns = settings.mixed_conns;
    let what = format!(
        "{conns} clients over {MIXED_ROOMS} rooms: 60% /messages, 15% room state, 10% /joined_rooms, 5% /search, 10% send; {MIXED_SYNCS} /sync long-polls open"
    );
    let mut r = CaseResult::new("synapse", "mixed", &what, Headline::Throughput, conns);
    match mixed_inner(syn, settings, token, progress, &mut r).await {
        Ok(()) => {}
        Err(e) => r.failure = Some(format!("{e:#}")),
    }
    progress.end();
    r
}

async fn mixed_inner(
    syn: &Synapse,
    settings: &Settings,
    token: &Arc<String>,
    progress: &Arc<Progress>,
    r: &mut CaseResult,
) -> anyhow::Result<()> {
    progress.begin("[synapse] mixed: creating rooms", Duration::ZERO);
    let mut setup = Conn::open(syn.addr).await?;
    let mut rooms = Vec::with_capacity(MIXED_ROOMS);
    for _ in 0..MIXED_ROOMS {
        rooms.push(conn_create_room(&mut setup, token).await?);
    }
    // A little history in each room, so pages and search have something to read.
    let reqs = rooms
        .iter()
        .enumerate()
        .flat_map(|(ri, room)| (0..20).map(move |i| (ri, room, i)).collect::<Vec<_>>())
        .map(|(ri, room, i)| send_req(token, room, &format!("mseed{ri}-{i}"), &format!("halo kopi {i}")))
        .collect();
    load::batch(&[syn.addr], 16, reqs, progress).await.context("seeding the rooms")?;
    let rooms = Arc::new(rooms);

    // The open streams: /sync long-polls, each re-issued as soon as it returns.
    let first = setup.call(bearer(Req::get("/_matrix/client/v3/sync?timeout=0"), token)).await?;
    let since = first["next_batch"].as_str().context("no next_batch")?.to_owned();
    let deadline = Instant::now() + settings.mixed_duration + Duration::from_secs(40);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let synced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut syncs = Vec::new();
    for _ in 0..MIXED_SYNCS {
        let (token, stop, synced, mut since) =
            (Arc::clone(token), Arc::clone(&stop), Arc::clone(&synced), since.clone());
        let addr = syn.addr;
        syncs.push(tokio::spawn(async move {
            let Ok(mut conn) = Conn::open(addr).await else { return };
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let path = format!("/_matrix/client/v3/sync?timeout=10000&since={}", enc(&since));
                match conn.call(bearer(Req::get(path), &token)).await {
                    Ok(v) => {
                        if let Some(next) = v["next_batch"].as_str() {
                            since = next.to_owned();
                        }
                        synced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(_) => match Conn::open(addr).await {
                        Ok(c) => conn = c,
                        Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                    },
                }
            }
        }));
    }

    let t = Arc::clone(token);
    let n = rooms.len();
    let make: MakeReq = Arc::new(move |w, i| {
        let h = crate::cases::mix(((w as u64) << 40) ^ i);
        let room = &rooms[(h >> 8) as usize % n];
        let roll = h % 100;
        let (op, req) = if roll < 60 {
            (0, messages_req(&t, room, None, 10))
        } else if roll < 75 {
            (1, bearer(Req::get(format!("/_matrix/client/v3/rooms/{}/state/m.room.create/", enc(room))), &t))
        } else if roll < 85 {
            (2, bearer(Req::get("/_matrix/client/v3/joined_rooms"), &t))
        } else if roll < 90 {
            let body = json!({ "search_categories": { "room_events": {
                "search_term": "kopi", "filter": { "rooms": [room], "limit": 10 } } } });
            (3, bearer(Req::with_json(Method::POST, "/_matrix/client/v3/search", &body), &t))
        } else {
            (4, send_req(&t, room, &format!("mx{w}-{i}"), &format!("mixed w{w} n{i}")))
        };
        (op, req)
    });
    progress.begin("[synapse] mixed", settings.mixed_duration);
    let pids = [syn.pid()];
    let sampler = Sampler::start(&pids);
    let warmup = (settings.duration / 5).min(Duration::from_secs(1));
    let m = load::closed_loop(&[syn.addr], settings.mixed_conns, warmup, settings.mixed_duration, make, progress).await;
    let usage = sampler.finish();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // Long-polls end within their 10 s timeout; no need to wait for them.
    for s in syncs {
        s.abort();
    }
    let m = m?;
    r.seconds = m.elapsed.as_secs_f64();
    r.ok = m.ok;
    r.errors = m.errors;
    r.throughput = m.throughput();
    r.latency_ms = load::Latency::of(&m.latency);
    let mut ops = serde_json::Map::new();
    for (k, label) in ["latest_page", "get_session", "list_sessions", "search", "send"].iter().enumerate() {
        if let Some(l) = load::Latency::of(&m.per_kind[k]) {
            ops.insert((*label).into(), json!(l));
        }
    }
    r.extra.insert("ops".into(), serde_json::Value::Object(ops));
    r.extra.insert("sync_responses".into(), json!(synced.load(std::sync::atomic::Ordering::Relaxed)));
    r.extra.insert("streams".into(), json!(MIXED_SYNCS));
    if !m.error_kinds.is_empty() {
        r.extra.insert("error_kinds".into(), json!(m.error_kinds));
    }
    if let Some(e) = &m.first_error {
        r.extra.insert("first_error".into(), json!(e));
    }
    r.server = Some(usage);
    Ok(())
}

async fn conn_create_room(conn: &mut Conn, token: &str) -> anyhow::Result<String> {
    let body = json!({ "preset": "private_chat", "name": "bench" });
    let v = conn.call(bearer(Req::with_json(Method::POST, "/_matrix/client/v3/createRoom", &body), token)).await?;
    v["room_id"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("no room_id in {v}"))
}
