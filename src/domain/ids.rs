//! Identifiers, parsed once from raw input so the rest of the code cannot hold
//! an invalid one.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use uuid::Uuid;

/// A tenant (cooperative, small business, village enterprise): a positive integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct TenantId(i64);

/// A user (tenant user or agent), the numeric `sub` of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct UserId(i64);

/// Why a raw numeric id was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be a positive integer, without leading zeros")]
pub struct NotPositive;

/// Decimal digits only, and no leading zero: `012` could be read as octal
/// by one client and decimal by another, so it is refused, not guessed.
pub fn is_canonical_number(raw: &str) -> bool {
    !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) && (raw == "0" || !raw.starts_with('0'))
}

fn parse_positive(raw: &str) -> Result<i64, NotPositive> {
    // Not trimmed: ` 5` is no more a canonical number than `05` (the OpenAPI
    // document's pattern says the same).
    if !is_canonical_number(raw) {
        return Err(NotPositive);
    }
    match raw.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(NotPositive),
    }
}

macro_rules! positive_id {
    ($t:ident) => {
        impl $t {
            /// Parses a decimal string of a positive integer.
            pub fn parse(raw: &str) -> Result<Self, NotPositive> {
                parse_positive(raw).map(Self)
            }

            /// Accepts a positive integer.
            pub fn new(n: i64) -> Result<Self, NotPositive> {
                if n > 0 { Ok(Self(n)) } else { Err(NotPositive) }
            }

            /// The integer value.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl TryFrom<i64> for $t {
            type Error = NotPositive;
            fn try_from(n: i64) -> Result<Self, NotPositive> {
                Self::new(n)
            }
        }

        impl From<$t> for i64 {
            fn from(id: $t) -> i64 {
                id.0
            }
        }
    };
}

positive_id!(TenantId);
positive_id!(UserId);

/// Why a raw UUID was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be a UUID")]
pub struct NotAUuid;

macro_rules! uuid_id {
    ($t:ident) => {
        impl $t {
            /// A new time-ordered (v7) id.
            pub fn generate() -> Self {
                Self(Uuid::now_v7())
            }

            /// Parses the hyphenated (or any standard) UUID form.
            pub fn parse(raw: &str) -> Result<Self, NotAUuid> {
                Uuid::parse_str(raw.trim()).map(Self).map_err(|_| NotAUuid)
            }

            /// Wraps a stored UUID.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub const fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A chat session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(Uuid);

/// A chat message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(Uuid);

uuid_id!(SessionId);
uuid_id!(MessageId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_ids_reject_zero_signs_and_garbage() {
        assert_eq!(TenantId::parse("12").unwrap().get(), 12);
        for bad in ["0", "-1", "+3", "1.5", "", "abc", "99999999999999999999", "012", "04242", "00"] {
            assert_eq!(TenantId::parse(bad), Err(NotPositive), "{bad}");
        }
    }

    #[test]
    fn generated_session_ids_are_version_7() {
        assert_eq!(SessionId::generate().uuid().get_version_num(), 7);
    }
}
