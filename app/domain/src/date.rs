//! [`Date`]: a day of the proleptic Gregorian calendar in UTC, years
//! 0000–9999, written `YYYY-MM-DD` (so dates sort as their text does).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use metachat_core::event::Timestamp;

/// A UTC calendar day (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Days since 1970-01-01.
    days: i64,
}

/// Why a text is not a [`Date`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a date of the form YYYY-MM-DD (years 0000 to 9999)")]
pub struct DateError;

const MIN_DAYS: i64 = -719_528; // 0000-01-01
const MAX_DAYS: i64 = 2_932_896; // 9999-12-31

// Howard Hinnant's `days_from_civil` / `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // `d` is 1..=31 and `m` 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl Date {
    /// The date `year-month-day`; `None` if there is no such day in 0000–9999.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        let y = i64::from(year);
        if !(0..=9999).contains(&y) || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(y, month) {
            return None;
        }
        Some(Date {
            days: days_from_civil(y, month, day),
        })
    }

    /// `(year, month, day)`.
    pub fn ymd(self) -> (i32, u32, u32) {
        let (y, m, d) = civil_from_days(self.days);
        (i32::try_from(y).unwrap_or(9999), m, d)
    }

    /// The UTC day of `t` (clamped to 9999-12-31).
    pub fn of_timestamp(t: Timestamp) -> Date {
        let days = i64::try_from(t.as_secs() / 86_400).unwrap_or(MAX_DAYS);
        Date {
            days: days.min(MAX_DAYS),
        }
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        self.days
    }

    /// The day before (itself at 0000-01-01).
    pub fn pred(self) -> Date {
        Date {
            days: (self.days - 1).max(MIN_DAYS),
        }
    }

    /// The day after (itself at 9999-12-31).
    pub fn succ(self) -> Date {
        Date {
            days: (self.days + 1).min(MAX_DAYS),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Date, DateError> {
        let b = s.as_bytes();
        let digits =
            |r: std::ops::Range<usize>| b[r.clone()].iter().all(u8::is_ascii_digit).then(|| &s[r]);
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(DateError);
        }
        let (Some(y), Some(m), Some(d)) = (digits(0..4), digits(5..7), digits(8..10)) else {
            return Err(DateError);
        };
        let (Ok(y), Ok(m), Ok(d)) = (y.parse(), m.parse(), d.parse()) else {
            return Err(DateError);
        };
        Date::from_ymd(y, m, d).ok_or(DateError)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Date, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_days() {
        assert_eq!(Date::of_timestamp(Timestamp(0)).to_string(), "1970-01-01");
        // 2024-02-29T23:59:59Z and the second after.
        let leap = Timestamp(1_709_251_199 * 1_000_000);
        assert_eq!(Date::of_timestamp(leap).to_string(), "2024-02-29");
        let next = Timestamp(1_709_251_200 * 1_000_000);
        assert_eq!(Date::of_timestamp(next).to_string(), "2024-03-01");
        assert_eq!(
            Date::from_ymd(0, 1, 1).unwrap().days_since_epoch(),
            MIN_DAYS
        );
        assert_eq!(
            Date::from_ymd(9999, 12, 31).unwrap().days_since_epoch(),
            MAX_DAYS
        );
        assert!(Date::from_ymd(2023, 2, 29).is_none());
        assert!(Date::from_ymd(1900, 2, 29).is_none());
        assert!(Date::from_ymd(2000, 2, 29).is_some());
        for bad in [
            "2024-2-01",
            "2024-13-01",
            "2024-00-10",
            "20240101",
            "2024-01-32",
            "+024-01-01",
            "",
        ] {
            assert_eq!(bad.parse::<Date>(), Err(DateError), "{bad}");
        }
        assert_eq!(
            serde_json::to_string(&Date::from_ymd(2026, 11, 24).unwrap()).unwrap(),
            "\"2026-11-24\""
        );
    }

    proptest! {
        #[test]
        fn text_and_days_round_trip(days in MIN_DAYS..=MAX_DAYS) {
            let date = Date { days };
            let text = date.to_string();
            prop_assert_eq!(text.parse::<Date>(), Ok(date));
            let (y, m, d) = date.ymd();
            prop_assert_eq!(Date::from_ymd(y, m, d), Some(date));
            // Text order is date order.
            let next = date.succ();
            if next != date {
                prop_assert!(next.to_string() > text);
            }
        }
    }
}
