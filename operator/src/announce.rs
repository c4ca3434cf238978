//! What the operator tells the rest of the platform about campaigns, on the event bus: a
//! `CampaignDefined` when a campaign is created or changed (so the steady-state coupon service
//! lists it and answers for it while no issuer runs), and a `CampaignRemoved` with its final
//! totals when it is deleted (its coupons stay valid). A finalizer holds a deleted campaign
//! until its removal is on the bus: a watch event missed while no operator ran cannot lose it.

use std::collections::HashMap;
use std::sync::Mutex;

use campaign::CouponCampaign;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use platform::events::contracts::{
    CAMPAIGN_DEFINED, CAMPAIGN_REMOVED, CampaignDefined, CampaignRemoved, CampaignTotals, topics,
};
use platform::events::{BusError, Envelope, EventBus};

/// The finalizer the operator puts on every campaign while it announces them.
pub const FINALIZER: &str = "weatherwise.io/announce-removal";
const SOURCE: &str = "ww-operator";

/// Publishes campaign definitions and removals, each (uid, generation) once per process.
pub struct Announcer {
    bus: EventBus,
    /// The generation last announced per uid.
    announced: Mutex<HashMap<String, i64>>,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer").field("bus", &self.bus).finish_non_exhaustive()
    }
}

/// The identity a resource's announcements carry.
struct Identity<'a> {
    name: &'a str,
    namespace: &'a str,
    uid: &'a str,
    generation: i64,
}

fn identity(meta: &ObjectMeta) -> Identity<'_> {
    Identity {
        name: meta.name.as_deref().unwrap_or_default(),
        namespace: meta.namespace.as_deref().unwrap_or_default(),
        uid: meta.uid.as_deref().unwrap_or_default(),
        generation: meta.generation.unwrap_or(0),
    }
}

impl Announcer {
    pub fn new(bus: EventBus) -> Self {
        Self { bus, announced: Mutex::default() }
    }

    /// Creates the topics the operator publishes to (the broker never auto-creates them).
    pub async fn ensure_topics(&self) -> Result<(), BusError> {
        self.bus.ensure_topics(&[topics::CAMPAIGNS, topics::CAMPAIGN_COUNTS]).await
    }

    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Announces a valid campaign's definition unless this generation was announced already.
    /// Returns whether it published.
    pub async fn defined(&self, resource: &CouponCampaign) -> Result<bool, BusError> {
        let id = identity(&resource.metadata);
        if self.announced.lock().unwrap_or_else(|e| e.into_inner()).get(id.uid) == Some(&id.generation) {
            return Ok(false);
        }
        let event = CampaignDefined {
            name: id.name.to_owned(),
            version: id.generation,
            spec: serde_json::to_value(&resource.spec)?,
            namespace: id.namespace.to_owned(),
            uid: id.uid.to_owned(),
        };
        let envelope = Envelope::new(CAMPAIGN_DEFINED, SOURCE, chrono::Utc::now(), &event)?;
        self.bus.publish(topics::CAMPAIGNS, id.name, &envelope).await?;
        self.announced.lock().unwrap_or_else(|e| e.into_inner()).insert(id.uid.to_owned(), id.generation);
        metrics::counter!("ww_operator_announcements_total", "kind" => CAMPAIGN_DEFINED).increment(1);
        Ok(true)
    }

    /// Announces that a campaign was deleted, with the totals last counted.
    pub async fn removed(&self, meta: &ObjectMeta, totals: Option<CampaignTotals>) -> Result<(), BusError> {
        let id = identity(meta);
        let event = CampaignRemoved {
            name: id.name.to_owned(),
            version: id.generation,
            namespace: id.namespace.to_owned(),
            uid: id.uid.to_owned(),
            totals,
        };
        let envelope = Envelope::new(CAMPAIGN_REMOVED, SOURCE, chrono::Utc::now(), &event)?;
        self.bus.publish(topics::CAMPAIGNS, id.name, &envelope).await?;
        self.announced.lock().unwrap_or_else(|e| e.into_inner()).remove(id.uid);
        metrics::counter!("ww_operator_announcements_total", "kind" => CAMPAIGN_REMOVED).increment(1);
        Ok(())
    }
}
