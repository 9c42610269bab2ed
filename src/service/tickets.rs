//! Single-use tickets that authorise one stream (browsers cannot set headers
//! on a WebSocket or an `EventSource`, and tokens never go in URLs).

use super::{Error, Livechat};
use crate::domain::access::{Caller, Identity};
use crate::domain::ids::TenantId;
use crate::domain::time::Timestamp;
use crate::store::Ticket;
use sha2::{Digest, Sha256};

/// A freshly issued stream ticket.
#[derive(Debug, Clone)]
pub struct IssuedTicket {
    /// The ticket to put in the stream URL.
    pub ticket: String,
    /// When it stops being accepted.
    pub expires_at: Timestamp,
}

/// The tenant a ticket (`<tenant>.<secret>`) was issued in, if it has that shape.
pub fn ticket_tenant(ticket: &str) -> Option<TenantId> {
    ticket.split_once('.').and_then(|(t, _)| TenantId::parse(t).ok())
}

fn hash_ticket(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Livechat {
    /// Issues a single-use ticket that authorises one stream as `identity`.
    pub async fn issue_ticket(&self, caller: &Caller, identity: &Identity) -> Result<IssuedTicket, Error> {
        // The token may still pass within the clock-skew leeway, but a stream
        // ends when it expires: a ticket for an expired token opens nothing.
        if identity.expires_at <= Timestamp::now().unix_seconds() {
            return Err(Error::Unauthorized);
        }
        let secret = hex::encode(rand::random::<[u8; 32]>());
        let ticket = format!("{}.{secret}", caller.tenant_id);
        let expires_at = Timestamp::now().plus(self.limits().ticket_ttl);
        self.store()
            .put_ticket(&Ticket {
                tenant_id: caller.tenant_id,
                hash: hash_ticket(&ticket),
                identity: identity.clone(),
                token_exp: identity.expires_at,
                expires_at,
            })
            .await?;
        Ok(IssuedTicket { ticket, expires_at })
    }

    /// Redeems a ticket (once): the identity and the tenant it was issued in.
    pub async fn redeem_ticket(&self, ticket: &str) -> Result<(TenantId, Identity), Error> {
        let tenant = ticket_tenant(ticket).ok_or(Error::Unauthorized)?;
        let now = Timestamp::now();
        let stored = self.store().take_ticket(tenant, &hash_ticket(ticket), now).await?.ok_or(Error::Unauthorized)?;
        if stored.token_exp <= now.unix_seconds() {
            return Err(Error::Unauthorized);
        }
        Ok((tenant, stored.identity))
    }
}
