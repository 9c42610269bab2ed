//! Sessions: opening, reading, listing, closing (docs/API.md §10).

use crate::conformance;
use crate::helpers::{Backend, TestApp, User};
use serde_json::json;

async fn tenant_user_opens_an_unassigned_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.post("/sessions", &User::member(100, 12), 12, None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["success"], true);
    let s = r.data();
    assert_eq!(s["tenant_id"], 12);
    assert_eq!(s["status"], "OPEN");
    assert_eq!(s["opened_by"], 100);
    assert!(s.get("agent_id").is_none(), "queued session must omit agent_id: {s}");
    assert!(s.get("closed_at").is_none());
    assert_eq!(s["created_at"], s["updated_at"]);
    let id = uuid::Uuid::parse_str(s["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert!(r.body["errors"].is_null());
    assert!(r.body["meta"].get("pagination").is_none());
}

async fn agent_is_assigned_itself_or_the_agent_it_names(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let r = app.post("/sessions", &agent, 12, Some(json!({}))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["agent_id"], 1);
    // A named agent must be online.
    let r = app.post("/sessions", &agent, 13, Some(json!({ "agent_id": 7 }))).await;
    r.assert_error(400, "agent_offline");
    app.set_online(&User::agent(7)).await;
    let r = app.post("/sessions", &agent, 13, Some(json!({ "agent_id": 7 }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.data()["agent_id"], 7);
    // Naming oneself needs no presence.
    let r = app.post("/sessions", &agent, 14, Some(json!({ "agent_id": 1 }))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

async fn tenant_user_naming_an_agent_is_forbidden(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let r = app.post("/sessions", &User::member(100, 12), 12, Some(json!({ "agent_id": 7 }))).await;
    r.assert_error(403, "forbidden");
    // Nothing was opened.
    app.open_session(&User::member(100, 12), 12).await;
}

async fn bad_agent_id_is_a_validation_error(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for bad in
        [json!({ "agent_id": 0 }), json!({ "agent_id": -4 }), json!({ "agent_id": "7" }), json!({ "agent_id": 1.5 })]
    {
        let r = app.post("/sessions", &User::agent(1), 12, Some(bad.clone())).await;
        r.assert_error(400, "validation_error");
        assert!(!r.field_errors("agent_id").is_empty(), "{bad}: {}", r.body);
    }
    let r = app.post("/sessions", &User::agent(1), 12, Some(json!([1, 2]))).await;
    r.assert_error(400, "validation_error");
}

async fn second_open_session_is_refused_with_the_active_session_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let first = app.open_session(&User::member(100, 12), 12).await;
    let r = app.post("/sessions", &User::agent(1), 12, None).await;
    r.assert_error(400, "session_already_active");
    assert_eq!(r.field_errors("session_id"), vec![first.clone()]);
    // Another tenant is unaffected.
    app.open_session(&User::member(200, 13), 13).await;
    // After closing, the tenant may open a new one.
    let r = app.post(&format!("/sessions/{first}/close"), &User::agent(1), 12, None).await;
    assert_eq!(r.status, 200);
    let second = app.open_session(&User::member(100, 12), 12).await;
    assert_ne!(first, second);
}

async fn concurrent_session_creation_for_one_tenant_has_exactly_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let attempts = 16;
    let results = futures::future::join_all((0..attempts).map(|i| {
        let app = &app;
        async move {
            let user = if i % 2 == 0 { User::member(100 + i, 12) } else { User::agent(1 + i) };
            app.post("/sessions", &user, 12, None).await
        }
    }))
    .await;
    let winners: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(winners.len(), 1, "statuses: {:?}", results.iter().map(|r| r.status).collect::<Vec<_>>());
    let winner = winners[0].id();
    for r in results.iter().filter(|r| r.status != 201) {
        r.assert_error(400, "session_already_active");
        assert_eq!(r.field_errors("session_id"), vec![winner.clone()]);
    }
}

async fn opening_while_another_request_closes_is_never_a_503(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let opener = |n: i64| {
        let (app, user) = (&app, User::member(100 + n, 12));
        async move {
            let mut outcomes = Vec::new();
            for _ in 0..40 {
                outcomes.push(app.post("/sessions", &user, 12, None).await);
            }
            outcomes
        }
    };
    let closer = async {
        let mut closed = 0;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) && closed < 1_000 {
            let open = app.get("/sessions?status=OPEN&limit=1", &agent, 12).await;
            if let Some(id) = open.data()[0]["id"].as_str() {
                assert_eq!(app.post(&format!("/sessions/{id}/close"), &agent, 12, None).await.status, 200);
                closed += 1;
            }
        }
        closed
    };
    let openers = async {
        let all = futures::future::join_all((0..4).map(opener)).await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        all
    };
    let (all, closed) = tokio::join!(openers, closer);
    assert!(closed > 0, "the closer never found a session to close");
    let mut opened = 0;
    for r in all.iter().flatten() {
        if r.status == 201 {
            opened += 1;
            continue;
        }
        // Whatever the timing, a refusal names the session that is open.
        r.assert_error(400, "session_already_active");
        let ids = r.field_errors("session_id");
        assert!(ids.len() == 1 && uuid::Uuid::parse_str(&ids[0]).is_ok(), "{}", r.body);
    }
    assert!(opened > 1, "sessions were closed, so more than one open must have succeeded");
}

/// Four workers each open the tenant's session and close whichever is open,
/// 30 rounds: every open is settled by a definite answer (201, or 400 naming
/// the open session, or the documented 409), never 503.
async fn open_and_close_churn_on_one_tenant_gets_only_definite_answers(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let worker = |n: i64| {
        let (app, agent, user) = (&app, &agent, User::member(100 + n, 12));
        async move {
            let (mut opened, mut refused, mut conflicts) = (0, 0, 0);
            for _ in 0..30 {
                let r = app.post("/sessions", &user, 12, None).await;
                let id = match r.status {
                    201 => {
                        opened += 1;
                        r.data()["id"].as_str().map(str::to_owned)
                    }
                    400 => {
                        r.assert_error(400, "session_already_active");
                        refused += 1;
                        r.field_errors("session_id").first().cloned()
                    }
                    _ => {
                        r.assert_error(409, "session_conflict");
                        conflicts += 1;
                        None
                    }
                };
                if let Some(id) = id {
                    let closed = app.post(&format!("/sessions/{id}/close"), agent, 12, None).await;
                    assert_eq!(closed.status, 200, "{}", closed.body);
                }
            }
            (opened, refused, conflicts)
        }
    };
    let all = futures::future::join_all((0..4).map(worker)).await;
    let opened: i32 = all.iter().map(|(o, _, _)| o).sum();
    let answered: i32 = all.iter().map(|(o, r, c)| o + r + c).sum();
    assert_eq!(answered, 120);
    assert!(opened > 1, "each round closes what is open, so opens keep succeeding: {all:?}");
}

async fn get_session_returns_it_and_hides_other_tenants(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.open_session(&User::member(100, 12), 12).await;
    let r = app.get(&format!("/sessions/{id}"), &User::member(101, 12), 12).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.data()["id"], id.as_str());
    // The same id asked in another tenant is indistinguishable from a missing one.
    let other = app.get(&format!("/sessions/{id}"), &User::agent(1), 13).await;
    let missing = app.get(&format!("/sessions/{}", uuid::Uuid::now_v7()), &User::agent(1), 13).await;
    other.assert_error(404, "not_found");
    missing.assert_error(404, "not_found");
    assert_eq!(other.body["errors"], missing.body["errors"]);
    app.get("/sessions/not-a-uuid", &User::agent(1), 12).await.assert_error(400, "validation_error");
}

async fn close_is_for_agents_and_idempotent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.open_session(&User::member(100, 12), 12).await;
    let path = format!("/sessions/{id}/close");
    app.post(&path, &User::member(100, 12), 12, None).await.assert_error(403, "forbidden");
    let first = app.post(&path, &User::tenant_agent(5, 12), 12, None).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.data()["status"], "CLOSED");
    assert!(first.data()["closed_at"].is_string());
    assert!(first.data()["updated_at"].as_str() >= first.data()["created_at"].as_str());
    let again = app.post(&path, &User::agent(1), 12, None).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.data(), first.data(), "closing twice changes nothing");
    app.post(&format!("/sessions/{}/close", uuid::Uuid::now_v7()), &User::agent(1), 12, None)
        .await
        .assert_error(404, "not_found");
    app.post("/sessions/123/close", &User::agent(1), 12, None).await.assert_error(400, "validation_error");
    // Another tenant's agent scope cannot close it either.
    app.post(&path, &User::tenant_agent(6, 13), 13, None).await.assert_error(404, "not_found");
}

async fn list_sessions_is_newest_first_with_filters_and_cursor(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    app.set_online(&User::agent(7)).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = if i % 2 == 0 { json!({ "agent_id": 7 }) } else { json!({}) };
        let r = app.post("/sessions", &agent, 12, Some(body)).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let id = r.id();
        if i < 4 {
            assert_eq!(app.post(&format!("/sessions/{id}/close"), &agent, 12, None).await.status, 200);
        }
        ids.push(id);
    }
    app.open_session(&User::member(300, 99), 99).await;
    ids.reverse();

    let r = app.get("/sessions?limit=2", &agent, 12).await;
    assert_eq!(r.status, 200);
    let page: Vec<&str> = r.data().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(page, vec![ids[0].as_str(), ids[1].as_str()]);
    let p = &r.body["meta"]["pagination"];
    assert_eq!(p["limit"], 2);
    assert_eq!(p["has_next"], true);
    assert_eq!(p["has_prev"], false);
    assert_eq!(p["next_cursor"], ids[1].as_str());
    assert!(p.get("prev_cursor").is_none());

    let r = app.get(&format!("/sessions?limit=2&cursor={}", ids[1]), &agent, 12).await;
    let page: Vec<&str> = r.data().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(page, vec![ids[2].as_str(), ids[3].as_str()]);
    assert_eq!(r.body["meta"]["pagination"]["has_prev"], true);
    assert_eq!(r.body["meta"]["pagination"]["prev_cursor"], ids[2].as_str());

    let r = app.get("/sessions?status=OPEN", &agent, 12).await;
    assert_eq!(r.data().as_array().unwrap().len(), 1);
    assert_eq!(r.data()[0]["id"], ids[0].as_str());
    let r = app.get("/sessions?agent_id=7", &agent, 12).await;
    assert_eq!(r.data().as_array().unwrap().len(), 3);
    assert!(r.data().as_array().unwrap().iter().all(|s| s["agent_id"] == 7));
    let r = app.get("/sessions?status=CLOSED&agent_id=1&limit=100", &agent, 12).await;
    assert_eq!(r.data().as_array().unwrap().len(), 2);

    for bad in ["status=open", "agent_id=0", "limit=0", "cursor=xyz", "direction=up"] {
        app.get(&format!("/sessions?{bad}"), &agent, 12).await.assert_error(400, "validation_error");
    }
    // A session of another tenant is not a cursor here.
    let foreign = app.get("/sessions", &agent, 99).await.data()[0]["id"].as_str().unwrap().to_owned();
    let r = app.get(&format!("/sessions?cursor={foreign}"), &agent, 12).await;
    r.assert_error(400, "validation_error");
    assert!(!r.field_errors("cursor").is_empty());
}

conformance!(
    tenant_user_opens_an_unassigned_session,
    agent_is_assigned_itself_or_the_agent_it_names,
    tenant_user_naming_an_agent_is_forbidden,
    bad_agent_id_is_a_validation_error,
    second_open_session_is_refused_with_the_active_session_id,
    concurrent_session_creation_for_one_tenant_has_exactly_one_winner,
    opening_while_another_request_closes_is_never_a_503,
    open_and_close_churn_on_one_tenant_gets_only_definite_answers,
    get_session_returns_it_and_hides_other_tenants,
    close_is_for_agents_and_idempotent,
    list_sessions_is_newest_first_with_filters_and_cursor,
);
