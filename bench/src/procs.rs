//! Server processes under test: starting `livechat serve`, finding the
//! address it bound, and reading CPU time and memory from `/proc`.

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The HS256 secret the servers under test verify tokens with.
pub const JWT_SECRET: &str = "livechat-bench-secret-0123456789abcdef";

/// A `livechat serve` process, killed when dropped.
pub struct Server {
    child: Child,
    /// Its process id.
    pub pid: u32,
    /// The loopback address it listens on.
    pub addr: SocketAddr,
    /// Where its log goes.
    pub log: PathBuf,
}

/// How to start the server under test.
#[derive(Clone, Debug)]
pub struct ServerSpec {
    /// The release binary.
    pub binary: PathBuf,
    /// `LIVECHAT_LOG` for the server (its own default unless told).
    pub log_filter: String,
    /// Extra `LIVECHAT_*` variables.
    pub extra_env: Vec<(String, String)>,
}

impl ServerSpec {
    /// Applies the schema with `livechat migrate` (the server's own migrations).
    pub async fn migrate(&self, database_url: &str) -> anyhow::Result<()> {
        let out = Command::new(&self.binary)
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LIVECHAT_DATABASE_URL", database_url)
            .env("LIVECHAT_LOG", "warn")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .with_context(|| format!("running {} migrate", self.binary.display()))?;
        if !out.status.success() {
            bail!("livechat migrate failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    /// Starts `livechat serve` on a free loopback port and waits until it listens.
    pub async fn start(&self, database_url: &str, log: &Path) -> anyhow::Result<Server> {
        let log_file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut cmd = Command::new(&self.binary);
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LIVECHAT_BIND", "127.0.0.1:0")
            .env("LIVECHAT_DATABASE_URL", database_url)
            .env("LIVECHAT_JWT_SECRET", JWT_SECRET)
            .env("LIVECHAT_LOG_FORMAT", "json")
            .env("LIVECHAT_LOG", &self.log_filter)
            // The benchmark is a few users sending as fast as they can: it
            // measures the server, not its limiters (per-user rate, and the
            // per-user and per-tenant quotas of servers that have them).
            .env("LIVECHAT_RATE_LIMIT_PER_MINUTE", "0")
            .env("LIVECHAT_QUOTAS", "off")
            .env("LIVECHAT_NO_MIGRATE", "true")
            .envs(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            // Logs go to a file, not a pipe: draining a pipe would load the generator.
            .stderr(log_file)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("starting {}", self.binary.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("livechat exited at once"))?;
        let mut server = Server { child, pid, addr: SocketAddr::from(([127, 0, 0, 1], 0)), log: log.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = listening_addr(log) {
                server.addr = addr;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait().context("polling livechat")? {
                bail!("livechat exited with {status} before listening:\n{}", tail(log, 20));
            }
            if Instant::now() > deadline {
                bail!("livechat did not listen within 60 s:\n{}", tail(log, 20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Server {
    /// Fails if the process has exited (a crash during a case).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait().context("polling livechat")? {
            bail!("livechat (pid {}) exited with {status}:\n{}", self.pid, tail(&self.log, 20));
        }
        Ok(())
    }

    /// Stops the process: SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status().await;
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// A child process that is not `livechat` (the peer), killed when dropped.
pub struct Peer {
    /// The process.
    pub child: Child,
    /// Its process id.
    pub pid: u32,
}

/// Reads the address from the JSON line `"livechat listening"` in the log.
fn listening_addr(log: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().find_map(|line| {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let fields = v.get("fields").unwrap_or(&v);
        let message = fields.get("message").or_else(|| v.get("message"))?;
        if message != "livechat listening" {
            return None;
        }
        fields.get("addr").or_else(|| v.get("addr"))?.as_str()?.parse().ok()
    })
}

/// The last `n` lines of a file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Raises this process's open-file limit towards `want` with `prlimit`
/// (children started afterwards inherit it): both limits when allowed,
/// else the soft limit up to the hard one. Done through the util-linux tool
/// rather than a raw `setrlimit`, which would need `unsafe` here.
pub async fn raise_fd_limit(want: u64) -> u64 {
    let me = std::process::id().to_string();
    let set = |soft: u64, hard: u64| {
        let me = me.clone();
        async move {
            Command::new("prlimit")
                .args(["--pid", &me, &format!("--nofile={soft}:{hard}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success())
        }
    };
    let (soft, hard) = fd_limits().unwrap_or((0, 0));
    if soft < want && !set(want, want.max(hard)).await && hard > soft {
        set(hard.min(want), hard).await;
    }
    fd_limits().map(|l| l.0).unwrap_or(0)
}

/// This process's soft and hard open-file limits.
pub fn fd_limits() -> Option<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut f = line.split_whitespace().skip(3);
    let parse = |v: Option<&str>| match v? {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    };
    Some((parse(f.next())?, parse(f.next())?))
}

/// Clock ticks per second for `/proc/<pid>/stat` (100 on Linux unless told).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| *v > 0.0)
        .unwrap_or(100.0)
}

/// User plus system CPU seconds of a process.
pub fn cpu_seconds(pid: u32, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// A `kB` field of `/proc/<pid>/status` (VmRSS, VmHWM), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the kernel's peak-RSS mark (VmHWM) so it holds this case's peak.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// What the servers spent during one case.
#[derive(Debug, Clone, Serialize)]
pub struct Usage {
    /// CPU seconds (user + system) of all server processes.
    pub cpu_seconds: f64,
    /// CPU seconds per wall second: 1.0 is one core busy.
    pub cpu_cores: f64,
    /// Highest resident memory, MiB, summed over the server processes.
    pub peak_rss_mib: f64,
    /// Resident memory at the end, MiB.
    pub end_rss_mib: f64,
}

/// Samples server processes during a case: CPU at start and end, resident
/// memory every 100 ms and the kernel's own peak mark.
pub struct Sampler {
    pids: Vec<u32>,
    ticks: f64,
    started: Instant,
    cpu0: f64,
    peak_kib: Arc<Mutex<u64>>,
    hwm_reset: bool,
    task: tokio::task::JoinHandle<()>,
}

impl Sampler {
    /// Starts sampling `pids`.
    pub fn start(pids: &[u32]) -> Self {
        let ticks = clock_ticks();
        let hwm_reset = pids.iter().all(|p| reset_peak(*p));
        let cpu0 = pids.iter().filter_map(|p| cpu_seconds(*p, ticks)).sum();
        let peak_kib = Arc::new(Mutex::new(rss_kib(pids)));
        let task = {
            let pids = pids.to_vec();
            let peak = Arc::clone(&peak_kib);
            tokio::spawn(async move {
                // Bounded by the case: the sampler is aborted when the case ends.
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                loop {
                    tick.tick().await;
                    let now = rss_kib(&pids);
                    if let Ok(mut p) = peak.lock() {
                        *p = (*p).max(now);
                    }
                }
            })
        };
        Self { pids: pids.to_vec(), ticks, started: Instant::now(), cpu0, peak_kib, hwm_reset, task }
    }

    /// Stops sampling and reports.
    pub fn finish(self) -> Usage {
        self.task.abort();
        let wall = self.started.elapsed().as_secs_f64();
        let cpu1: f64 = self.pids.iter().filter_map(|p| cpu_seconds(*p, self.ticks)).sum();
        let sampled = self.peak_kib.lock().map(|p| *p).unwrap_or(0);
        let hwm = if self.hwm_reset { self.pids.iter().filter_map(|p| status_kib(*p, "VmHWM")).sum() } else { 0 };
        let cpu = (cpu1 - self.cpu0).max(0.0);
        Usage {
            cpu_seconds: cpu,
            cpu_cores: if wall > 0.0 { cpu / wall } else { 0.0 },
            peak_rss_mib: sampled.max(hwm) as f64 / 1024.0,
            end_rss_mib: rss_kib(&self.pids) as f64 / 1024.0,
        }
    }
}

/// Resident memory of processes, KiB, summed.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| status_kib(*p, "VmRSS")).sum()
}

/// `/proc/<pid>/io` read syscalls (`syscr`), a proxy for SQLite page reads.
pub fn read_syscalls(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let io = std::fs::read_to_string(format!("/proc/{p}/io")).ok()?;
            io.lines().find(|l| l.starts_with("syscr:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .sum()
}

/// A short CPU/RSS description for the progress line.
pub fn brief(pids: &[u32], last: &Mutex<(Instant, f64)>) -> String {
    let ticks = 100.0;
    let cpu: f64 = pids.iter().filter_map(|p| cpu_seconds(*p, ticks)).sum();
    let now = Instant::now();
    let cores = match last.lock() {
        Ok(mut l) => {
            let dt = now.duration_since(l.0).as_secs_f64();
            let c = if dt > 0.0 { (cpu - l.1) / dt } else { 0.0 };
            *l = (now, cpu);
            c
        }
        Err(_) => 0.0,
    };
    format!("server cpu {cores:.2} rss {:.0} MiB", rss_kib(pids) as f64 / 1024.0)
}

/// The machine's 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}
