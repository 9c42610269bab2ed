//! Who may use livechat in a tenant, and as what.
//!
//! The rules of CONTRACT section 2, independent of how the identity was proven.

use super::ids::{TenantId, UserId};
use std::collections::{BTreeSet, HashMap};

/// The platform role that may act in every tenant.
pub const SUPPORT_AGENT: &str = "support_agent";

/// The tenant roles allowed by default.
pub const DEFAULT_ALLOWED_ROLES: &[&str] = &[
    SUPPORT_AGENT,
    "koperasi_admin",
    "koperasi_member",
    "umkm_admin",
    "umkm_member",
    "bumdes_admin",
    "bumdes_member",
];

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The numeric `sub`.
    pub user_id: UserId,
    /// Platform-wide roles.
    pub roles: Vec<String>,
    /// Roles per tenant, keyed by the decimal tenant id.
    pub tenants: HashMap<String, Vec<String>>,
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
        Self {
            allowed: roles.into_iter().collect(),
        }
    }

    /// The allowed tenant roles.
    pub fn allowed_roles(&self) -> impl Iterator<Item = &str> {
        self.allowed.iter().map(String::as_str)
    }

    /// Decides whether `identity` may use livechat in `tenant`, and as what.
    pub fn admit(&self, identity: &Identity, tenant: TenantId) -> Result<Caller, Forbidden> {
        let user_id = identity.user_id;
        let platform_agent = identity.roles.iter().any(|r| r == SUPPORT_AGENT);
        let tenant_roles = identity
            .tenants
            .get(&tenant.to_string())
            .map(Vec::as_slice)
            .unwrap_or_default();
        let tenant_agent = tenant_roles
            .iter()
            .any(|r| r == SUPPORT_AGENT && self.allowed.contains(r));
        let allowed_in_tenant = tenant_roles.iter().any(|r| self.allowed.contains(r));
        let role = if platform_agent || tenant_agent {
            Role::Agent
        } else if allowed_in_tenant {
            Role::TenantUser
        } else {
            return Err(Forbidden);
        };
        Ok(Caller {
            user_id,
            tenant_id: tenant,
            role,
        })
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
                .map(|(t, rs)| {
                    (
                        (*t).to_owned(),
                        rs.iter().map(|r| (*r).to_owned()).collect(),
                    )
                })
                .collect(),
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
    fn roles_outside_the_allowlist_are_forbidden() {
        let p = AccessPolicy::new(["umkm_admin".to_owned()]);
        let id = identity(&["admin"], &[("12", &["koperasi_admin"])]);
        assert_eq!(p.admit(&id, t(12)), Err(Forbidden));
    }
}
