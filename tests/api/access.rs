//! The access matrix (docs/API.md §2): each kind of caller × own / other
//! tenant × each route, with the exact status expected.

use crate::conformance;
use crate::helpers::{Backend, TestApp, User};
use reqwest::Method;
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Route {
    Create,
    List,
    Get,
    Send,
    ListMessages,
    Close,
}

async fn access_matrix_holds_for_every_role_tenant_and_route(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let own = 12;
    let other = 13;
    let session = app.open_session(&User::member(999, own), own).await;

    let platform_agent = User::agent(1);
    let tenant_agent = User::tenant_agent(2, own);
    let member = User::member(3, own);
    let admin = User::with_tenant_role(4, own, "bumdes_admin");
    let outsider = User::outsider(5, own);
    let nobody = User { id: 6, roles: vec!["admin".into()], tenants: Default::default() };

    // (route, caller, tenant, expected status). Rows run in order: creates
    // first (tenant 12 already has its session), close last.
    let rows: Vec<(Route, &User, i64, u16)> = vec![
        (Route::Create, &platform_agent, own, 400),
        (Route::Create, &tenant_agent, own, 400),
        (Route::Create, &member, own, 400),
        (Route::Create, &admin, own, 400),
        (Route::Create, &outsider, own, 403),
        (Route::Create, &nobody, own, 403),
        (Route::Create, &tenant_agent, other, 403),
        (Route::Create, &member, other, 403),
        (Route::Create, &admin, other, 403),
        (Route::Create, &outsider, other, 403),
        (Route::Create, &nobody, other, 403),
        (Route::Create, &platform_agent, other, 201),
        (Route::List, &platform_agent, own, 200),
        (Route::List, &tenant_agent, own, 200),
        (Route::List, &member, own, 200),
        (Route::List, &admin, own, 200),
        (Route::List, &outsider, own, 403),
        (Route::List, &nobody, own, 403),
        (Route::List, &platform_agent, other, 200),
        (Route::List, &tenant_agent, other, 403),
        (Route::List, &member, other, 403),
        (Route::Get, &platform_agent, own, 200),
        (Route::Get, &tenant_agent, own, 200),
        (Route::Get, &member, own, 200),
        (Route::Get, &admin, own, 200),
        (Route::Get, &outsider, own, 403),
        (Route::Get, &nobody, own, 403),
        (Route::Get, &platform_agent, other, 404),
        (Route::Get, &tenant_agent, other, 403),
        (Route::Get, &member, other, 403),
        (Route::Send, &platform_agent, own, 201),
        (Route::Send, &tenant_agent, own, 201),
        (Route::Send, &member, own, 201),
        (Route::Send, &admin, own, 201),
        (Route::Send, &outsider, own, 403),
        (Route::Send, &nobody, own, 403),
        (Route::Send, &platform_agent, other, 404),
        (Route::Send, &tenant_agent, other, 403),
        (Route::Send, &member, other, 403),
        (Route::ListMessages, &platform_agent, own, 200),
        (Route::ListMessages, &tenant_agent, own, 200),
        (Route::ListMessages, &member, own, 200),
        (Route::ListMessages, &admin, own, 200),
        (Route::ListMessages, &outsider, own, 403),
        (Route::ListMessages, &nobody, own, 403),
        (Route::ListMessages, &platform_agent, other, 404),
        (Route::ListMessages, &tenant_agent, other, 403),
        (Route::ListMessages, &member, other, 403),
        (Route::Close, &member, own, 403),
        (Route::Close, &admin, own, 403),
        (Route::Close, &outsider, own, 403),
        (Route::Close, &nobody, own, 403),
        (Route::Close, &platform_agent, other, 404),
        (Route::Close, &tenant_agent, other, 403),
        (Route::Close, &member, other, 403),
        (Route::Close, &tenant_agent, own, 200),
        (Route::Close, &platform_agent, own, 200),
    ];
    let mut failures = Vec::new();
    for (route, user, tenant, expected) in rows {
        let (method, path, body) = match route {
            Route::Create => (Method::POST, "/sessions".to_owned(), None),
            Route::List => (Method::GET, "/sessions".to_owned(), None),
            Route::Get => (Method::GET, format!("/sessions/{session}"), None),
            Route::Send => (Method::POST, format!("/sessions/{session}/messages"), Some(json!({ "message": "halo" }))),
            Route::ListMessages => (Method::GET, format!("/sessions/{session}/messages"), None),
            Route::Close => (Method::POST, format!("/sessions/{session}/close"), None),
        };
        let r = app.call(method, &path, user, tenant, body).await;
        if r.status != expected {
            failures.push(format!(
                "{route:?} as user {} in tenant {tenant}: expected {expected}, got {} {}",
                user.id, r.status, r.body
            ));
        }
        if r.status == 403 {
            r.assert_error(403, "forbidden");
        }
    }
    assert!(failures.is_empty(), "access matrix broken:\n{}", failures.join("\n"));
}

async fn tenant_header_must_be_a_positive_integer(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let send = |value: Option<&'static str>| {
        let mut req = app.client.get(app.url("/sessions")).bearer_auth(agent.token());
        if let Some(v) = value {
            req = req.header("X-Tenant-ID", v);
        }
        app.raw(req)
    };
    for value in [None, Some("0"), Some("-3"), Some("abc"), Some("1.5"), Some(""), Some("99999999999999999999")] {
        let r = send(value).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("X-Tenant-ID").is_empty(), "{value:?}: {}", r.body);
    }
    assert_eq!(send(Some("12")).await.status, 200);
}

conformance!(access_matrix_holds_for_every_role_tenant_and_route, tenant_header_must_be_a_positive_integer);
