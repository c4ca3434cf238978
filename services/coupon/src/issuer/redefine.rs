//! Following the campaign's definition while running: a change of the resource (quantities, a
//! later end date, window times, `suspend`, the coupon's text) reaches running issuers within
//! seconds, not at their next restart. Definitions come from `campaigns.definitions`, replayed
//! from its beginning at start, so none published before this replica started is missed; only a
//! newer generation of the same instance (name and uid) is taken.
//!
//! What a change does:
//! - `dailyQuantity`: a day's stock is set once, when the day is first seeded (at its opening or
//!   by its first request), so a new quantity applies to every day not seeded yet — from the next
//!   campaign day once today's window has opened;
//! - `totalQuantity`: every take checks the campaign-wide count against it, so a lowered cap
//!   stops issuance at once; a day's stock is seeded within what the cap then leaves, so a
//!   raised cap adds to days not seeded yet, not to today's stock once today opened;
//! - window times, dates and `suspend`: at once;
//! - the coupon's title and benefit: for coupons issued from then on (an issued coupon keeps
//!   its text in its row and the wallet; a holder asking the issuer again is answered with the
//!   current text — a known limit).
//!
//! The API server refuses changes of `timeZone`, `startDate`, `perUser` and `eligibility` once a
//! campaign has started (transition rules), so a day's meaning never changes under its issuers.

use std::sync::{Arc, Weak};

use campaign::Campaign;
use platform::events::contracts::{CAMPAIGN_DEFINED, CampaignDefined};
use platform::events::{Envelope, Handler};

use super::Issuer;

pub(super) struct Definitions {
    pub(super) issuer: Weak<Issuer>,
}

impl Handler for Definitions {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != CAMPAIGN_DEFINED {
            return Ok(());
        }
        let (Some(issuer), Some(defined)) = (self.issuer.upgrade(), event.decode_or_skip::<CampaignDefined>()) else {
            return Ok(());
        };
        let current = issuer.rules();
        if defined.name != current.name() || defined.uid != current.uid() || defined.version <= current.generation() {
            return Ok(());
        }
        let campaign = serde_json::from_value(defined.spec.clone())
            .map_err(|e| e.to_string())
            .and_then(|spec| Campaign::new(&defined.name, spec).map_err(|e| e.to_string()));
        match campaign {
            Ok(c) => {
                issuer.redefine(c.with_identity(defined.uid, defined.version));
            }
            // Invalid definitions never pass the API server; one that does not validate here
            // (an older binary, say) leaves the rules in force as they are.
            Err(e) => {
                tracing::error!(campaign = %defined.name, version = defined.version, error = %e, "ignoring a definition that does not validate")
            }
        }
        Ok(())
    }
}

impl Issuer {
    /// Puts `campaign` in force if it is a newer generation of this campaign instance; returns
    /// whether it did.
    pub fn redefine(&self, campaign: Campaign) -> bool {
        let mut rules = self.campaign.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if campaign.name() != rules.name()
            || campaign.uid() != rules.uid()
            || campaign.generation() <= rules.generation()
        {
            return false;
        }
        tracing::info!(
            campaign = campaign.name(),
            from = rules.generation(),
            to = campaign.generation(),
            daily = campaign.spec().quota.daily_quantity,
            suspend = campaign.spec().suspend,
            "campaign redefined"
        );
        *rules = Arc::new(campaign);
        drop(rules);
        // A raised cap or new dates may make units available again.
        self.clear_sold_out();
        metrics::counter!("coupon_issuer_redefinitions_total").increment(1);
        true
    }
}
