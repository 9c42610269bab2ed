//! Who calls the API in a test, and the HS256 tokens that say so.

use livechat::auth::{MintClaims, Secret, mint_hs256};
use std::collections::HashMap;

/// The secret every test server verifies HS256 tokens with.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Someone calling the API.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub roles: Vec<String>,
    pub tenants: HashMap<String, Vec<String>>,
}

impl User {
    /// A platform support agent (every tenant).
    pub fn agent(id: i64) -> Self {
        Self { id, roles: vec!["support_agent".into()], tenants: HashMap::new() }
    }

    /// A support agent of one tenant only.
    pub fn tenant_agent(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "support_agent")
    }

    /// A member of a tenant (koperasi_member).
    pub fn member(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "koperasi_member")
    }

    /// Someone with a tenant role outside the allowlist.
    pub fn outsider(id: i64, tenant: i64) -> Self {
        Self::with_tenant_role(id, tenant, "accountant")
    }

    pub fn with_tenant_role(id: i64, tenant: i64, role: &str) -> Self {
        Self { id, roles: Vec::new(), tenants: HashMap::from([(tenant.to_string(), vec![role.to_owned()])]) }
    }

    /// A valid HS256 token for this user.
    pub fn token(&self) -> String {
        self.token_with(|_| {})
    }

    /// A token whose claims were adjusted first.
    pub fn token_with(&self, adjust: impl FnOnce(&mut MintClaims)) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = MintClaims {
            sub: self.id.to_string(),
            roles: self.roles.clone(),
            tenants: self.tenants.clone(),
            iat: now,
            exp: now + 3600,
            iss: None,
            aud: None,
        };
        adjust(&mut claims);
        mint_hs256(&Secret::new(SECRET.into()), &claims).expect("mint")
    }
}
