//! Test data written straight into the store in bulk (multi-row statements
//! in large transactions), not through the HTTP API: a million messages
//! take seconds this way and hours through the API.
//!
//! The rows follow the server's schema (`migrations/`): a session has
//! `last_seq` = messages + 1 because its `opened` event takes sequence 1;
//! messages take 2.. in time order; `message_folded` is the lowercased text;
//! times are microseconds. SQLite's FTS index is kept by its trigger.

use anyhow::{Context, bail};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Executor, PgConnection, QueryBuilder};
use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Tenant of the 10,000-message session read by the page cases.
pub const PAGE_TENANT: i64 = 1;
/// Tenant of the session the hot send cases write into.
pub const HOT_TENANT: i64 = 2;
/// Tenant of the 1,000,000-message session searched by `term`.
pub const SEARCH_TENANT: i64 = 3;
/// Tenant of the session with many subscribers.
pub const FANOUT_TENANT: i64 = 4;
/// Spread sessions belong to tenants `SPREAD_BASE + 1 ..= SPREAD_BASE + n`.
pub const SPREAD_BASE: i64 = 1000;
/// The platform agent every seeded session is assigned to.
pub const AGENT_ID: i64 = 1;
/// A word that occurs in a handful of the search session's messages.
pub const RARE_TERM: &str = "wibisono";
/// A word that occurs in about one message in twenty.
pub const COMMON_TERM: &str = "pupuk";
/// How many messages carry the rare term.
const RARE_COUNT: u64 = 10;

/// How much to seed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Plan {
    /// Messages in the page session.
    pub page_messages: u64,
    /// How far back the deep page's cursor is.
    pub deep_offset: u64,
    /// Messages already in the hot session.
    pub hot_messages: u64,
    /// Messages in the search session.
    pub search_messages: u64,
    /// Number of spread sessions (one tenant each).
    pub spread_sessions: u64,
    /// Messages in each spread session.
    pub spread_messages: u64,
}

/// A seeded session.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SessionRef {
    /// Its tenant.
    pub tenant: i64,
    /// Its id.
    pub id: Uuid,
    /// Messages in it.
    pub messages: u64,
}

/// What was seeded, with the ids and times the cases need.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Seeded {
    /// The page session.
    pub page: SessionRef,
    /// Cursor for the deep page: `deep_offset` messages back from the newest.
    pub deep_cursor: Uuid,
    /// The hot send session.
    pub hot: SessionRef,
    /// The search session.
    pub search: SessionRef,
    /// Date window for the dated search (inclusive, µs): a tenth of the session in its middle.
    pub search_window: (i64, i64),
    /// The fan-out session (empty).
    pub fanout: SessionRef,
    /// The spread sessions.
    pub spread: Vec<SessionRef>,
    /// Seconds the seeding took.
    pub seconds: f64,
    /// Messages written.
    pub total_messages: u64,
}

/// Words the generated messages are made of (a support chat of small
/// cooperatives); neither search term is among them.
const WORDS: &[&str] = &[
    "halo",
    "selamat",
    "pagi",
    "siang",
    "sore",
    "malam",
    "terima",
    "kasih",
    "mohon",
    "bantuan",
    "stok",
    "barang",
    "habis",
    "kirim",
    "pesanan",
    "nomor",
    "invoice",
    "pembayaran",
    "transfer",
    "bank",
    "rekening",
    "sudah",
    "belum",
    "masuk",
    "keluar",
    "anggota",
    "koperasi",
    "simpanan",
    "pinjaman",
    "bunga",
    "cicilan",
    "bulan",
    "minggu",
    "hari",
    "besok",
    "kemarin",
    "tolong",
    "cek",
    "status",
    "akun",
    "login",
    "gagal",
    "berhasil",
    "aplikasi",
    "versi",
    "update",
    "harga",
    "naik",
    "turun",
    "beras",
    "gula",
    "minyak",
    "kopi",
    "teh",
    "jagung",
    "padi",
    "panen",
    "petani",
    "kebun",
    "sawah",
    "desa",
    "kecamatan",
    "kabupaten",
    "alamat",
    "ongkir",
    "kurir",
    "paket",
    "diterima",
    "rusak",
    "retur",
    "tukar",
    "garansi",
    "laporan",
    "keuangan",
    "neraca",
    "kas",
    "saldo",
    "tagihan",
    "lunas",
    "jatuh",
    "tempo",
    "rapat",
    "pengurus",
    "ketua",
    "bendahara",
    "sekretaris",
    "dokumen",
    "unggah",
    "foto",
    "bukti",
    "kwitansi",
    "data",
    "ubah",
    "hapus",
    "tambah",
    "produk",
    "katalog",
    "toko",
    "online",
    "offline",
    "jam",
    "buka",
    "tutup",
    "libur",
    "ya",
    "tidak",
    "bisa",
    "boleh",
    "segera",
    "nanti",
    "tunggu",
    "sebentar",
    "baik",
    "siap",
    "oke",
    "maaf",
    "kendala",
    "sistem",
    "error",
    "lambat",
    "cepat",
    "tanya",
    "jawab",
    "info",
    "lanjut",
    "proses",
    "selesai",
    "kami",
    "anda",
];

/// A small deterministic generator (splitmix64), so every run seeds the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One message row.
struct Row {
    seq: i64,
    id: Uuid,
    sender: i64,
    text: String,
    folded: String,
    at: i64,
}

/// Current time in microseconds since the epoch.
pub fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// A UUIDv7 carrying the given time, as the server's ids do; its random
/// bits come from the seeded generator, so the same run seeds the same ids.
fn id_at(micros: i64, rng: &mut Rng) -> Uuid {
    let millis = u64::try_from(micros / 1000).unwrap_or(0);
    let mut random = [0u8; 10];
    random[..8].copy_from_slice(&rng.next().to_le_bytes());
    random[8..].copy_from_slice(&rng.next().to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The messages of one session: `n` rows from `start` µs, one a second.
struct Generator {
    rng: Rng,
    n: u64,
    i: u64,
    start: i64,
    member: i64,
    rare_every: Option<u64>,
}

/// Seconds between seeded messages.
const STEP_MICROS: i64 = 1_000_000;

impl Generator {
    fn new(seed: u64, n: u64, start: i64, member: i64, with_rare: bool) -> Self {
        let rare_every = with_rare.then(|| (n / RARE_COUNT).max(1));
        Self { rng: Rng(seed), n, i: 0, start, member, rare_every }
    }

    fn text(&mut self, i: u64) -> String {
        let words = 3 + self.rng.below(12);
        let mut s = String::with_capacity(96);
        for w in 0..words {
            if w > 0 {
                s.push(' ');
            }
            s.push_str(WORDS[self.rng.below(WORDS.len() as u64) as usize]);
        }
        if self.rng.below(20) == 0 {
            s.push(' ');
            s.push_str(COMMON_TERM);
        }
        if let Some(every) = self.rare_every
            && i % every == every / 2
        {
            s.push_str(" pak ");
            s.push_str(RARE_TERM);
        }
        // Capitalised first letter, so the folded copy differs as in real chats.
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => s,
        }
    }
}

impl Iterator for Generator {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        if self.i >= self.n {
            return None;
        }
        let i = self.i;
        self.i += 1;
        let at = self.start + i as i64 * STEP_MICROS;
        let text = self.text(i);
        let folded = text.to_lowercase();
        let sender = if self.rng.below(2) == 0 { self.member } else { AGENT_ID };
        Some(Row { seq: i as i64 + 2, id: id_at(at, &mut self.rng), sender, text, folded, at })
    }
}

/// The tenant member who opened a tenant's sessions (`sub` in their tokens).
pub fn member_of(tenant: i64) -> i64 {
    100_000 + tenant
}

/// A session to create, with the times its messages will have.
struct NewSession {
    r: SessionRef,
    start: i64,
    seed: u64,
    rare: bool,
}

impl NewSession {
    fn last_at(&self) -> Option<i64> {
        (self.r.messages > 0).then(|| self.start + (self.r.messages as i64 - 1) * STEP_MICROS)
    }

    fn rows(&self) -> Generator {
        Generator::new(self.seed, self.r.messages, self.start, member_of(self.r.tenant), self.rare)
    }
}

/// Lays out every session of the plan; messages end an hour before now.
fn layout(plan: &Plan) -> Vec<NewSession> {
    let now = now_micros();
    let mut rng = Rng(42);
    let mut make = |tenant: i64, messages: u64, rare: bool| {
        let start = now - 3_600_000_000 - messages as i64 * STEP_MICROS;
        let id = id_at(start - 1_000_000, &mut rng);
        NewSession { r: SessionRef { tenant, id, messages }, start, seed: tenant as u64 * 7919, rare }
    };
    let mut all = vec![
        make(PAGE_TENANT, plan.page_messages, false),
        make(HOT_TENANT, plan.hot_messages, false),
        make(SEARCH_TENANT, plan.search_messages, true),
        make(FANOUT_TENANT, 0, false),
    ];
    for i in 1..=plan.spread_sessions as i64 {
        all.push(make(SPREAD_BASE + i, plan.spread_messages, false));
    }
    all
}

/// The id of message `index` (0-based, oldest first) of a session.
fn message_id(s: &NewSession, index: u64) -> Option<Uuid> {
    s.rows().nth(usize::try_from(index).ok()?).map(|r| r.id)
}

/// Seeds a database of either backend.
pub async fn seed(url: &str, plan: &Plan, progress: &dyn Fn(&str)) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let sessions = layout(plan);
    let total: u64 = sessions.iter().map(|s| s.r.messages).sum();
    if url.starts_with("sqlite:") {
        seed_sqlite(url, &sessions, total, progress).await?;
    } else {
        seed_postgres(url, &sessions, total, progress).await?;
    }
    let page = &sessions[0];
    let search = &sessions[2];
    let deep_index = page.r.messages.saturating_sub(plan.deep_offset + 1);
    let deep_cursor = message_id(page, deep_index).context("the page session has no messages")?;
    let mid = search.start + (search.r.messages as i64 / 2) * STEP_MICROS;
    let window = (mid, mid + (search.r.messages as i64 / 10).max(1) * STEP_MICROS);
    Ok(Seeded {
        page: page.r.clone(),
        deep_cursor,
        hot: sessions[1].r.clone(),
        search: search.r.clone(),
        search_window: window,
        fanout: sessions[3].r.clone(),
        spread: sessions[4..].iter().map(|s| s.r.clone()).collect(),
        seconds: started.elapsed().as_secs_f64(),
        total_messages: total,
    })
}

/// Rows per SQLite statement: 8 binds each, under SQLite's 32,766 bind limit.
const SQLITE_ROWS: usize = 4000;
/// Rows per transaction.
const TX_ROWS: u64 = 100_000;

async fn seed_sqlite(url: &str, sessions: &[NewSession], total: u64, progress: &dyn Fn(&str)) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("bad SQLite URL {url}"))?
        .journal_mode(SqliteJournalMode::Wal)
        // Seeding is a bulk load to be thrown away on failure: no fsync per commit.
        .synchronous(SqliteSynchronous::Off)
        // The rows are consistent by construction; checking each key only slows the load.
        .foreign_keys(false)
        .busy_timeout(Duration::from_secs(30))
        .pragma("cache_size", "-262144");
    let pool: SqlitePool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .with_context(|| format!("opening {url}"))?;
    let mut tx = pool.begin().await?;
    for chunk in sessions.chunks(SQLITE_ROWS / 2) {
        let mut qb = QueryBuilder::new(
            "INSERT INTO sessions (tenant_id, id, agent_id, status, opened_by, created_at, updated_at, last_seq, last_message_at) ",
        );
        qb.push_values(chunk, |mut b, s| {
            let created = s.start - 1_000_000;
            b.push_bind(s.r.tenant)
                .push_bind(s.r.id)
                .push_bind(AGENT_ID)
                .push_bind("OPEN")
                .push_bind(member_of(s.r.tenant))
                .push_bind(created)
                .push_bind(s.last_at().unwrap_or(created))
                .push_bind(s.r.messages as i64 + 1)
                .push_bind(s.last_at());
        });
        qb.build().execute(&mut *tx).await.context("inserting sessions")?;
        let mut qb = QueryBuilder::new(
            "INSERT INTO session_events (tenant_id, session_id, seq, id, kind, agent_id, status, at) ",
        );
        let mut rng = Rng(7);
        qb.push_values(chunk, |mut b, s| {
            let created = s.start - 1_000_000;
            b.push_bind(s.r.tenant)
                .push_bind(s.r.id)
                .push_bind(1_i64)
                .push_bind(id_at(created, &mut rng))
                .push_bind("opened")
                .push_bind(AGENT_ID)
                .push_bind("OPEN")
                .push_bind(created);
        });
        qb.build().execute(&mut *tx).await.context("inserting session events")?;
    }
    let (mut written, mut in_tx) = (0u64, 0u64);
    let mut last_report = Instant::now();
    for s in sessions {
        let mut rows = s.rows().peekable();
        while rows.peek().is_some() {
            let batch: Vec<Row> = rows.by_ref().take(SQLITE_ROWS).collect();
            let mut qb = QueryBuilder::new(
                "INSERT INTO messages (tenant_id, session_id, seq, id, sender_id, message, message_folded, created_at) ",
            );
            qb.push_values(&batch, |mut b, r| {
                b.push_bind(s.r.tenant)
                    .push_bind(s.r.id)
                    .push_bind(r.seq)
                    .push_bind(r.id)
                    .push_bind(r.sender)
                    .push_bind(r.text.as_str())
                    .push_bind(r.folded.as_str())
                    .push_bind(r.at);
            });
            qb.build().execute(&mut *tx).await.context("inserting messages")?;
            written += batch.len() as u64;
            in_tx += batch.len() as u64;
            if in_tx >= TX_ROWS {
                tx.commit().await.context("committing a seed batch")?;
                tx = pool.begin().await?;
                in_tx = 0;
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                progress(&format!("seeding SQLite: {written}/{total} messages"));
                last_report = Instant::now();
            }
        }
    }
    tx.commit().await.context("committing the last seed batch")?;
    // Leave a compact file behind: the server starts with an empty WAL.
    pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await.context("checkpoint")?;
    pool.close().await;
    Ok(())
}

/// Rows per PostgreSQL statement (arrays, so one bind per column).
const PG_ROWS: usize = 10_000;

async fn seed_postgres(url: &str, sessions: &[NewSession], total: u64, progress: &dyn Fn(&str)) -> anyhow::Result<()> {
    let options = PgConnectOptions::from_str(url).with_context(|| format!("bad PostgreSQL URL {url}"))?;
    let pool: PgPool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .context("connecting to PostgreSQL for seeding")?;
    let mut tx = pool.begin().await?;
    // The load is discarded on failure; skipping the commit flush speeds it up.
    tx.execute("SET LOCAL synchronous_commit = off").await?;
    for chunk in sessions.chunks(PG_ROWS) {
        let mut rng = Rng(7);
        let tenants: Vec<i64> = chunk.iter().map(|s| s.r.tenant).collect();
        let ids: Vec<Uuid> = chunk.iter().map(|s| s.r.id).collect();
        let members: Vec<i64> = chunk.iter().map(|s| member_of(s.r.tenant)).collect();
        let created: Vec<i64> = chunk.iter().map(|s| s.start - 1_000_000).collect();
        let updated: Vec<i64> = chunk.iter().map(|s| s.last_at().unwrap_or(s.start - 1_000_000)).collect();
        let last_seq: Vec<i64> = chunk.iter().map(|s| s.r.messages as i64 + 1).collect();
        let last_at: Vec<Option<i64>> = chunk.iter().map(NewSession::last_at).collect();
        let event_ids: Vec<Uuid> = created.iter().map(|c| id_at(*c, &mut rng)).collect();
        sqlx::query(
            "INSERT INTO sessions (tenant_id, id, agent_id, status, opened_by, created_at, updated_at, last_seq, last_message_at) \
             SELECT t, i, $3, 'OPEN', m, c, u, q, l FROM UNNEST($1::bigint[], $2::uuid[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[]) AS x(t, i, m, c, u, q, l)",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(AGENT_ID)
        .bind(&members)
        .bind(&created)
        .bind(&updated)
        .bind(&last_seq)
        .bind(&last_at)
        .execute(&mut *tx)
        .await
        .context("inserting sessions")?;
        sqlx::query(
            "INSERT INTO session_events (tenant_id, session_id, seq, id, kind, agent_id, status, at) \
             SELECT t, s, 1, i, 'opened', $4, 'OPEN', a FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $5::bigint[]) AS x(t, s, i, a)",
        )
        .bind(&tenants)
        .bind(&ids)
        .bind(&event_ids)
        .bind(AGENT_ID)
        .bind(&created)
        .execute(&mut *tx)
        .await
        .context("inserting session events")?;
    }
    let (mut written, mut in_tx) = (0u64, 0u64);
    let mut last_report = Instant::now();
    for s in sessions {
        let mut rows = s.rows().peekable();
        while rows.peek().is_some() {
            let batch: Vec<Row> = rows.by_ref().take(PG_ROWS).collect();
            let seqs: Vec<i64> = batch.iter().map(|r| r.seq).collect();
            let ids: Vec<Uuid> = batch.iter().map(|r| r.id).collect();
            let senders: Vec<i64> = batch.iter().map(|r| r.sender).collect();
            let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
            let folded: Vec<&str> = batch.iter().map(|r| r.folded.as_str()).collect();
            let ats: Vec<i64> = batch.iter().map(|r| r.at).collect();
            sqlx::query(
                "INSERT INTO messages (tenant_id, session_id, seq, id, sender_id, message, message_folded, created_at) \
                 SELECT $1, $2, q, i, s, m, f, a FROM UNNEST($3::bigint[], $4::uuid[], $5::bigint[], $6::text[], $7::text[], $8::bigint[]) AS x(q, i, s, m, f, a)",
            )
            .bind(s.r.tenant)
            .bind(s.r.id)
            .bind(&seqs)
            .bind(&ids)
            .bind(&senders)
            .bind(&texts)
            .bind(&folded)
            .bind(&ats)
            .execute(&mut *tx)
            .await
            .context("inserting messages")?;
            written += batch.len() as u64;
            in_tx += batch.len() as u64;
            if in_tx >= TX_ROWS {
                tx.commit().await.context("committing a seed batch")?;
                tx = pool.begin().await?;
                tx.execute("SET LOCAL synchronous_commit = off").await?;
                in_tx = 0;
            }
            if last_report.elapsed() >= Duration::from_secs(1) {
                progress(&format!("seeding PostgreSQL: {written}/{total} messages"));
                last_report = Instant::now();
            }
        }
    }
    tx.commit().await.context("committing the last seed batch")?;
    // As autovacuum would have by the time a real table got this big:
    // planner statistics and a visibility map for index-only scans.
    pool.execute("VACUUM ANALYZE").await.context("VACUUM ANALYZE after seeding")?;
    pool.close().await;
    Ok(())
}

/// A PostgreSQL database created for one run, dropped by [`TempDb::drop_now`].
pub struct TempDb {
    admin_url: String,
    /// Database name.
    pub name: String,
    /// URL of the new database.
    pub url: String,
}

/// Prefix of the databases the benchmark creates.
const DB_PREFIX: &str = "livechat_bench_";

impl TempDb {
    /// Creates a fresh database on the server of `admin_url`, first dropping
    /// ones that earlier, killed runs left behind (over six hours old, by the
    /// UUIDv7 in their names).
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let mut conn = admin(admin_url).await?;
        let names: Vec<(String,)> = sqlx::query_as("SELECT datname FROM pg_database WHERE datname LIKE $1")
            .bind(format!("{DB_PREFIX}%"))
            .fetch_all(&mut conn)
            .await
            .context("listing databases")?;
        let cutoff = now_micros() - 6 * 3_600_000_000;
        for (name,) in names {
            let created = Uuid::parse_str(&name[DB_PREFIX.len()..])
                .ok()
                .and_then(|u| u.get_timestamp())
                .map(|t| t.to_unix())
                .map(|(s, n)| s as i64 * 1_000_000 + i64::from(n) / 1000);
            if created.is_some_and(|c| c < cutoff) {
                let _ = conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await;
            }
        }
        let name = format!("{DB_PREFIX}{}", Uuid::now_v7().simple());
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .with_context(|| format!("creating {name}"))?;
        let url = with_database(admin_url, &name)?;
        Ok(Self { admin_url: admin_url.to_owned(), name, url })
    }

    /// A handle on a database created earlier, to drop it.
    pub fn existing(admin_url: &str, name: &str) -> Self {
        Self { admin_url: admin_url.to_owned(), name: name.to_owned(), url: String::new() }
    }

    /// Drops the database, disconnecting whoever is still on it.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut conn = admin(&self.admin_url).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .with_context(|| format!("dropping {}", self.name))?;
        Ok(())
    }

    /// Transactions committed in the database so far (a proxy for reads).
    pub async fn commits(&self) -> anyhow::Result<i64> {
        let mut conn = admin(&self.admin_url).await?;
        let (n,): (i64,) = sqlx::query_as("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .bind(&self.name)
            .fetch_one(&mut conn)
            .await
            .context("reading pg_stat_database")?;
        Ok(n)
    }
}

async fn admin(url: &str) -> anyhow::Result<PgConnection> {
    let options = PgConnectOptions::from_str(url).with_context(|| format!("bad PostgreSQL URL {url}"))?;
    if !matches!(options.get_host(), "127.0.0.1" | "localhost" | "::1" | "[::1]")
        && !options.get_host().starts_with('/')
    {
        bail!("PostgreSQL must be on this machine (loopback or a socket), not {}", options.get_host());
    }
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&options))
        .await
        .context("connecting to PostgreSQL timed out")?
        .with_context(|| format!("connecting to PostgreSQL at {url}"))
}

/// The same server URL with another database name.
fn with_database(url: &str, db: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").context("PostgreSQL URL without scheme")? + 3;
    let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end).unwrap_or(base.len());
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_name_is_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x").unwrap(),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1/db?sslmode=disable", "y").unwrap(),
            "postgres://u:p@127.0.0.1/y?sslmode=disable"
        );
        assert_eq!(with_database("postgres://127.0.0.1:5432", "z").unwrap(), "postgres://127.0.0.1:5432/z");
    }

    #[test]
    fn generated_sessions_are_ordered_and_searchable() {
        let rows: Vec<Row> = Generator::new(1, 1000, 0, 7, true).collect();
        assert_eq!(rows.len(), 1000);
        assert!(rows.windows(2).all(|w| w[0].seq + 1 == w[1].seq && w[0].at < w[1].at));
        let rare = rows.iter().filter(|r| r.folded.contains(RARE_TERM)).count();
        assert_eq!(rare as u64, RARE_COUNT);
        let common = rows.iter().filter(|r| r.folded.contains(COMMON_TERM)).count();
        assert!((20..=90).contains(&common), "{common}");
        assert!(WORDS.iter().all(|w| !w.contains(RARE_TERM) && !w.contains(COMMON_TERM)));
        let again: Vec<Row> = Generator::new(1, 1000, 0, 7, true).collect();
        assert!(rows.iter().zip(&again).all(|(a, b)| a.id == b.id && a.text == b.text), "reproducible");
        assert_eq!(rows[5].id.get_version_num(), 7);
    }
}
