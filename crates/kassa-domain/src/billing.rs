//! Billing periods of recurring prices.

use chrono::{DateTime, Days, Months};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Interval {
    Day,
    Week,
    Month,
    Year,
}

impl Interval {
    pub fn as_str(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Week => "week",
            Interval::Month => "month",
            Interval::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<Interval> {
        Some(match s {
            "day" => Interval::Day,
            "week" => Interval::Week,
            "month" => Interval::Month,
            "year" => Interval::Year,
            _ => return None,
        })
    }
}

/// The end of a period that starts at `start` (Unix seconds) and lasts `count` intervals.
/// Months are calendar months: Jan 31 + 1 month is Feb 28 (or 29), as Stripe bills.
pub fn period_end(start: i64, interval: Interval, count: u32) -> Option<i64> {
    let t = DateTime::from_timestamp(start, 0)?;
    let end = match interval {
        Interval::Day => t.checked_add_days(Days::new(count as u64))?,
        Interval::Week => t.checked_add_days(Days::new(7 * count as u64))?,
        Interval::Month => t.checked_add_months(Months::new(count))?,
        Interval::Year => t.checked_add_months(Months::new(12 * count))?,
    };
    Some(end.timestamp())
}

/// The `n`-th boundary of a billing cycle anchored at `anchor` (Unix seconds): `anchor` plus
/// `n × count` intervals, always counted from the anchor itself. Counting from the anchor is what
/// keeps month-end subscriptions on the month end, as Stripe bills: a subscription anchored on
/// Jan 31 renews Feb 28 (29 in a leap year), Mar 31, Apr 30, … — never drifting to the 28th,
/// which chaining [`period_end`] from each previous end would do.
pub fn cycle_boundary(anchor: i64, interval: Interval, count: u32, n: u32) -> Option<i64> {
    let steps = count.checked_mul(n)?;
    period_end(anchor, interval, steps)
}

/// The first cycle boundary strictly after `t` (the end of the period that contains `t`), and
/// its index `n`. `None` when `count` is 0 or the date is out of range.
pub fn boundary_after(anchor: i64, interval: Interval, count: u32, t: i64) -> Option<(u32, i64)> {
    if count == 0 {
        return None;
    }
    if t < anchor {
        return Some((0, anchor));
    }
    // Start from below (no interval is longer than its longest length), then step.
    let longest = match interval {
        Interval::Day => 86_400,
        Interval::Week => 7 * 86_400,
        Interval::Month => 31 * 86_400,
        Interval::Year => 366 * 86_400,
    } * i64::from(count);
    let mut n = u32::try_from(((t - anchor) / longest).max(0)).ok()?;
    loop {
        let b = cycle_boundary(anchor, interval, count, n)?;
        if b > t {
            return Some((n, b));
        }
        n = n.checked_add(1)?;
    }
}

/// Proration of `amount` (minor units) for `remaining` of `period` seconds: the share of a
/// period's price that the time left is worth, to the second. Exact integer arithmetic in
/// `i128`, rounded half away from zero:
///
/// ```text
/// prorate(amount, remaining, period) = round(amount × remaining / period)
/// ```
///
/// A change of price mid-period is billed as Stripe's `create_prorations` does: a credit for the
/// unused time of the old price and a charge for the remaining time of the new one,
/// `prorate(new, r, p) − prorate(old, r, p)`, which [`proration`] returns as its two lines.
pub fn prorate(amount: i64, remaining: i64, period: i64) -> i64 {
    if period <= 0 || remaining <= 0 {
        return 0;
    }
    let remaining = remaining.min(period);
    let num = i128::from(amount) * i128::from(remaining);
    let den = i128::from(period);
    let q = (2 * num.abs() + den) / (2 * den);
    let q = if num < 0 { -q } else { q };
    i64::try_from(q).unwrap_or(if q < 0 { i64::MIN } else { i64::MAX })
}

/// The two lines of a mid-period price change at `at` in the period `[start, end)`: the credit
/// for the unused time of `old_total` (negative) and the charge for the remaining time of
/// `new_total`. Their sum is what the proration invoice asks for (negative: the customer is
/// owed; Kassa then bills nothing at once and the change waits for the period end).
pub fn proration(old_total: i64, new_total: i64, start: i64, end: i64, at: i64) -> (i64, i64) {
    let (period, remaining) = (end - start, end - at.clamp(start, end));
    (-prorate(old_total, remaining, period), prorate(new_total, remaining, period))
}

/// When a failed invoice payment is tried again: the days after the previous attempt (Stripe's
/// custom retry schedule; Kassa's default is 1, 3, 5), after the last of which the dunning ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    pub days_after_previous: Vec<u32>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule { days_after_previous: vec![1, 3, 5] }
    }
}

impl RetrySchedule {
    /// After `failed_attempts` failed attempts (the last one at `failed_at`), when to try next;
    /// `None` when the schedule is used up.
    pub fn next_attempt(&self, failed_attempts: u32, failed_at: i64) -> Option<i64> {
        let index = usize::try_from(failed_attempts.checked_sub(1)?).ok()?;
        let days = *self.days_after_previous.get(index)?;
        failed_at.checked_add(i64::from(days) * 86_400)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ymd(t: i64) -> (i32, u32, u32) {
        use chrono::Datelike;
        let d = DateTime::from_timestamp(t, 0).unwrap();
        (d.year(), d.month(), d.day())
    }

    fn ts(y: i32, m: u32, d: u32) -> i64 {
        chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp()
    }

    #[test]
    fn month_end_anchors_stay_on_the_month_end() {
        let jan31 = ts(2027, 1, 31);
        let ends: Vec<_> = (1..=4).map(|n| ymd(cycle_boundary(jan31, Interval::Month, 1, n).unwrap())).collect();
        assert_eq!(ends, vec![(2027, 2, 28), (2027, 3, 31), (2027, 4, 30), (2027, 5, 31)]);
        assert_eq!(ymd(cycle_boundary(ts(2028, 1, 31), Interval::Month, 1, 1).unwrap()), (2028, 2, 29));
        assert_eq!(ymd(cycle_boundary(ts(2028, 2, 29), Interval::Year, 1, 1).unwrap()), (2029, 2, 28));
        assert_eq!(ymd(cycle_boundary(ts(2028, 2, 29), Interval::Year, 1, 4).unwrap()), (2032, 2, 29));
        assert_eq!(boundary_after(jan31, Interval::Month, 1, ts(2027, 2, 28)), Some((2, ts(2027, 3, 31))));
    }

    #[test]
    fn proration_by_hand() {
        // A 30-day period, changed after 10 days from 1000 to 2500: 20/30 of each.
        let (start, day) = (ts(2027, 4, 1), 86_400);
        let (credit, charge) = proration(1000, 2500, start, start + 30 * day, start + 10 * day);
        assert_eq!((credit, charge), (-667, 1667));
        assert_eq!(prorate(1, 1, 2), 1, "half rounds away from zero");
        assert_eq!(prorate(-1, 1, 2), -1);
        assert_eq!(prorate(i64::MAX, 1, 1), i64::MAX);
    }

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let s = RetrySchedule::default();
        assert_eq!(s.next_attempt(1, 0), Some(86_400));
        assert_eq!(s.next_attempt(2, 100), Some(100 + 3 * 86_400));
        assert_eq!(s.next_attempt(3, 0), Some(5 * 86_400));
        assert_eq!(s.next_attempt(4, 0), None);
        assert_eq!(s.next_attempt(0, 0), None);
    }

    fn arb_interval() -> impl Strategy<Value = Interval> {
        proptest::sample::select(vec![Interval::Day, Interval::Week, Interval::Month, Interval::Year])
    }

    proptest! {
        #[test]
        fn boundaries_grow_and_keep_the_anchor_day(
            anchor in 0i64..4_000_000_000, interval in arb_interval(), count in 1u32..=12, n in 0u32..200
        ) {
            let b0 = cycle_boundary(anchor, interval, count, n).unwrap();
            let b1 = cycle_boundary(anchor, interval, count, n + 1).unwrap();
            prop_assert!(b1 > b0);
            // The time of day never moves.
            prop_assert_eq!(b1.rem_euclid(86_400), anchor.rem_euclid(86_400));
            match interval {
                Interval::Day => prop_assert_eq!(b1 - b0, i64::from(count) * 86_400),
                Interval::Week => prop_assert_eq!(b1 - b0, i64::from(count) * 7 * 86_400),
                Interval::Month | Interval::Year => {
                    // The day of month is the anchor's, or the month's last day when shorter.
                    let (_, _, ad) = ymd(anchor);
                    let (y, m, d) = ymd(b1);
                    let last = chrono::NaiveDate::from_ymd_opt(y, m, 1).unwrap()
                        .checked_add_months(Months::new(1)).unwrap().pred_opt().unwrap();
                    use chrono::Datelike;
                    prop_assert_eq!(d, ad.min(last.day()));
                }
            }
        }

        #[test]
        fn boundary_after_is_the_first_one_past(
            anchor in 0i64..4_000_000_000, interval in arb_interval(), count in 1u32..=6, later in 0i64..400_000_000
        ) {
            let t = anchor + later;
            let (n, b) = boundary_after(anchor, interval, count, t).unwrap();
            prop_assert!(b > t);
            prop_assert_eq!(b, cycle_boundary(anchor, interval, count, n).unwrap());
            if n > 0 {
                prop_assert!(cycle_boundary(anchor, interval, count, n - 1).unwrap() <= t);
            }
        }

        #[test]
        fn prorations_never_exceed_the_price(amount in 0i64..=i64::MAX / 2, period in 1i64..=400 * 86_400, r in 0i64..=400 * 86_400) {
            let p = prorate(amount, r, period);
            prop_assert!(p >= 0 && p <= amount);
            prop_assert_eq!(prorate(amount, period, period), amount);
        }
    }

    #[test]
    fn calendar_months() {
        // 2027-01-31T00:00:00Z + 1 month = 2027-02-28T00:00:00Z
        assert_eq!(period_end(1_801_353_600, Interval::Month, 1), Some(1_803_772_800));
        assert_eq!(period_end(0, Interval::Week, 2), Some(14 * 86_400));
        assert_eq!(period_end(0, Interval::Year, 1), Some(365 * 86_400));
    }
}
