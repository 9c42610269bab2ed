//! Token verification and minting (docs/API.md §2).
//!
//! A token proves an [`Identity`]; what that identity may do in a tenant is
//! decided by [`crate::domain::access`].

use crate::domain::access::Identity;
use crate::domain::ids::UserId;
use anyhow::{Context, bail};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::path::Path;

/// A secret that never prints.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The secret itself; only for key material.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where verification keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// HS256 with a shared secret.
    Hs256(Secret),
    /// One public key in a PEM file, for the given asymmetric algorithm.
    Pem { path: std::path::PathBuf, algorithm: Algorithm },
    /// A JWKS document (keys chosen by `kid`).
    Jwks(std::path::PathBuf),
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The keys.
    pub keys: KeySource,
    /// Required `iss`, if set.
    pub issuer: Option<String>,
    /// Required `aud`, if set.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` / `nbf`, in seconds.
    pub leeway_secs: u64,
}

/// Why a token was refused (all answered with 401; the reason goes to the log only).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Signature, format, algorithm, time or claim checks failed.
    #[error("invalid token: {0}")]
    Invalid(#[from] jsonwebtoken::errors::Error),
    /// No key matches the token's `kid`.
    #[error("no verification key for this token")]
    UnknownKey,
    /// The `sub` claim is not a positive integer.
    #[error("token subject is not a numeric user id")]
    BadSubject,
}

/// The claims livechat reads.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: serde_json::Value,
    exp: i64,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    tenants: HashMap<String, Vec<String>>,
}

struct VerifyKey {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

/// Verifies bearer tokens against the configured keys.
pub struct Verifier {
    keys: Vec<VerifyKey>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier").field("keys", &self.keys.len()).finish()
    }
}

impl Verifier {
    /// Loads keys; any unreadable or unusable key is a start-up error.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let validation = |alg: Algorithm| {
            let mut v = Validation::new(alg);
            // A configured iss/aud must be present, not merely correct when present.
            let mut required = vec!["exp"];
            required.extend(config.issuer.as_ref().map(|_| "iss"));
            required.extend(config.audience.as_ref().map(|_| "aud"));
            v.set_required_spec_claims(&required);
            v.validate_exp = true;
            v.validate_nbf = true;
            v.leeway = config.leeway_secs;
            match &config.issuer {
                Some(iss) => v.set_issuer(&[iss]),
                None => v.iss = None,
            }
            match &config.audience {
                Some(aud) => v.set_audience(&[aud]),
                None => v.validate_aud = false,
            }
            v
        };
        let keys = match &config.keys {
            KeySource::Hs256(secret) => vec![VerifyKey {
                kid: None,
                key: DecodingKey::from_secret(secret.expose().as_bytes()),
                validation: validation(Algorithm::HS256),
            }],
            KeySource::Pem { path, algorithm } => {
                let pem = read(path)?;
                let key = match algorithm {
                    Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                    Algorithm::ES256 => DecodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                    other => bail!("algorithm {other:?} is not supported with a PEM key (use RS256, ES256 or EdDSA)"),
                }
                .with_context(|| format!("{} is not a {algorithm:?} public key in PEM form", path.display()))?;
                vec![VerifyKey { kid: None, key, validation: validation(*algorithm) }]
            }
            KeySource::Jwks(path) => {
                let set: JwkSet = serde_json::from_slice(&read(path)?)
                    .with_context(|| format!("{} is not a JWKS document", path.display()))?;
                let mut keys = Vec::new();
                for jwk in &set.keys {
                    let alg = match (jwk.common.key_algorithm, &jwk.algorithm) {
                        (Some(ka), _) => Algorithm::try_from(ka)
                            .map_err(|_| anyhow::anyhow!("JWKS key {:?}: unsupported alg", jwk.common.key_id))?,
                        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                        (None, AlgorithmParameters::EllipticCurve(_)) => Algorithm::ES256,
                        (None, AlgorithmParameters::OctetKeyPair(_)) => Algorithm::EdDSA,
                        (None, _) => {
                            bail!("JWKS key {:?}: only RSA, EC and OKP keys are accepted", jwk.common.key_id)
                        }
                    };
                    if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                        bail!("JWKS key {:?}: symmetric algorithms are not accepted from a JWKS", jwk.common.key_id);
                    }
                    let key = DecodingKey::try_from(jwk)
                        .with_context(|| format!("JWKS key {:?} is unusable", jwk.common.key_id))?;
                    keys.push(VerifyKey { kid: jwk.common.key_id.clone(), key, validation: validation(alg) });
                }
                if keys.is_empty() {
                    bail!("{} holds no keys", path.display());
                }
                keys
            }
        };
        Ok(Self { keys })
    }

    /// Verifies a compact JWS and extracts the identity.
    pub fn verify(&self, token: &str) -> Result<Identity, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let key = match (&header.kid, self.keys.as_slice()) {
            (_, [only]) if only.kid.is_none() || only.kid == header.kid => only,
            (Some(kid), keys) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).ok_or(TokenError::UnknownKey)?,
            (None, _) => return Err(TokenError::UnknownKey),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &key.validation)?;
        let claims = data.claims;
        let user_id = match &claims.sub {
            serde_json::Value::String(s) => UserId::parse(s).ok(),
            serde_json::Value::Number(n) => n.as_i64().and_then(|n| UserId::new(n).ok()),
            _ => None,
        }
        .ok_or(TokenError::BadSubject)?;
        Ok(Identity { user_id, roles: claims.roles, tenants: claims.tenants, expires_at: claims.exp })
    }
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))
}

/// Claims of a token minted by `livechat token` or `serve --dev`.
#[derive(Debug, Clone, Serialize)]
pub struct MintClaims {
    /// User id, as a string of digits.
    pub sub: String,
    /// Platform roles.
    pub roles: Vec<String>,
    /// Roles per tenant.
    pub tenants: HashMap<String, Vec<String>>,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expiry (seconds).
    pub exp: i64,
    /// Issuer, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Audience, when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Signs claims with an HS256 secret.
pub fn mint_hs256(secret: &Secret, claims: &MintClaims) -> anyhow::Result<String> {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.expose().as_bytes()))
        .context("signing token")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AuthConfig {
        AuthConfig {
            keys: KeySource::Hs256(Secret::new("s3cret-s3cret-s3cret-s3cret-s3cret".into())),
            issuer: None,
            audience: None,
            leeway_secs: 0,
        }
    }

    fn claims(exp_in: i64, sub: &str) -> MintClaims {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        MintClaims {
            sub: sub.into(),
            roles: vec!["support_agent".into()],
            tenants: HashMap::new(),
            iat: now,
            exp: now + exp_in,
            iss: None,
            aud: None,
        }
    }

    #[test]
    fn minted_tokens_verify() {
        let cfg = config();
        let KeySource::Hs256(secret) = &cfg.keys else { unreachable!() };
        let token = mint_hs256(secret, &claims(60, "42")).unwrap();
        let id = Verifier::new(&cfg).unwrap().verify(&token).unwrap();
        assert_eq!(id.user_id.get(), 42);
        assert_eq!(id.roles, vec!["support_agent".to_owned()]);
    }

    #[test]
    fn expired_and_non_numeric_subjects_are_refused() {
        let cfg = config();
        let KeySource::Hs256(secret) = &cfg.keys else { unreachable!() };
        let v = Verifier::new(&cfg).unwrap();
        assert!(v.verify(&mint_hs256(secret, &claims(-120, "42")).unwrap()).is_err());
        assert!(matches!(v.verify(&mint_hs256(secret, &claims(60, "alice")).unwrap()), Err(TokenError::BadSubject)));
    }

    #[test]
    fn issuer_is_enforced_when_configured() {
        let mut cfg = config();
        cfg.issuer = Some("https://id.example".into());
        let KeySource::Hs256(secret) = &cfg.keys else { unreachable!() };
        let v = Verifier::new(&cfg).unwrap();
        assert!(v.verify(&mint_hs256(secret, &claims(60, "1")).unwrap()).is_err());
        let mut good = claims(60, "1");
        good.iss = Some("https://id.example".into());
        assert!(v.verify(&mint_hs256(secret, &good).unwrap()).is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "Secret(***)");
    }
}
