//! Campaigns for tests: a week in December 2026 in Seoul, opening at 10:00, with the rules a
//! test picks.

use campaign::{Campaign, CampaignSpec, CouponTemplate, Eligibility, MissionRequirement, Quota, Schedule};
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use uuid::Uuid;

pub struct Rules {
    pub daily: u32,
    pub per_user: u32,
    pub total: Option<u64>,
    pub closes: Option<&'static str>,
    pub mission: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self { daily: 10, per_user: 1, total: None, closes: Some("12:00"), mission: true }
    }
}

pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

/// A KST wall-clock instant on 2026-12-`d`.
pub fn kst(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Seoul.with_ymd_and_hms(2026, 12, d, h, m, 0).single().unwrap().with_timezone(&Utc)
}

pub fn campaign(rules: Rules) -> Campaign {
    let name = format!("t-{}", &Uuid::new_v4().simple().to_string()[..10]);
    let spec = CampaignSpec {
        display_name: "Test campaign".into(),
        coupon: CouponTemplate { title: "Free pass".into(), benefit: "One free pass".into(), validity_days: 7 },
        schedule: Schedule {
            time_zone: "Asia/Seoul".into(),
            start_date: day(7),
            end_date: day(13),
            opens_at: NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            closes_at: rules.closes.map(|c| NaiveTime::parse_from_str(c, "%H:%M").unwrap()),
        },
        quota: Quota { daily_quantity: rules.daily, total_quantity: rules.total, per_user: rules.per_user },
        eligibility: Eligibility {
            mission: if rules.mission { MissionRequirement::VerifiedSameDay } else { MissionRequirement::None },
        },
        workload: Default::default(),
        suspend: false,
    };
    Campaign::new(&name, spec).unwrap()
}
