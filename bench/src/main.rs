//! `livechat-bench`: a load generator for the livechat server, with Matrix
//! Synapse as the peer it is compared with. It takes a built release binary,
//! starts the server per backend on a fresh database, seeds that database in
//! bulk through SQL, runs the cases and writes a Markdown table and JSON.

mod api;
mod cases;
mod load;
mod procs;
mod report;
mod seed;
mod synapse;

use anyhow::{Context, bail};
use cases::{Ctx, Settings};
use clap::Parser;
use report::CaseResult;
use seed::{Plan, TempDb};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Command line.
#[derive(Parser, Debug)]
#[command(name = "livechat-bench", about = "Load generator for livechat (and Synapse as a peer)")]
struct Cli {
    /// The release `livechat` binary under test (built beforehand).
    #[arg(long, default_value = "target/release/livechat")]
    server: PathBuf,
    /// Targets: sqlite, postgres, two-nodes (two livechat processes on one PostgreSQL database), synapse.
    /// Default: sqlite,postgres,two-nodes; with --quick sqlite,postgres.
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Also run the comparable cases on Synapse, after the others (install it with bench/synapse/setup.sh).
    #[arg(long)]
    synapse: bool,
    /// A few seconds a case and small seeds, livechat only: proves the instrument works.
    #[arg(long)]
    quick: bool,
    /// Seconds per case (default 10; 1.5 with --quick).
    #[arg(long)]
    duration: Option<f64>,
    /// Seconds of the mixed workload (default 180; 4 with --quick).
    #[arg(long)]
    mixed_duration: Option<f64>,
    /// Only cases whose names start with these (comma-separated), e.g. `send-hot,page-`.
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// Record `perf record -g` of the (first) server process during this case.
    #[arg(long)]
    perf: Option<String>,
    /// PostgreSQL server on this machine; a database is created and dropped per target.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Where the JSON and Markdown results (and perf profiles) go.
    #[arg(long, default_value = "bench/results")]
    out_dir: PathBuf,
    /// Where SQLite files and Synapse data live during the run (default: the system temp dir).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// `LIVECHAT_LOG` for the server (its own default: every request logged at info).
    #[arg(long, default_value = "info,sqlx=warn")]
    server_log: String,
    /// Extra `KEY=VALUE` environment for the server under test (repeatable), e.g. `LIVECHAT_DB_MAX_CONNECTIONS=4`
    #[arg(long = "server-env", value_name = "KEY=VALUE")]
    server_env: Vec<String>,
    /// Messages in the search session (default 1,000,000).
    #[arg(long)]
    search_messages: Option<u64>,
    /// Connections in the idle WebSocket case (default 10,000).
    #[arg(long)]
    idle_connections: Option<usize>,
    /// Sessions (tenants) for spread sends and the many-sessions fan-out (default 1,000).
    #[arg(long)]
    spread_sessions: Option<usize>,
    /// Subscribers of the one-session fan-out (default 1,000).
    #[arg(long)]
    fanout_subscribers: Option<usize>,
    /// Synapse's virtual environment.
    #[arg(long, default_value = "bench/.venv")]
    synapse_venv: PathBuf,
    /// Synapse's generated configuration.
    #[arg(long, default_value = "bench/.synapse")]
    synapse_conf: PathBuf,
    /// Synapse's committed overrides.
    #[arg(long, default_value = "bench/synapse/bench.yaml")]
    synapse_overlay: PathBuf,
    /// Exit 0 even when requests failed (a case that could not run still fails the run).
    #[arg(long)]
    allow_errors: bool,
}

/// The databases created so far, dropped on Ctrl-C too.
type Registry = Arc<Mutex<Vec<(String, String)>>>;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let registry: Registry = Arc::default();
    let outcome = runtime.block_on(async {
        tokio::select! {
            r = run(cli, Arc::clone(&registry)) => r,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("\ninterrupted: stopping servers, dropping databases");
                Err(anyhow::anyhow!("interrupted"))
            }
        }
    });
    // Whatever happened, no database of ours outlives the run.
    let leftovers: Vec<(String, String)> = registry.lock().map(|r| r.clone()).unwrap_or_default();
    runtime.block_on(async {
        for (admin, name) in leftovers {
            let db = TempDb::existing(&admin, &name);
            if let Err(e) = db.drop_now().await {
                eprintln!("warning: could not drop database {name}: {e:#}");
            }
        }
    });
    match outcome {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Sizes and knobs for a full or quick run.
fn plan_and_settings(cli: &Cli) -> (Plan, Settings) {
    let q = cli.quick;
    let spread = cli.spread_sessions.unwrap_or(if q { 100 } else { 1000 });
    let plan = Plan {
        page_messages: if q { 2_000 } else { 10_000 },
        deep_offset: if q { 1_000 } else { 5_000 },
        hot_messages: if q { 0 } else { 10_000 },
        search_messages: cli.search_messages.unwrap_or(if q { 50_000 } else { 1_000_000 }),
        spread_sessions: spread as u64,
        spread_messages: if q { 20 } else { 100 },
    };
    let settings = Settings {
        duration: Duration::from_secs_f64(cli.duration.unwrap_or(if q { 1.5 } else { 10.0 }).max(0.5)),
        mixed_duration: Duration::from_secs_f64(cli.mixed_duration.unwrap_or(if q { 4.0 } else { 180.0 }).max(0.5)),
        idle_connections: cli.idle_connections.unwrap_or(if q { 200 } else { 10_000 }),
        fanout_subscribers: cli.fanout_subscribers.unwrap_or(if q { 100 } else { 1_000 }),
        fanout_rate: 20.0,
        fanout_spread_rate: if q { 50.0 } else { 200.0 },
        fanout_per_session: 2,
        spread_sessions: spread,
        mixed_streams: if q { 50 } else { 500 },
        mixed_conns: if q { 16 } else { 32 },
        send_levels: if q { vec![1, 64] } else { vec![1, 16, 64] },
        only: cli.cases.clone(),
        perf_case: cli.perf.clone(),
        out_dir: cli.out_dir.clone(),
    };
    (plan, settings)
}

async fn run(mut cli: Cli, registry: Registry) -> anyhow::Result<bool> {
    if cli.targets.is_empty() {
        let default: &[&str] = if cli.quick { &["sqlite", "postgres"] } else { &["sqlite", "postgres", "two-nodes"] };
        cli.targets = default.iter().map(|t| (*t).to_owned()).collect();
    }
    if !cli.server.exists() {
        bail!(
            "{} does not exist: build it first with `cargo build --release --locked --bin livechat`",
            cli.server.display()
        );
    }
    for t in &cli.targets {
        if !matches!(t.as_str(), "sqlite" | "postgres" | "two-nodes" | "synapse") {
            bail!("unknown target {t:?}: use sqlite, postgres, two-nodes, synapse");
        }
    }
    let with_synapse = cli.synapse || cli.targets.iter().any(|t| t == "synapse");
    if cli.quick && with_synapse {
        bail!("--quick runs livechat only; drop --synapse");
    }
    std::fs::create_dir_all(&cli.out_dir).with_context(|| format!("creating {}", cli.out_dir.display()))?;
    let (plan, settings) = plan_and_settings(&cli);
    let fds = procs::raise_fd_limit(65_536).await;
    // One socket per connection in each process (ours, the server's), plus files.
    let needed = settings.idle_connections.max(settings.fanout_subscribers) as u64 + 1024;
    if fds < needed && settings.wants("ws-idle") {
        eprintln!("warning: open-file limit {fds} is below the {needed} the idle WebSocket case needs");
    }
    let work_root = cli.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    let work = work_root.join(format!("livechat-bench-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;

    let progress = Arc::new(load::Progress::default());
    let current_pids: Arc<Mutex<Vec<u32>>> = Arc::default();
    {
        let pids = Arc::clone(&current_pids);
        let last = Arc::new(Mutex::new((Instant::now(), 0.0)));
        progress.spawn_printer(Arc::new(move || {
            let p = pids.lock().map(|p| p.clone()).unwrap_or_default();
            procs::brief(&p, &last)
        }));
    }
    let started_at = time::OffsetDateTime::now_utc();
    let mut meta = json!({
        "started_at": started_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "machine": machine().await,
        "git_commit": git_commit().await,
        "server_binary": cli.server.display().to_string(),
        "server_log": cli.server_log,
        "quick": cli.quick,
        "plan": plan,
        "settings": settings,
        "fd_limit": fds,
        "work_dir": work.display().to_string(),
        "load_average": {},
    });
    let spec = procs::ServerSpec {
        binary: cli.server.clone(),
        log_filter: cli.server_log.clone(),
        extra_env: server_env(&cli.server_env)?,
    };
    let tokens = api::Tokens::new(procs::JWT_SECRET);
    let mut results: Vec<CaseResult> = Vec::new();
    let epoch = Instant::now();

    for target in cli.targets.iter().filter(|t| *t != "synapse") {
        let load_before = procs::load_average();
        eprintln!("== {target}: load average {}", fmt_load(load_before));
        let outcome = run_target(
            target,
            &cli,
            &spec,
            &plan,
            &settings,
            &tokens,
            &progress,
            &current_pids,
            &registry,
            &work,
            epoch,
        )
        .await;
        match outcome {
            Ok(mut r) => results.append(&mut r),
            Err(e) => {
                eprintln!("{target}: {e:#}");
                let mut r = CaseResult::new(target, "setup", "start, seed", report::Headline::Throughput, 0);
                r.failure = Some(format!("{e:#}"));
                results.push(r);
            }
        }
        meta["load_average"][target] = json!({ "before": load_before, "after": procs::load_average() });
    }

    if with_synapse {
        let load_before = procs::load_average();
        eprintln!("== synapse: load average {}", fmt_load(load_before));
        let spec = synapse::SynapseSpec {
            venv: cli.synapse_venv.clone(),
            conf_dir: cli.synapse_conf.clone(),
            overlay: cli.synapse_overlay.clone(),
        };
        let outcome = async {
            let version = spec.version().await?;
            meta["synapse_version"] = json!(version);
            let syn = spec.start(&work.join("synapse")).await?;
            if let Ok(mut p) = current_pids.lock() {
                *p = vec![syn.pid()];
            }
            let mut r = synapse::run_cases(&syn, &settings, plan.page_messages, plan.deep_offset, &progress).await?;
            syn.stop().await;
            if settings.wants("mixed") {
                let syn = spec.start(&work.join("synapse-mixed")).await?;
                if let Ok(mut p) = current_pids.lock() {
                    *p = vec![syn.pid()];
                }
                r.push(synapse::run_mixed(&syn, &settings, &progress).await?);
                syn.stop().await;
            }
            Ok::<_, anyhow::Error>(r)
        }
        .await;
        match outcome {
            Ok(mut r) => results.append(&mut r),
            Err(e) => {
                eprintln!("synapse: {e:#}");
                let mut r = CaseResult::new("synapse", "setup", "start, seed", report::Headline::Throughput, 0);
                r.failure = Some(format!("{e:#}"));
                results.push(r);
            }
        }
        meta["load_average"]["synapse"] = json!({ "before": load_before, "after": procs::load_average() });
    }
    progress.shutdown();
    let _ = std::fs::remove_dir_all(&work);

    let stamp = started_at.unix_timestamp();
    let side = report::side_by_side(&results);
    let detail = report::detail_table(&results);
    let markdown = format!(
        "## livechat-bench {}\n\nload average at the start of each target: {}\n\n### Side by side\n\n{side}\n### Every case\n\n{detail}",
        meta["started_at"].as_str().unwrap_or_default(),
        meta["load_average"]
    );
    let json_path = cli.out_dir.join(format!("bench-{stamp}.json"));
    let md_path = cli.out_dir.join(format!("bench-{stamp}.md"));
    let doc = json!({ "meta": meta, "results": results });
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    std::fs::write(&md_path, &markdown).with_context(|| format!("writing {}", md_path.display()))?;
    println!("{markdown}");
    eprintln!("results: {} and {}", json_path.display(), md_path.display());

    let failed: Vec<&CaseResult> = results.iter().filter(|r| r.failure.is_some()).collect();
    let with_errors: Vec<&CaseResult> = results.iter().filter(|r| r.errors > 0).collect();
    for r in &failed {
        eprintln!("FAILED {} {}: {}", r.target, r.case, r.failure.as_deref().unwrap_or_default());
    }
    for r in &with_errors {
        eprintln!("ERRORS {} {}: {} failed operations", r.target, r.case, r.errors);
    }
    if results.is_empty() {
        eprintln!("FAILED: no case ran");
        return Ok(false);
    }
    Ok(failed.is_empty() && (with_errors.is_empty() || cli.allow_errors))
}

fn fmt_load(l: Option<[f64; 3]>) -> String {
    l.map(|l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])).unwrap_or_else(|| "unknown".into())
}

/// Starts one livechat target, seeds it, runs its cases, and tears it down.
#[allow(clippy::too_many_arguments)]
async fn run_target(
    target: &str,
    cli: &Cli,
    spec: &procs::ServerSpec,
    plan: &Plan,
    settings: &Settings,
    tokens: &api::Tokens,
    progress: &Arc<load::Progress>,
    current_pids: &Arc<Mutex<Vec<u32>>>,
    registry: &Registry,
    work: &Path,
    epoch: Instant,
) -> anyhow::Result<Vec<CaseResult>> {
    let dir = work.join(target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let (url, db) = if target == "sqlite" {
        (format!("sqlite://{}", dir.join("livechat.db").display()), None)
    } else {
        let db = TempDb::create(&cli.postgres_url).await?;
        if let Ok(mut r) = registry.lock() {
            r.push((cli.postgres_url.clone(), db.name.clone()));
        }
        (db.url.clone(), Some(db))
    };
    let outcome = async {
        spec.migrate(&url).await?;
        let t0 = Instant::now();
        let say = |s: &str| eprintln!("{s}");
        let seeded = seed::seed(&url, plan, &say).await.context("seeding")?;
        eprintln!(
            "seeded {} messages in {} sessions in {:.1} s",
            seeded.total_messages,
            seeded.spread.len() + 4,
            t0.elapsed().as_secs_f64()
        );
        let nodes = if target == "two-nodes" { 2 } else { 1 };
        let mut servers = Vec::new();
        for n in 0..nodes {
            servers.push(spec.start(&url, &dir.join(format!("node{n}.log"))).await?);
        }
        let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
        if let Ok(mut p) = current_pids.lock() {
            *p = pids.clone();
        }
        let mut ctx = Ctx {
            target,
            addrs: servers.iter().map(|s| s.addr).collect(),
            pids,
            seeded: &seeded,
            tokens,
            settings,
            progress: Arc::clone(progress),
            pg: db.as_ref(),
            epoch,
        };
        let mut results: Vec<CaseResult> = Vec::new();
        for name in cases::names(settings) {
            if !settings.wants(&name) {
                continue;
            }
            if name == "mixed" && !results.is_empty() {
                // The mixed workload's peak RSS must be its own, not what the
                // idle and fan-out cases left behind: fresh processes, same data.
                for s in servers.drain(..) {
                    s.stop(Duration::from_secs(15)).await;
                }
                for n in 0..nodes {
                    servers.push(spec.start(&url, &dir.join(format!("node{n}-mixed.log"))).await?);
                }
                ctx.addrs = servers.iter().map(|s| s.addr).collect();
                ctx.pids = servers.iter().map(|s| s.pid).collect();
                if let Ok(mut p) = current_pids.lock() {
                    *p = ctx.pids.clone();
                }
            }
            let mut r = cases::run(&ctx, &name).await;
            r.extra.insert("seeded_messages".into(), json!(seeded.total_messages));
            eprintln!("{}", one_line(&r));
            results.push(r);
            for s in servers.iter_mut() {
                if let Err(e) = s.check_alive() {
                    let mut r = CaseResult::new(target, "crash", "server exited", report::Headline::Throughput, 0);
                    r.failure = Some(format!("{e:#}"));
                    results.push(r);
                    return Ok(results);
                }
            }
        }
        for s in servers {
            s.stop(Duration::from_secs(15)).await;
        }
        Ok::<_, anyhow::Error>(results)
    }
    .await;
    if let Ok(mut p) = current_pids.lock() {
        p.clear();
    }
    if let Some(db) = db {
        let name = db.name.clone();
        db.drop_now().await?;
        if let Ok(mut r) = registry.lock() {
            r.retain(|(_, n)| *n != name);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    outcome
}

/// A one-line summary of a finished case, for the log.
fn one_line(r: &CaseResult) -> String {
    match &r.failure {
        Some(f) => format!("[{}] {:<22} FAILED: {f}", r.target, r.case),
        None => format!("[{}] {:<22} {}", r.target, r.case, r.cell()),
    }
}

/// What the machine is: CPU, cores, memory, kernel.
async fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(str::trim);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    json!({ "cpu": model, "cores": cores, "memory_gib": mem_kib as f64 / 1048576.0, "kernel": kernel.trim() })
}

/// The commit the binary was presumably built from.
async fn git_commit() -> Option<String> {
    let out = tokio::process::Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().await.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `KEY=VALUE` pairs for the server's environment.
fn server_env(pairs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    pairs
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("--server-env {p:?} must be KEY=VALUE"))
        })
        .collect()
}
