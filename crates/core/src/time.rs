//! Time as this receiver writes and reads it, in one place: RFC 3339 in UTC with milliseconds
//! (`receivedAt`, `since`, `until`: `2024-05-01T12:00:00.123Z`, fixed width, so string order is
//! time order) and the RFC 1123 date Cosmos DB signs (`x-ms-date`). Proleptic Gregorian
//! calendar arithmetic on days since 1970 (H. Hinnant's algorithms); no clock: times are
//! passed in.

use std::time::{SystemTime, UNIX_EPOCH};

/// Why a time is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    /// Not `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
    #[error("expected YYYY-MM-DDTHH:MM:SS[.fraction] followed by Z or an offset such as +02:00")]
    Format,
    /// A field out of its range (month 13, 31 April, hour 24, second 60, offset hour 24, ...).
    #[error("the {0} is out of range")]
    OutOfRange(&'static str),
    /// The instant, once in UTC, falls outside years 0000 to 9999.
    #[error("the time in UTC falls outside the years 0000 to 9999")]
    OutOfYears,
}

/// Milliseconds in a day.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Parses an RFC 3339 time and writes the same instant the way `receivedAt` is written: UTC,
/// exactly three fraction digits (further digits are dropped), `Z`.
pub fn normalise_time(text: &str) -> Result<String, TimeError> {
    parse_millis(text).map(|millis| format_millis(millis).expect("parse_millis checks the years"))
}

/// Parses an RFC 3339 time (`2024-05-01T12:00:00Z`, `2024-05-01t14:00:00.5+02:00`, any
/// number of fraction digits) into milliseconds since 1970 in UTC (further fraction digits
/// are dropped). The instant must fall in the years 0000 to 9999 once in UTC.
pub fn parse_millis(text: &str) -> Result<i64, TimeError> {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = b.get(range).ok_or(TimeError::Format)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return Err(TimeError::Format);
        }
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize, allowed: &[u8]| -> Result<(), TimeError> {
        match b.get(i) {
            Some(c) if allowed.contains(c) => Ok(()),
            _ => Err(TimeError::Format),
        }
    };
    let year = digits(0..4)?;
    at(4, b"-")?;
    let month = digits(5..7)?;
    at(7, b"-")?;
    let day = digits(8..10)?;
    at(10, b"Tt")?;
    let hour = digits(11..13)?;
    at(13, b":")?;
    let minute = digits(14..16)?;
    at(16, b":")?;
    let second = digits(17..19)?;
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
        if end == start {
            return Err(TimeError::Format);
        }
        // The first three digits, right-padded: ".5" is 500 ms, ".0707808" is 70 ms.
        for k in 0..3 {
            millis = millis * 10
                + b.get(start + k)
                    .filter(|_| start + k < end)
                    .map_or(0, |d| i64::from(d - b'0'));
        }
        i = end;
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 => {
            let oh = digits(i + 1..i + 3)?;
            at(i + 3, b":")?;
            let om = digits(i + 4..i + 6)?;
            if oh > 23 {
                return Err(TimeError::OutOfRange("offset hour"));
            }
            if om > 59 {
                return Err(TimeError::OutOfRange("offset minute"));
            }
            let minutes = oh * 60 + om;
            if *sign == b'+' {
                minutes
            } else {
                -minutes
            }
        }
        _ => return Err(TimeError::Format),
    };
    if !(1..=12).contains(&month) {
        return Err(TimeError::OutOfRange("month"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(TimeError::OutOfRange("day"));
    }
    if hour > 23 {
        return Err(TimeError::OutOfRange("hour"));
    }
    if minute > 59 {
        return Err(TimeError::OutOfRange("minute"));
    }
    if second > 59 {
        // RFC 3339 allows a leap second (60); receivedAt never has one.
        return Err(TimeError::OutOfRange("second"));
    }
    let total = days_from_civil(year, month, day) * MS_PER_DAY
        + ((hour * 60 + minute - offset_minutes) * 60 + second) * 1000
        + millis;
    if !(0..=9999).contains(&civil_from_days(total.div_euclid(MS_PER_DAY)).0) {
        return Err(TimeError::OutOfYears);
    }
    Ok(total)
}

/// `millis` since 1970 written the way `receivedAt` is (`2024-05-01T12:00:00.123Z`); `None`
/// outside the years 0000 to 9999.
pub fn format_millis(millis: i64) -> Option<String> {
    let (y, mo, d) = civil_from_days(millis.div_euclid(MS_PER_DAY));
    let ms = millis.rem_euclid(MS_PER_DAY);
    (0..=9999).contains(&y).then(|| {
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    })
}

/// Milliseconds since 1970 of `time` (negative before 1970), saturating.
pub fn millis_since_epoch(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
    }
}

/// The last millisecond of the year 9999, the latest time [`format_millis`] writes.
const LAST_WRITABLE_MILLIS: i64 = 253_402_300_799_999;

/// `time` written the way `receivedAt` is. A clock outside the years 1970 to 9999 is held
/// to that range (a host clock that far off is broken; the document still gets a time).
pub fn received_at(time: SystemTime) -> String {
    let millis = millis_since_epoch(time).clamp(0, LAST_WRITABLE_MILLIS);
    format_millis(millis).expect("clamped into the writable years")
}

/// `time` as an RFC 1123 date in GMT (`Thu, 27 Apr 2017 00:51:12 GMT`), the form of
/// `x-ms-date`; held to the years 1970 to 9999 like [`received_at`].
pub fn http_date(time: SystemTime) -> String {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let millis = millis_since_epoch(time).clamp(0, LAST_WRITABLE_MILLIS);
    let days = millis.div_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let seconds = millis.rem_euclid(MS_PER_DAY) / 1000;
    format!(
        "{}, {d:02} {} {y:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        MONTHS[(mo - 1) as usize],
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_normalise_to_received_at_form() {
        for (input, want) in [
            ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z"),
            ("2024-05-01t12:00:00z", "2024-05-01T12:00:00.000Z"),
            ("2023-11-17T16:52:01.343145347Z", "2023-11-17T16:52:01.343Z"),
            ("2017-03-01T23:14:37.0707808Z", "2017-03-01T23:14:37.070Z"),
            ("2026-06-01T12:22:07.5Z", "2026-06-01T12:22:07.500Z"),
            ("2024-01-01T00:30:00+01:00", "2023-12-31T23:30:00.000Z"),
            ("2023-12-31T23:30:00-01:30", "2024-01-01T01:00:00.000Z"),
            ("2024-02-29T00:00:00Z", "2024-02-29T00:00:00.000Z"),
            ("2000-02-29T00:00:00Z", "2000-02-29T00:00:00.000Z"),
            ("1970-01-01T00:30:00+01:00", "1969-12-31T23:30:00.000Z"),
            ("0000-01-01T00:00:00Z", "0000-01-01T00:00:00.000Z"),
            ("9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
        ] {
            assert_eq!(normalise_time(input).as_deref(), Ok(want), "{input}");
        }
        for (input, err) in [
            ("2024-05-01", TimeError::Format),
            ("2024-05-01T12:00Z", TimeError::Format),
            ("2024-05-01T12:00:00", TimeError::Format),
            ("2024-05-01 12:00:00Z", TimeError::Format),
            ("2024-05-01T12:00:00.Z", TimeError::Format),
            ("2024-05-01T12:00:00Zjunk", TimeError::Format),
            ("2024-05-01T12:00:00+0200", TimeError::Format),
            ("+2024-05-01T12:00:00Z", TimeError::Format),
            ("２０２４-05-01T12:00:00Z", TimeError::Format),
            ("2024-13-01T12:00:00Z", TimeError::OutOfRange("month")),
            ("2024-04-31T12:00:00Z", TimeError::OutOfRange("day")),
            ("2023-02-29T12:00:00Z", TimeError::OutOfRange("day")),
            ("1900-02-29T12:00:00Z", TimeError::OutOfRange("day")),
            ("2024-05-00T12:00:00Z", TimeError::OutOfRange("day")),
            ("2024-05-01T24:00:00Z", TimeError::OutOfRange("hour")),
            ("2024-05-01T12:60:00Z", TimeError::OutOfRange("minute")),
            ("2016-12-31T23:59:60Z", TimeError::OutOfRange("second")),
            (
                "2024-05-01T12:00:00+24:00",
                TimeError::OutOfRange("offset hour"),
            ),
            (
                "2024-05-01T12:00:00+01:60",
                TimeError::OutOfRange("offset minute"),
            ),
            ("0000-01-01T00:00:00+00:01", TimeError::OutOfYears),
            ("9999-12-31T23:59:59-00:01", TimeError::OutOfYears),
        ] {
            assert_eq!(normalise_time(input), Err(err), "{input}");
        }
        assert_eq!(normalise_time(""), Err(TimeError::Format));
    }

    #[test]
    fn written_times_agree_with_humantime_and_httpdate() {
        // Every 7919th hour over ~140 years, plus odd milliseconds.
        let mut ms: u64 = 0;
        while ms < 4_400_000_000_000 {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            let written = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(received_at(t), written);
            assert_eq!(parse_millis(&written), Ok(ms as i64), "{written}");
            assert_eq!(normalise_time(&written).as_deref(), Ok(written.as_str()));
            assert_eq!(http_date(t), httpdate::fmt_http_date(t));
            ms += 7919 * 3_600_000 + 123;
        }
        assert_eq!(
            format_millis(-1).as_deref(),
            Some("1969-12-31T23:59:59.999Z")
        );
        assert_eq!(format_millis(LAST_WRITABLE_MILLIS + 1), None);
        let t = UNIX_EPOCH + Duration::from_secs(1_493_254_272);
        assert_eq!(http_date(t), "Thu, 27 Apr 2017 00:51:12 GMT");
    }

    #[test]
    fn clocks_outside_the_writable_years_are_held_to_them() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(received_at(before), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis_since_epoch(before), -10_000);
        assert_eq!(http_date(before), "Thu, 01 Jan 1970 00:00:00 GMT");
        let after = UNIX_EPOCH + Duration::from_secs(300_000_000_000);
        assert_eq!(received_at(after), "9999-12-31T23:59:59.999Z");
        assert_eq!(http_date(after), "Fri, 31 Dec 9999 23:59:59 GMT");
    }
}
