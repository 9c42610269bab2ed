//! A PostgreSQL wire-protocol proxy for fault injection: it sits between the
//! server under test and PostgreSQL on loopback, and on demand cuts the
//! connection of the transaction that inserts a message just before or just
//! after forwarding its COMMIT, or freezes every connection (a database that
//! stops answering, as under SIGSTOP).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What to do to the next transaction that inserts a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing.
    None,
    /// Close the connection instead of forwarding its COMMIT: it rolls back.
    CutBeforeCommit,
    /// Forward its COMMIT, then close the connection: it commits, unanswered.
    CutAfterCommit,
    /// Forward its COMMIT, then freeze every connection.
    FreezeAfterCommit,
}

/// Applied to the next connection of the notification listener: nothing
/// the server sends reaches it any more, and the connection stays open (a
/// network cut nobody reports).
#[derive(Debug, Default)]
pub struct SilenceListener(AtomicBool);

/// A running proxy; stops with the test.
pub struct PgProxy {
    pub addr: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    silence: Arc<SilenceListener>,
    frozen: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

const SSL_REQUEST: u32 = 80_877_103;

impl PgProxy {
    /// Listens on a free loopback port, forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::None));
        let silence = Arc::new(SilenceListener::default());
        let (frozen, _) = watch::channel(false);
        let (f, fz, si) = (fault.clone(), frozen.clone(), silence.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                let muted = Arc::new(AtomicBool::new(false));
                let answers = tokio::spawn(pump(sr, cw, fz.subscribe(), muted.clone()));
                let conn = Link { answers, muted, silence: si.clone() };
                tokio::spawn(forward_client(cr, sw, conn, f.clone(), fz.clone()));
            }
        });
        Self { addr, fault, silence, frozen, task }
    }

    /// Applies `fault` to the next transaction that inserts a message.
    pub fn arm(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// Silences the next notification-listener connection.
    pub fn silence_next_listener(&self) {
        self.silence.0.store(true, Ordering::SeqCst);
    }

    /// Freezes or thaws every connection.
    pub fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// `url` with its host and port replaced by the proxy's, and TLS off:
    /// the proxy reads the protocol's messages, so they must be plain text.
    pub fn url_for(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (auth, path) = rest.split_once('/').unwrap();
        let user = auth.rsplit_once('@').map(|(u, _)| format!("{u}@")).unwrap_or_default();
        let join = if path.contains('?') { '&' } else { '?' };
        format!("{scheme}://{user}{}/{path}{join}sslmode=disable", self.addr)
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait_thawed(frozen: &mut watch::Receiver<bool>) {
    let _ = frozen.wait_for(|f| !*f).await;
}

/// One proxied connection, as the client-side forwarder sees it.
struct Link {
    answers: tokio::task::JoinHandle<()>,
    muted: Arc<AtomicBool>,
    silence: Arc<SilenceListener>,
}

/// Server → client, held while frozen, dropped while muted.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
    muted: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buf).await else { return };
        if n == 0 {
            return;
        }
        if muted.load(Ordering::SeqCst) {
            continue;
        }
        wait_thawed(&mut frozen).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn read_exact(from: &mut OwnedReadHalf, n: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; n];
    from.read_exact(&mut buf).await.ok()?;
    Some(buf)
}

/// Client → server, message by message, applying the armed fault.
async fn forward_client(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    link: Link,
    fault: Arc<Mutex<Fault>>,
    frozen: watch::Sender<bool>,
) {
    let mut thawed = frozen.subscribe();
    // Start-up messages carry no type byte: an optional SSLRequest, then the startup message.
    loop {
        let Some(len) = read_exact(&mut from, 4).await else { return };
        let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(body) = read_exact(&mut from, n.saturating_sub(4)).await else { return };
        let ssl = n == 8 && u32::from_be_bytes([body[0], body[1], body[2], body[3]]) == SSL_REQUEST;
        let listener = String::from_utf8_lossy(&body).contains("livechat-listener");
        if !ssl && listener && link.silence.0.swap(false, Ordering::SeqCst) {
            // Muted once set up: the start-up exchange must complete for the client to listen.
            let muted = link.muted.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                muted.store(true, Ordering::SeqCst);
            });
        }
        if to.write_all(&len).await.is_err() || to.write_all(&body).await.is_err() {
            return;
        }
        if !ssl {
            break;
        }
    }
    let mut inserting_message = false;
    loop {
        let Some(head) = read_exact(&mut from, 5).await else { return };
        let n = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let Some(body) = read_exact(&mut from, n.saturating_sub(4)).await else { return };
        let text = String::from_utf8_lossy(&body).to_ascii_uppercase();
        if head[0] == b'P' && text.contains("INSERT INTO MESSAGES") {
            inserting_message = true;
        }
        let commit = head[0] == b'Q' && text.trim_start_matches('\0').starts_with("COMMIT");
        let armed = if commit && inserting_message {
            std::mem::replace(&mut *fault.lock().unwrap(), Fault::None)
        } else {
            Fault::None
        };
        if commit || (head[0] == b'Q' && text.starts_with("ROLLBACK")) {
            inserting_message = false;
        }
        wait_thawed(&mut thawed).await;
        if matches!(armed, Fault::CutBeforeCommit | Fault::CutAfterCommit) {
            // No answer may reach the client any more.
            link.answers.abort();
        }
        if armed == Fault::CutBeforeCommit {
            return;
        }
        if to.write_all(&head).await.is_err() || to.write_all(&body).await.is_err() {
            return;
        }
        match armed {
            Fault::CutAfterCommit => {
                let _ = to.flush().await;
                // Give the server the COMMIT before the connection goes.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                return;
            }
            Fault::FreezeAfterCommit => {
                frozen.send_replace(true);
            }
            Fault::None | Fault::CutBeforeCommit => {}
        }
    }
}
