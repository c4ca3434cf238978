//! The rules of a first-come coupon campaign, shared by the services that hand out coupons and the
//! operator that runs campaigns: the `CouponCampaign` resource as marketing writes it, its validation,
//! where a campaign stands at any instant in its own time zone, and loading campaigns from YAML.
//!
//! Deliberately pure: no Kubernetes client (kube's derive only, for the one definition of the
//! resource) and no I/O beyond reading YAML files, so every consumer agrees on when a campaign opens
//! without agreeing on anything else.

pub mod check;
mod load;
pub mod plan;
mod resource;
mod rules;
mod time_of_day;
mod vocabulary;

pub use load::{LoadError, Origin, load_dir, load_file, parse_yaml, resources_in_yaml};
pub use resource::{
    API_VERSION, CampaignSpec, CouponCampaign, CouponCampaignStatus, CouponTemplate, Eligibility, GROUP, KIND,
    MissionRequirement, Quota, Replicas, Schedule, TIME_OF_DAY_PATTERN, VERSION, Workload, limits,
};
pub use rules::{Campaign, DATE_YEARS, InvalidCampaign, Phase, Status};
pub use vocabulary::{API_PHASE_PATTERN, PHASES, PhaseWords, ResourcePhase, api_words};
