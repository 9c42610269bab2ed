//! The command line: `livechat serve | migrate | token`.

use crate::app::{Application, Settings, shutdown_signal};
use crate::auth::{AuthConfig, KeySource, MintClaims, Secret, mint_hs256};
use crate::config::{DatabaseArgs, JwtArgs, LogArgs, ServeArgs};
use crate::domain::access::SUPPORT_AGENT;
use crate::service::Limits;
use crate::{store, telemetry};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::Duration;

/// Multi-tenant livechat API server.
#[derive(Debug, Parser)]
#[command(name = "livechat", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API server.
    Serve(Box<ServeArgs>),
    /// Apply pending database migrations and exit.
    Migrate(DatabaseArgs),
    /// Mint an HS256 token with the configured secret (for testing and scripts).
    Token(TokenArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The user id (`sub`).
    #[arg(long)]
    sub: u64,
    /// A tenant role as `TENANT:ROLE` (repeatable), e.g. `12:koperasi_admin`.
    #[arg(long = "tenant", value_name = "TENANT:ROLE")]
    tenants: Vec<String>,
    /// A platform role (repeatable), e.g. `support_agent`.
    #[arg(long = "role")]
    roles: Vec<String>,
    /// Lifetime, e.g. `15m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| e.to_string()))]
    ttl: Duration,
    #[command(flatten)]
    jwt: JwtArgs,
}

/// Runs the command line and maps failures to a message and exit code 1.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        // Printing a token needs no logger or runtime.
        Command::Token(args) => {
            println!("{}", token(&args)?);
            Ok(())
        }
        command => {
            telemetry::init(&cli.log)?;
            let runtime =
                tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
            runtime.block_on(async move {
                match command {
                    Command::Serve(args) => serve(*args).await,
                    Command::Migrate(db) => {
                        store::migrate(&db.store_config(true)?).await?;
                        tracing::info!("migrations applied");
                        Ok(())
                    }
                    Command::Token(_) => Ok(()),
                }
            })
        }
    }
}

fn token(args: &TokenArgs) -> anyhow::Result<String> {
    let secret = match args.jwt.auth_config()? {
        Some(AuthConfig { keys: KeySource::Hs256(secret), .. }) => secret,
        Some(_) => {
            bail!("`livechat token` signs with an HS256 secret; asymmetric keys are verified only")
        }
        None => bail!("set --jwt-secret or LIVECHAT_JWT_SECRET to mint a token"),
    };
    let mut tenants: HashMap<String, Vec<String>> = HashMap::new();
    for spec in &args.tenants {
        let (tenant, role) = spec
            .split_once(':')
            .filter(|(t, r)| crate::domain::ids::TenantId::parse(t).is_ok() && !r.is_empty())
            .with_context(|| format!("--tenant {spec:?} must look like 12:koperasi_admin"))?;
        tenants.entry(tenant.to_owned()).or_default().push(role.to_owned());
    }
    let ttl = i64::try_from(args.ttl.as_secs()).context("--ttl is too long")?;
    if ttl == 0 {
        bail!("--ttl must be at least one second");
    }
    mint(&secret, args.sub.to_string(), args.roles.clone(), tenants, ttl, &args.jwt)
}

fn mint(
    secret: &Secret,
    sub: String,
    roles: Vec<String>,
    tenants: HashMap<String, Vec<String>>,
    ttl_secs: i64,
    jwt: &JwtArgs,
) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = MintClaims {
        sub,
        roles,
        tenants,
        iat: now,
        exp: now.saturating_add(ttl_secs),
        iss: jwt.jwt_issuer.clone(),
        aud: jwt.jwt_audience.clone(),
    };
    mint_hs256(secret, &claims)
}

async fn serve(mut args: ServeArgs) -> anyhow::Result<()> {
    let mut dev_secret = None;
    if args.dev {
        args.bind.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        if args.jwt.auth_config()?.is_none() {
            let secret = Secret::new(hex::encode(rand::random::<[u8; 32]>()));
            args.jwt.jwt_secret = Some(secret.clone());
            dev_secret = Some(secret);
        }
    }
    let auth = args.jwt.auth_config()?.context(
        "no token verification key configured: set LIVECHAT_JWT_SECRET (or --jwt-secret, --jwt-public-key-file, \
         --jwt-jwks-file), or run `livechat serve --dev` to try it out locally",
    )?;
    let settings = Settings {
        bind: args.bind,
        store: args.database.store_config(!args.no_migrate)?,
        auth,
        policy: args.policy()?,
        max_body_bytes: usize::try_from(args.max_body_bytes).context("--max-body-bytes is too large")?,
        limits: Limits {
            max_message_chars: usize::try_from(args.max_message_chars).context("--max-message-chars is too large")?,
            presence_ttl: args.presence_ttl,
            ticket_ttl: args.ticket_ttl,
            request_timeout: args.request_timeout,
            quotas: crate::service::QuotaSettings::parse(&args.quotas)
                .map_err(|e| anyhow::anyhow!("--quotas / LIVECHAT_QUOTAS: {e}"))?,
        },
        realtime: args.realtime()?,
        rate_limit: (args.rate_limit_per_minute, args.rate_limit_burst),
        shutdown_timeout: args.shutdown_timeout,
        connections: args.connections()?,
        ui: args.ui || args.dev,
        metrics_bind: args.metrics_bind,
        cors_origins: crate::http::parse_origins(&args.cors_origins)
            .map_err(|e| anyhow::anyhow!("--cors-origins / LIVECHAT_CORS_ORIGINS: {e}"))?,
    };
    let backend = settings.store.url.backend();
    let app = Application::build(settings).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, backend = ?backend, "livechat listening");
    if let Some(secret) = dev_secret {
        print_dev_banner(&secret, addr, &args.jwt)?;
    }
    app.run_until(shutdown_signal()).await
}

fn print_dev_banner(secret: &Secret, addr: std::net::SocketAddr, jwt: &JwtArgs) -> anyhow::Result<()> {
    let day = 24 * 3600;
    let agent = mint(secret, "1".into(), vec![SUPPORT_AGENT.into()], HashMap::new(), day, jwt)?;
    let user = mint(
        secret,
        "100".into(),
        Vec::new(),
        HashMap::from([("1".to_owned(), vec!["koperasi_admin".to_owned()])]),
        day,
        jwt,
    )?;
    let base = format!("http://{addr}/api/livechat");
    // The token rides in the fragment, which browsers never send to the server or in a Referer.
    println!(
        "\nlivechat is running in development mode on http://{addr}\n\
         (fresh signing secret for this run: LIVECHAT_JWT_SECRET={secret})\n\n\
         Web UI, open each link in its own window:\n  \
         agent console (user 1):  http://{addr}/#token={agent}\n  \
         tenant widget (user 100): http://{addr}/#token={user}\n\n\
         Demo support agent (user 1, every tenant):\n  export AGENT_TOKEN={agent}\n\n\
         Demo tenant user (user 100, koperasi_admin of tenant 1):\n  export USER_TOKEN={user}\n\n\
         Open a session as the tenant user:\n  \
         curl -s -X POST {base}/sessions -H \"Authorization: Bearer $USER_TOKEN\" -H \"X-Tenant-ID: 1\"\n\n\
         API description: {base}/openapi.json\n",
        secret = secret.expose(),
    );
    Ok(())
}
