//! Signing as the Standard Webhooks specification says: the signed content
//! is `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under
//! the secret's bytes (the base64 after `whsec_`), and sent as
//! `webhook-signature: v1,<base64>`; with several secrets (a rotation's
//! overlap) the signatures are separated by spaces, and a receiver accepts
//! the request if any one of them verifies.

use crate::domain::webhook::SigningSecret;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` value for this id, timestamp and body.
pub fn signature_header(secrets: &[SigningSecret], id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .filter_map(|secret| sign(secret, id, timestamp, body))
        .map(|sig| format!("v1,{sig}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One base64 signature, or `None` for a secret that is not base64 (never stored).
fn sign(secret: &SigningSecret, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = secret.key()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_specification_example() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = SigningSecret::from_stored("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
        let body = br#"{"test": 2432232314}"#;
        let header = signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(header, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn two_secrets_give_two_space_separated_signatures() {
        let (a, b) = (SigningSecret::generate(), SigningSecret::generate());
        let header = signature_header(&[a.clone(), b], "msg_1", 1, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_eq!(parts[0], signature_header(&[a], "msg_1", 1, b"{}"));
    }
}
