//! When backups run, and which are kept: the `frequency` of `[backup]` (a name, a duration,
//! or a cron expression), and a retention policy in restic's terms (the newest backup of
//! each of the last N hours, days, weeks, months).

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// How often an instance is backed up.
#[derive(Debug, Clone)]
pub enum Frequency {
    /// A fixed interval, in seconds (`hourly`, `daily`, `weekly`, `24h`, `30m`, `90s`).
    Every(u64),
    /// A cron expression, in UTC (`0 3 * * *`).
    Cron(Box<croner::Cron>),
}

impl PartialEq for Frequency {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Frequency::Every(a), Frequency::Every(b)) => a == b,
            (Frequency::Cron(a), Frequency::Cron(b)) => {
                a.pattern.to_string() == b.pattern.to_string()
            }
            _ => false,
        }
    }
}

impl Frequency {
    /// Read a frequency as the nua-configs write it.
    pub fn parse(text: &str) -> Result<Frequency, String> {
        let text = text.trim();
        let named = match text.trim_start_matches('@') {
            "hourly" => Some(3_600),
            "daily" => Some(86_400),
            "weekly" => Some(7 * 86_400),
            _ => None,
        };
        if let Some(seconds) = named {
            return Ok(Frequency::Every(seconds));
        }
        if let Some(seconds) = duration(text) {
            if seconds == 0 {
                return Err(format!("`{text}` is no time at all"));
            }
            return Ok(Frequency::Every(seconds));
        }
        use std::str::FromStr as _;
        croner::Cron::from_str(text)
            .map(|cron| Frequency::Cron(Box::new(cron)))
            .map_err(|e| {
                format!(
                    "`{text}` is not a frequency: give `hourly`, `daily`, `weekly`, a duration \
                     (`24h`, `30m`) or a cron expression (`0 3 * * *`) ({e})"
                )
            })
    }

    /// The first time it is due strictly after `after` (seconds since the epoch).
    pub fn next_after(&self, after: i64) -> i64 {
        match self {
            Frequency::Every(seconds) => after.saturating_add(*seconds as i64),
            Frequency::Cron(cron) => {
                let at = DateTime::<Utc>::from_timestamp(after, 0).unwrap_or_default();
                cron.find_next_occurrence(&at, false)
                    .map_or(i64::MAX, |next| next.timestamp())
            }
        }
    }
}

/// `24h`, `30m`, `90s`, `7d`, `2w` (several may follow each other: `1h30m`), in seconds.
fn duration(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut number = String::new();
    let mut any = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: u64 = number.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        number.clear();
        any = true;
    }
    (any && number.is_empty()).then_some(total)
}

/// Whether a backup is due at `now`: the earliest of `frequencies` after the last one
/// started (`None`: never, so at once). A run missed while the server was down is due as
/// soon as it runs again.
pub fn due(frequencies: &[Frequency], last: Option<i64>, now: i64) -> bool {
    let Some(last) = last else {
        return !frequencies.is_empty();
    };
    frequencies.iter().any(|f| f.next_after(last) <= now)
}

/// The period a time falls in (an hour, a day, an ISO week, a month), as a comparable key.
type Period = fn(&DateTime<Utc>) -> (i32, u32, u32);

/// Which backups a policy keeps, in restic's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keep {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Keep {
    /// 7 daily, 4 weekly, 6 monthly.
    fn default() -> Self {
        Keep {
            last: 0,
            hourly: 0,
            daily: 7,
            weekly: 4,
            monthly: 6,
        }
    }
}

impl Keep {
    /// `daily=7,weekly=4,monthly=6` (also `last`, `hourly`); what is not named keeps none.
    pub fn parse(text: &str) -> Result<Keep, String> {
        let mut keep = Keep {
            last: 0,
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
        };
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (name, count) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}` is not NAME=COUNT"))?;
            let count: u32 = count
                .trim()
                .parse()
                .map_err(|_| format!("`{item}`: `{count}` is not a count"))?;
            match name.trim() {
                "last" => keep.last = count,
                "hourly" => keep.hourly = count,
                "daily" => keep.daily = count,
                "weekly" => keep.weekly = count,
                "monthly" => keep.monthly = count,
                other => {
                    return Err(format!(
                        "`{other}` is none of last, hourly, daily, weekly, monthly"
                    ))
                }
            }
        }
        if keep
            == (Keep {
                last: 0,
                hourly: 0,
                daily: 0,
                weekly: 0,
                monthly: 0,
            })
        {
            return Err(format!("`{text}` keeps nothing"));
        }
        Ok(keep)
    }

    /// The ids of `backups` (id, start time) that the policy keeps: the newest of each of the
    /// last `n` periods that hold one, per kind of period, and the `last` newest.
    pub fn kept(&self, backups: &[(u64, i64)]) -> BTreeSet<u64> {
        let mut newest_first = backups.to_vec();
        newest_first.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
        let mut kept = BTreeSet::new();
        kept.extend(newest_first.iter().take(self.last as usize).map(|b| b.0));
        let periods: [(u32, Period); 4] = [
            (self.hourly, |t| (t.year(), t.ordinal(), t.hour())),
            (self.daily, |t| (t.year(), t.ordinal(), 0)),
            (self.weekly, |t| {
                let week = t.iso_week();
                (week.year(), week.week(), 0)
            }),
            (self.monthly, |t| (t.year(), t.month(), 0)),
        ];
        for (count, period) in periods {
            let mut seen = None;
            let mut left = count;
            for (id, at) in &newest_first {
                if left == 0 {
                    break;
                }
                let at = DateTime::<Utc>::from_timestamp(*at, 0).unwrap_or_default();
                let bucket = period(&at);
                if seen != Some(bucket) {
                    seen = Some(bucket);
                    kept.insert(*id);
                    left -= 1;
                }
            }
        }
        kept
    }
}
