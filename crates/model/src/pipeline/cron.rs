//! Cron schedules (`on: { cron: ["0 2 * * 1-5"] }`): five fields, minute hour
//! day-of-month month day-of-week, each `*`, a number, a range `a-b`, a list `a,b` or a
//! step `*/n` / `a-b/n`; day-of-week 0 or 7 is Sunday. Times are UTC. When both day
//! fields are restricted, either may match (as in Vixie cron).

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    any_day: bool,
    any_weekday: bool,
}

fn field(text: &str, lo: u32, hi: u32, name: &str) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .map_err(|_| format!("invalid step `{s}` in the {name} field"))?,
            ),
            None => (part, 1),
        };
        if step == 0 {
            return Err(format!("step 0 in the {name} field"));
        }
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            let a = a
                .parse::<u32>()
                .map_err(|_| format!("invalid {name} `{a}`"))?;
            let b = b
                .parse::<u32>()
                .map_err(|_| format!("invalid {name} `{b}`"))?;
            (a, b)
        } else {
            let a = range
                .parse::<u32>()
                .map_err(|_| format!("invalid {name} `{range}`"))?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return Err(format!("{name} `{range}` is outside {lo}-{hi}"));
        }
        let mut v = a;
        while v <= b {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

impl Cron {
    /// Parses a five-field schedule.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let f: Vec<&str> = text.split_whitespace().collect();
        let [min, hour, dom, mon, dow] = f.as_slice() else {
            return Err(format!(
                "`{text}` needs five fields (minute hour day month weekday)"
            ));
        };
        let mut weekdays = field(dow, 0, 7, "weekday")?;
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Cron {
            minutes: field(min, 0, 59, "minute")?,
            hours: field(hour, 0, 23, "hour")?,
            days: field(dom, 1, 31, "day")?,
            months: field(mon, 1, 12, "month")?,
            weekdays,
            any_day: *dom == "*",
            any_weekday: *dow == "*",
        })
    }

    /// Whether the schedule fires in the minute starting at `unix_secs` (UTC).
    pub fn matches(&self, unix_secs: i64) -> bool {
        let minutes = unix_secs.div_euclid(60);
        let (minute, hour) = (
            minutes.rem_euclid(60),
            minutes.div_euclid(60).rem_euclid(24),
        );
        let days = unix_secs.div_euclid(86_400);
        let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
        let (_, month, day) = civil_from_days(days);
        let bit = |set: u64, v: i64| set & (1 << v) != 0;
        let day_ok = match (self.any_day, self.any_weekday) {
            (true, true) => true,
            (false, true) => bit(self.days, day),
            (true, false) => bit(self.weekdays, weekday),
            (false, false) => bit(self.days, day) || bit(self.weekdays, weekday),
        };
        bit(self.minutes, minute) && bit(self.hours, hour) && bit(self.months, month) && day_ok
    }
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_match_the_right_minutes() {
        // 2026-12-01T02:00:00Z was a Tuesday.
        let tue_0200 = 1_796_090_400;
        assert_eq!(civil_from_days(tue_0200 / 86_400), (2026, 12, 1));
        let check = |spec: &str, at: i64| Cron::parse(spec).unwrap().matches(at);
        assert!(check("0 2 * * *", tue_0200));
        assert!(!check("0 2 * * *", tue_0200 + 60));
        assert!(check("*/15 * * * *", tue_0200 + 45 * 60));
        assert!(!check("*/15 * * * *", tue_0200 + 50 * 60));
        assert!(check("0 2 * * 1-5", tue_0200));
        assert!(!check("0 2 * * 0,6", tue_0200));
        assert!(check("0 2 1 12 *", tue_0200));
        assert!(check("0 2 15 * 2", tue_0200), "either day field may match");
        assert!(check("0 2 * * 7", tue_0200 + 5 * 86_400), "7 is Sunday");
        assert!(
            check("30 1-3/2 * * *", tue_0200 - 30 * 60 + 2 * 3600),
            "03:30 matches 1-3/2"
        );
    }

    #[test]
    fn bad_schedules_say_why() {
        for (spec, msg) in [
            (
                "* * * *",
                "`* * * *` needs five fields (minute hour day month weekday)",
            ),
            ("60 * * * *", "minute `60` is outside 0-59"),
            ("*/0 * * * *", "step 0 in the minute field"),
            ("a * * * *", "invalid minute `a`"),
            ("* * 0 * *", "day `0` is outside 1-31"),
        ] {
            assert_eq!(Cron::parse(spec).unwrap_err(), msg, "{spec}");
        }
    }
}
