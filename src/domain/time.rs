//! Timestamps: microsecond precision, UTC, RFC 3339 with a `Z` suffix.
//!
//! Stored as microseconds since the Unix epoch in a 64-bit integer on every
//! backend, so comparisons are integer comparisons and a value written by one
//! backend reads back identically from the other.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use time::{OffsetDateTime, UtcOffset, format_description::well_known::Rfc3339};

/// A point in time with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Why a client-supplied timestamp was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("must be an RFC 3339 date-time, for example 2026-11-26T08:00:00.123456Z")]
pub struct BadTimestamp;

impl Timestamp {
    /// The current wall-clock time, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime_floor(OffsetDateTime::now_utc())
    }

    /// Wraps a stored microsecond count.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// This instant plus `d`, saturating.
    pub fn plus(self, d: std::time::Duration) -> Self {
        Self(self.0.saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)))
    }

    /// Whole Unix seconds (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1_000_000)
    }

    /// The smallest timestamp strictly after `previous` that is not before `now`.
    ///
    /// Messages of a session must have strictly increasing `created_at` in
    /// commit order even when the clock steps backwards or two commits land in
    /// the same microsecond, so the next value is never allowed to repeat.
    pub fn next_after(previous: Option<Self>, now: Self) -> Self {
        match previous {
            Some(prev) if prev.0 >= now.0 => Self(prev.0.saturating_add(1)),
            _ => now,
        }
    }

    /// Parses an inclusive lower bound: sub-microsecond digits round up, so
    /// nothing earlier than the given instant matches.
    pub fn parse_lower_bound(raw: &str) -> Result<Self, BadTimestamp> {
        let dt = parse(raw)?;
        let floor = Self::from_datetime_floor(dt);
        if nanos_below_micro(dt) > 0 { Ok(Self(floor.0.saturating_add(1))) } else { Ok(floor) }
    }

    /// Parses an inclusive upper bound: sub-microsecond digits round down, so
    /// nothing later than the given instant matches.
    pub fn parse_upper_bound(raw: &str) -> Result<Self, BadTimestamp> {
        parse(raw).map(Self::from_datetime_floor)
    }

    fn from_datetime_floor(dt: OffsetDateTime) -> Self {
        let nanos = dt.unix_timestamp_nanos();
        let micros = nanos.div_euclid(1_000);
        Self(i64::try_from(micros).unwrap_or(if micros < 0 { i64::MIN } else { i64::MAX }))
    }

    /// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub fn to_rfc3339(self) -> String {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        match OffsetDateTime::from_unix_timestamp(secs) {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
                dt.year(),
                u8::from(dt.month()),
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                micros
            ),
            // Out of the representable calendar range; never produced by the server.
            Err(_) => format!("{}us", self.0),
        }
    }
}

fn parse(raw: &str) -> Result<OffsetDateTime, BadTimestamp> {
    // RFC 3339's grammar separates date and time with `T` (any case); `time`
    // takes any character there, so `2026-11-26 08:00:00Z` would pass for one.
    if !matches!(raw.as_bytes().get(10), Some(b'T' | b't')) {
        return Err(BadTimestamp);
    }
    let dt = OffsetDateTime::parse(raw, &Rfc3339).map_err(|_| BadTimestamp)?;
    // `to_offset` panics when the instant in UTC falls outside the calendar
    // `time` can represent (`9999-12-31T23:59:59-01:00` is year 10000).
    dt.checked_to_offset(UtcOffset::UTC).ok_or(BadTimestamp)
}

fn nanos_below_micro(dt: OffsetDateTime) -> u32 {
    dt.nanosecond() % 1_000
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse_lower_bound(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_fraction_digits_and_z() {
        let ts = Timestamp::parse_lower_bound("2026-11-26T08:00:00.123456Z").unwrap();
        assert_eq!(ts.to_rfc3339(), "2026-11-26T08:00:00.123456Z");
        let whole = Timestamp::parse_lower_bound("2026-11-26T08:00:00Z").unwrap();
        assert_eq!(whole.to_rfc3339(), "2026-11-26T08:00:00.000000Z");
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        let ts = Timestamp::parse_lower_bound("2026-11-26T15:00:00.5+07:00").unwrap();
        assert_eq!(ts.to_rfc3339(), "2026-11-26T08:00:00.500000Z");
    }

    #[test]
    fn bounds_round_sub_microsecond_digits_inwards() {
        let lo = Timestamp::parse_lower_bound("2026-11-26T08:00:00.000001500Z").unwrap();
        let hi = Timestamp::parse_upper_bound("2026-11-26T08:00:00.000001500Z").unwrap();
        assert_eq!(lo.micros() - hi.micros(), 1);
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert_eq!(Timestamp::parse_lower_bound("2026-11-26"), Err(BadTimestamp));
        assert_eq!(Timestamp::parse_upper_bound("yesterday"), Err(BadTimestamp));
    }

    #[test]
    fn next_after_is_strictly_increasing_even_when_the_clock_steps_back() {
        let prev = Timestamp::from_micros(1_000);
        assert_eq!(Timestamp::next_after(Some(prev), Timestamp::from_micros(900)).micros(), 1_001);
        assert_eq!(Timestamp::next_after(Some(prev), Timestamp::from_micros(1_000)).micros(), 1_001);
        assert_eq!(Timestamp::next_after(Some(prev), Timestamp::from_micros(5_000)).micros(), 5_000);
        assert_eq!(Timestamp::next_after(None, Timestamp::from_micros(7)).micros(), 7);
    }
}
