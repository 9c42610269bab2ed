//! Calling a [`TestApp`] over HTTP: requests as a [`User`] in a tenant, the
//! common calls, and the parsed answer ([`Resp`]).

use super::{TestApp, User};
use reqwest::Method;
use serde_json::Value;

/// A response, body parsed as JSON.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `data` of a successful envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `data.id` as a string.
    pub fn id(&self) -> String {
        self.body["data"]["id"].as_str().unwrap_or_else(|| panic!("no data.id in {}", self.body)).to_owned()
    }

    /// Asserts the status and the error code, and that it is a proper error envelope.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "unexpected status, body {}", self.body);
        assert_eq!(self.body["success"], false, "{}", self.body);
        assert_eq!(self.body["message"], code, "{}", self.body);
        assert!(self.body["data"].is_null(), "{}", self.body);
        assert!(self.body["meta"]["request_id"].is_string(), "{}", self.body);
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    /// The messages recorded for one field.
    pub fn field_errors(&self, field: &str) -> Vec<String> {
        self.body["errors"][field]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }
}

impl TestApp {
    /// The same server seen through the other prefix.
    pub fn with_prefix(&self, prefix: &'static str) -> PrefixedApp<'_> {
        PrefixedApp { app: self, prefix }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.addr, self.prefix, path)
    }

    /// Sends a request as `user` in `tenant` with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        self.with_prefix(self.prefix).call(method, path, user, tenant, body).await
    }

    pub async fn get(&self, path: &str, user: &User, tenant: i64) -> Resp {
        self.call(Method::GET, path, user, tenant, None).await
    }

    pub async fn post(&self, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        self.call(Method::POST, path, user, tenant, body).await
    }

    /// Opens a session and returns its id, asserting success.
    pub async fn open_session(&self, user: &User, tenant: i64) -> String {
        let r = self.post("/sessions", user, tenant, None).await;
        assert_eq!(r.status, 201, "open session: {}", r.body);
        r.id()
    }

    /// Puts an agent online through `PUT /agents/me/presence`.
    pub async fn set_online(&self, agent: &User) {
        let r = self
            .raw(
                self.client
                    .put(self.url("/agents/me/presence"))
                    .bearer_auth(agent.token())
                    .json(&serde_json::json!({ "status": "online" })),
            )
            .await;
        assert_eq!(r.status, 200, "set online: {}", r.body);
    }

    /// Sends a message and returns the response, asserting success.
    pub async fn send(&self, session: &str, user: &User, tenant: i64, text: &str) -> Resp {
        let r = self
            .post(&format!("/sessions/{session}/messages"), user, tenant, Some(serde_json::json!({ "message": text })))
            .await;
        assert_eq!(r.status, 201, "send: {}", r.body);
        r
    }

    /// Sends a raw request built by the caller.
    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Resp {
        read(req.send().await.expect("request sent")).await
    }
}

/// A view of a [`TestApp`] under another prefix.
pub struct PrefixedApp<'a> {
    pub app: &'a TestApp,
    pub prefix: &'static str,
}

impl PrefixedApp<'_> {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}{}", self.app.addr, self.prefix, path)
    }

    pub async fn call(&self, method: Method, path: &str, user: &User, tenant: i64, body: Option<Value>) -> Resp {
        let mut req = self
            .app
            .client
            .request(method, self.url(path))
            .bearer_auth(user.token())
            .header("X-Tenant-ID", tenant.to_string());
        if let Some(body) = body {
            req = req.json(&body);
        }
        read(req.send().await.expect("request sent")).await
    }
}

pub async fn read(res: reqwest::Response) -> Resp {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await.expect("body");
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {:?}", String::from_utf8_lossy(&bytes)));
    Resp { status, headers, body }
}
