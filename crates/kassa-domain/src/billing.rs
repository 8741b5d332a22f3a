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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_months() {
        // 2027-01-31T00:00:00Z + 1 month = 2027-02-28T00:00:00Z
        assert_eq!(period_end(1_801_353_600, Interval::Month, 1), Some(1_803_772_800));
        assert_eq!(period_end(0, Interval::Week, 2), Some(14 * 86_400));
        assert_eq!(period_end(0, Interval::Year, 1), Some(365 * 86_400));
    }
}
