//! `livechat` as a separate process, for multi-node, restart and CLI tests.

use crate::helpers::{Resp, SECRET, User, read};
use serde_json::Value;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The binary under test.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_livechat")
}

/// A running `livechat serve` process.
pub struct Node {
    pub child: Child,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    log_tail: tokio::task::JoinHandle<Vec<String>>,
}

impl Node {
    /// Starts a node on a free loopback port and waits until it listens.
    pub async fn start(database_url: &str, extra: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(binary());
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("LIVECHAT_BIND", "127.0.0.1:0")
            .env("LIVECHAT_DATABASE_URL", database_url)
            .env("LIVECHAT_JWT_SECRET", SECRET)
            .env("LIVECHAT_LOG_FORMAT", "json")
            .env("LIVECHAT_LOG", "info,sqlx=warn")
            // Tests poll hard as few users; the limit has its own test.
            .env("LIVECHAT_RATE_LIMIT_PER_MINUTE", "0")
            .env("LIVECHAT_QUOTAS", "off")
            .envs(extra.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start livechat");
        let stderr = child.stderr.take().expect("stderr");
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        // Reads the log: reports the bound address, keeps the lines for diagnostics.
        let log_tail = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut kept = Vec::new();
            let mut addr_tx = Some(addr_tx);
            // LIVECHAT_TEST_NODE_LOG=1 echoes every node's log, to see why an answer was what it was.
            let echo = std::env::var_os("LIVECHAT_TEST_NODE_LOG").is_some();
            while let Ok(Some(line)) = lines.next_line().await {
                if echo {
                    eprintln!("[node] {line}");
                }
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if v["message"] == "livechat listening" {
                        if let (Some(tx), Some(addr)) = (addr_tx.take(), v["addr"].as_str()) {
                            let _ = tx.send(addr.parse::<SocketAddr>().expect("addr"));
                        }
                    }
                }
                kept.push(line);
                if kept.len() > 200 {
                    kept.remove(0);
                }
            }
            kept
        });
        let addr = match tokio::time::timeout(Duration::from_secs(60), addr_rx).await {
            Ok(Ok(addr)) => addr,
            _ => {
                let _ = child.kill().await;
                let lines = log_tail.await.unwrap_or_default();
                panic!("livechat did not start:\n{}", lines.join("\n"));
            }
        };
        Self {
            child,
            addr,
            client: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap(),
            log_tail,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/api/livechat{path}", self.addr)
    }

    pub async fn post(&self, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        let mut req =
            self.client.post(self.url(path)).bearer_auth(user.token()).header("X-Tenant-ID", tenant.to_string());
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }

    pub async fn get(&self, path: &str, user: &User, tenant: i64) -> Resp {
        let req = self.client.get(self.url(path)).bearer_auth(user.token()).header("X-Tenant-ID", tenant.to_string());
        read(req.send().await.expect("request sent")).await
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exits in time")
            .expect("wait");
        let lines = tokio::time::timeout(Duration::from_secs(5), self.log_tail)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        (exit, lines)
    }
}
