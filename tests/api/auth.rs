//! Token verification (docs/API.md §2): every bad token is a 401 with
//! `WWW-Authenticate: Bearer`; HS256, PEM and JWKS keys all work.

use crate::conformance;
use crate::helpers::{Backend, SECRET, TestApp, TestOptions, User};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use livechat::auth::{KeySource, MintClaims};

fn b64(bytes: &[u8]) -> String {
    // Base64url without padding, as JWS wants.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn claims(user: &User) -> MintClaims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    MintClaims {
        sub: user.id.to_string(),
        roles: user.roles.clone(),
        tenants: user.tenants.clone(),
        iat: now,
        exp: now + 600,
        iss: None,
        aud: None,
    }
}

fn sign<T: serde::Serialize>(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &T) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

async fn status_with(app: &TestApp, authorization: Option<String>) -> crate::helpers::Resp {
    let mut req = app.client.get(app.url("/sessions")).header("X-Tenant-ID", "12");
    if let Some(value) = authorization {
        req = req.header("Authorization", value);
    }
    app.raw(req).await
}

async fn bad_tokens_are_401_with_a_bearer_challenge(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let agent = User::agent(1);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let none_token = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(serde_json::to_string(&claims(&agent)).unwrap().as_bytes())
    );
    let hs512 = sign(Algorithm::HS512, None, &EncodingKey::from_secret(SECRET.as_bytes()), &claims(&agent));
    let forged =
        sign(Algorithm::HS256, None, &EncodingKey::from_secret(b"another-secret-another-secret-123"), &claims(&agent));
    // Flip the signature's first character (its last one may carry only
    // padding bits, which a decoder can ignore).
    let token = agent.token();
    let sig_start = token.rfind('.').unwrap() + 1;
    let flipped = if token[sig_start..].starts_with('A') { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &token[..sig_start], &token[sig_start + 1..]);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("basic scheme", Some("Basic dXNlcjpwYXNz".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer not.a.token".into())),
        ("expired", Some(format!("Bearer {}", agent.token_with(|c| c.exp = now - 60)))),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    None,
                    &EncodingKey::from_secret(SECRET.as_bytes()),
                    &serde_json::json!({ "sub": "1", "roles": ["support_agent"], "exp": now + 900, "nbf": now + 600 })
                )
            )),
        ),
        ("wrong signature", Some(format!("Bearer {forged}"))),
        ("tampered signature", Some(format!("Bearer {tampered}"))),
        ("alg none", Some(format!("Bearer {none_token}"))),
        ("wrong algorithm", Some(format!("Bearer {hs512}"))),
        ("non-numeric sub", Some(format!("Bearer {}", agent.token_with(|c| c.sub = "alice".into())))),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                sign(
                    Algorithm::HS256,
                    None,
                    &EncodingKey::from_secret(SECRET.as_bytes()),
                    &serde_json::json!({ "sub": "1", "roles": ["support_agent"] })
                )
            )),
        ),
    ];
    for (what, header) in cases {
        let r = status_with(&app, header).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
    }
    // Auth comes before the tenant header check.
    let r = app.raw(app.client.get(app.url("/sessions"))).await;
    r.assert_error(401, "unauthorized");
    // A numeric sub given as a JSON number is fine.
    let numeric = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(SECRET.as_bytes()),
        &serde_json::json!({ "sub": 1, "roles": ["support_agent"], "exp": now + 60 }),
    );
    assert_eq!(status_with(&app, Some(format!("Bearer {numeric}"))).await.status, 200);
}

async fn issuer_and_audience_are_checked_when_configured(backend: Backend) {
    let options = TestOptions {
        issuer: Some("https://id.koperasi.test".into()),
        audience: Some("livechat".into()),
        ..TestOptions::default()
    };
    let app = TestApp::spawn_with(backend, options).await;
    let agent = User::agent(1);
    let good = agent.token_with(|c| {
        c.iss = Some("https://id.koperasi.test".into());
        c.aud = Some("livechat".into());
    });
    assert_eq!(status_with(&app, Some(format!("Bearer {good}"))).await.status, 200);
    let wrong_iss = agent.token_with(|c| {
        c.iss = Some("https://evil.test".into());
        c.aud = Some("livechat".into());
    });
    let no_aud = agent.token_with(|c| c.iss = Some("https://id.koperasi.test".into()));
    for token in [wrong_iss, no_aud, agent.token()] {
        status_with(&app, Some(format!("Bearer {token}"))).await.assert_error(401, "unauthorized");
    }
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

async fn asymmetric_keys_from_pem_files_verify_tokens(backend: Backend) {
    let agent = User::agent(1);
    for (alg, public, private) in [
        (Algorithm::RS256, "rs256.pub.pem", "rs256.key"),
        (Algorithm::ES256, "es256.pub.pem", "es256.key"),
        (Algorithm::EdDSA, "ed25519.pub.pem", "ed25519.key"),
    ] {
        let options =
            TestOptions { keys: KeySource::Pem { path: fixture(public), algorithm: alg }, ..TestOptions::default() };
        let app = TestApp::spawn_with(backend, options).await;
        let pem = std::fs::read(fixture(private)).unwrap();
        let key = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
            _ => EncodingKey::from_ed_pem(&pem),
        }
        .unwrap();
        let token = sign(alg, None, &key, &claims(&agent));
        assert_eq!(status_with(&app, Some(format!("Bearer {token}"))).await.status, 200, "{alg:?}");
        // An HS256 token signed with the public key as secret (key confusion) is refused.
        let public_bytes = std::fs::read(fixture(public)).unwrap();
        let confused = sign(Algorithm::HS256, None, &EncodingKey::from_secret(&public_bytes), &claims(&agent));
        status_with(&app, Some(format!("Bearer {confused}"))).await.assert_error(401, "unauthorized");
        status_with(&app, Some(format!("Bearer {}", agent.token()))).await.assert_error(401, "unauthorized");
    }
}

async fn jwks_keys_are_chosen_by_kid(backend: Backend) {
    let options = TestOptions { keys: KeySource::Jwks(fixture("jwks.json")), ..TestOptions::default() };
    let app = TestApp::spawn_with(backend, options).await;
    let agent = User::agent(1);
    let rsa = EncodingKey::from_rsa_pem(&std::fs::read(fixture("rs256.key")).unwrap()).unwrap();
    let ed = EncodingKey::from_ed_pem(&std::fs::read(fixture("ed25519.key")).unwrap()).unwrap();
    let ok_rsa = sign(Algorithm::RS256, Some("test-rsa"), &rsa, &claims(&agent));
    let ok_ed = sign(Algorithm::EdDSA, Some("test-ed"), &ed, &claims(&agent));
    assert_eq!(status_with(&app, Some(format!("Bearer {ok_rsa}"))).await.status, 200);
    assert_eq!(status_with(&app, Some(format!("Bearer {ok_ed}"))).await.status, 200);
    for bad in [
        sign(Algorithm::RS256, Some("test-ed"), &rsa, &claims(&agent)),
        sign(Algorithm::RS256, Some("unknown"), &rsa, &claims(&agent)),
        sign(Algorithm::RS256, None, &rsa, &claims(&agent)),
    ] {
        status_with(&app, Some(format!("Bearer {bad}"))).await.assert_error(401, "unauthorized");
    }
}

conformance!(
    bad_tokens_are_401_with_a_bearer_challenge,
    issuer_and_audience_are_checked_when_configured,
    asymmetric_keys_from_pem_files_verify_tokens,
    jwks_keys_are_chosen_by_kid,
);
