//! The rules of a first-come coupon campaign, shared by the services that hand out coupons and the
//! operator that runs campaigns: the `CouponCampaign` resource as marketing writes it, its validation,
//! where a campaign stands at any instant in its own time zone, and loading campaigns from YAML.
//!
//! Deliberately pure: no Kubernetes client and no I/O beyond reading YAML files, so every consumer
//! agrees on when a campaign opens without agreeing on anything else.

mod load;
mod resource;
mod rules;
mod time_of_day;

pub use load::{LoadError, Origin, load_dir, parse_yaml};
pub use resource::{
    API_VERSION, CampaignSpec, CouponCampaign, CouponTemplate, Eligibility, KIND, MissionRequirement, ObjectMeta,
    Quota, Schedule,
};
pub use rules::{Campaign, InvalidCampaign, Phase, Status};
