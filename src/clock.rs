//! Wall-clock time in milliseconds since the Unix epoch, the unit every
//! persisted deadline and timestamp uses.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The last millisecond RFC 3339 can write (9999-12-31T23:59:59.999Z).
const RFC3339_LAST_MS: u64 = 253_402_300_799_999;

/// RFC 3339 rendering of a millisecond timestamp (UTC, millisecond
/// precision); a time past year 9999 is written as the last one there is.
pub fn rfc3339(ms: u64) -> String {
    let ms = ms.min(RFC3339_LAST_MS);
    humantime::format_rfc3339_millis(UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

/// How far past its arrival a platform's timestamp is believed (clocks
/// drift; and a postback without a `mid` is told from its redelivery by
/// its time, so only a time no clock would give is replaced); a later one
/// is the arrival time.
const FUTURE_SLACK_MS: u64 = 86_400_000;

/// The time of an event as its platform gave it, but never later than
/// [`FUTURE_SLACK_MS`] past `received_ms`: a far-future time (a sender's
/// bug, a hostile body) would otherwise hold the messaging window open and
/// order the conversation wrongly.
pub fn event_time(claimed_ms: u64, received_ms: u64) -> u64 {
    if claimed_ms > received_ms.saturating_add(FUTURE_SLACK_MS) {
        received_ms
    } else {
        claimed_ms
    }
}

/// A platform time that may be in seconds or in milliseconds (Meta's
/// `entry.time` is milliseconds for messaging and seconds for some
/// `changes`), in milliseconds: below 10^11 it is seconds (as
/// milliseconds that would be 1973; as seconds, year 5138).
pub fn seconds_or_ms(value: u64) -> u64 {
    if value < 100_000_000_000 {
        value.saturating_mul(1000)
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_past_year_9999_are_written_without_a_panic() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(253_402_300_800_000), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(u64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn a_future_event_time_is_its_arrival_and_seconds_become_milliseconds() {
        let now = 1_765_000_000_000;
        assert_eq!(event_time(now - 1_000, now), now - 1_000);
        assert_eq!(event_time(now + 600_000, now), now + 600_000, "clock drift");
        assert_eq!(event_time(253_402_300_800_000, now), now);
        assert_eq!(seconds_or_ms(1_755_779_280), 1_755_779_280_000);
        assert_eq!(seconds_or_ms(1_755_779_280_123), 1_755_779_280_123);
    }
}
