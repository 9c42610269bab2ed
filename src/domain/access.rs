//! Who may use livechat in a tenant, and as what.
//!
//! The rules of docs/API.md §2, independent of how the identity was proven.

use super::ids::{TenantId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};

/// The platform role that may act in every tenant.
pub const SUPPORT_AGENT: &str = "support_agent";

/// The tenant roles allowed by default.
pub const DEFAULT_ALLOWED_ROLES: &[&str] =
    &[SUPPORT_AGENT, "koperasi_admin", "koperasi_member", "umkm_admin", "umkm_member", "bumdes_admin", "bumdes_member"];

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The numeric `sub`.
    pub user_id: UserId,
    /// Platform-wide roles.
    pub roles: Vec<String>,
    /// Roles per tenant, keyed by the decimal tenant id.
    pub tenants: HashMap<String, Vec<String>>,
    /// When the proof expires (Unix seconds); streams end then.
    pub expires_at: i64,
}

/// How a caller takes part in a tenant's conversations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A support agent: may assign, close and act in any session of the tenant.
    Agent,
    /// A member or admin of the tenant.
    TenantUser,
}

/// A caller admitted to one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The caller's user id (the `sub` claim).
    pub user_id: UserId,
    /// The tenant the request acts in.
    pub tenant_id: TenantId,
    /// Agent or tenant user.
    pub role: Role,
}

impl Caller {
    /// Whether the caller is a support agent in this tenant.
    pub fn is_agent(&self) -> bool {
        self.role == Role::Agent
    }
}

/// Why a verified identity may not act in a tenant: no allowed role there.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no allowed role in this tenant")]
pub struct Forbidden;

/// Where an agent may work: everywhere (platform agent) or in some tenants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentScope {
    /// A platform `support_agent`.
    Platform,
    /// A `support_agent` of these tenants only.
    Tenants(BTreeSet<TenantId>),
}

impl AgentScope {
    /// Whether the scope includes `tenant`.
    pub fn covers(&self, tenant: TenantId) -> bool {
        match self {
            Self::Platform => true,
            Self::Tenants(ts) => ts.contains(&tenant),
        }
    }

    /// Compact storage form: `*` or `,12,13,` (so `LIKE '%,12,%'` tests membership).
    pub fn encode(&self) -> String {
        match self {
            Self::Platform => "*".to_owned(),
            Self::Tenants(ts) => {
                let mut out = String::from(",");
                for t in ts {
                    out.push_str(&t.to_string());
                    out.push(',');
                }
                out
            }
        }
    }
}

/// The configurable allowlist of tenant roles.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    allowed: BTreeSet<String>,
}

impl Default for AccessPolicy {
    fn default() -> Self {
        Self::new(DEFAULT_ALLOWED_ROLES.iter().map(|r| (*r).to_owned()))
    }
}

impl AccessPolicy {
    /// A policy allowing exactly these tenant roles.
    pub fn new(roles: impl IntoIterator<Item = String>) -> Self {
        Self { allowed: roles.into_iter().collect() }
    }

    /// The allowed tenant roles.
    pub fn allowed_roles(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    /// Where `identity` works as an agent, if anywhere.
    pub fn agent_scope(&self, identity: &Identity) -> Option<AgentScope> {
        if identity.roles.iter().any(|r| r == SUPPORT_AGENT) {
            return Some(AgentScope::Platform);
        }
        let tenants: BTreeSet<TenantId> = identity
            .tenants
            .iter()
            .filter(|(_, roles)| roles.iter().any(|r| r == SUPPORT_AGENT && self.allowed.contains(r)))
            .filter_map(|(t, _)| TenantId::parse(t).ok())
            .collect();
        (!tenants.is_empty()).then_some(AgentScope::Tenants(tenants))
    }

    /// Decides whether `identity` may use livechat in `tenant`, and as what.
    pub fn admit(&self, identity: &Identity, tenant: TenantId) -> Result<Caller, Forbidden> {
        let user_id = identity.user_id;
        let platform_agent = identity.roles.iter().any(|r| r == SUPPORT_AGENT);
        let tenant_roles = identity.tenants.get(&tenant.to_string()).map(Vec::as_slice).unwrap_or_default();
        let tenant_agent = tenant_roles.iter().any(|r| r == SUPPORT_AGENT && self.allowed.contains(r));
        let allowed_in_tenant = tenant_roles.iter().any(|r| self.allowed.contains(r));
        let role = if platform_agent || tenant_agent {
            Role::Agent
        } else if allowed_in_tenant {
            Role::TenantUser
        } else {
            return Err(Forbidden);
        };
        Ok(Caller { user_id, tenant_id: tenant, role })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(roles: &[&str], tenants: &[(&str, &[&str])]) -> Identity {
        Identity {
            user_id: UserId::new(7).unwrap(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            tenants: tenants
                .iter()
                .map(|(t, rs)| ((*t).to_owned(), rs.iter().map(|r| (*r).to_owned()).collect()))
                .collect(),
            expires_at: i64::MAX,
        }
    }

    fn t(n: i64) -> TenantId {
        TenantId::new(n).unwrap()
    }

    #[test]
    fn platform_agent_is_an_agent_in_every_tenant() {
        let p = AccessPolicy::default();
        let c = p.admit(&identity(&[SUPPORT_AGENT], &[]), t(99)).unwrap();
        assert_eq!(c.role, Role::Agent);
    }

    #[test]
    fn tenant_member_is_a_tenant_user_only_in_its_own_tenant() {
        let p = AccessPolicy::default();
        let id = identity(&[], &[("12", &["koperasi_member"])]);
        assert_eq!(p.admit(&id, t(12)).unwrap().role, Role::TenantUser);
        assert_eq!(p.admit(&id, t(13)), Err(Forbidden));
    }

    #[test]
    fn tenant_scoped_agent_is_an_agent_there_only() {
        let p = AccessPolicy::default();
        let id = identity(&[], &[("12", &[SUPPORT_AGENT])]);
        assert_eq!(p.admit(&id, t(12)).unwrap().role, Role::Agent);
        assert_eq!(p.admit(&id, t(5)), Err(Forbidden));
    }

    #[test]
    fn agent_scope_is_platform_wide_or_the_tenants_where_the_role_is_held() {
        let p = AccessPolicy::default();
        assert_eq!(p.agent_scope(&identity(&[SUPPORT_AGENT], &[])), Some(AgentScope::Platform));
        let scoped = p.agent_scope(&identity(&[], &[("12", &[SUPPORT_AGENT]), ("13", &["umkm_admin"])])).unwrap();
        assert!(scoped.covers(t(12)) && !scoped.covers(t(13)));
        assert_eq!(scoped.encode(), ",12,");
        assert_eq!(p.agent_scope(&identity(&[], &[("12", &["umkm_admin"])])), None);
    }

    #[test]
    fn roles_outside_the_allowlist_are_forbidden() {
        let p = AccessPolicy::new(["umkm_admin".to_owned()]);
        let id = identity(&["admin"], &[("12", &["koperasi_admin"])]);
        assert_eq!(p.admit(&id, t(12)), Err(Forbidden));
    }
}
