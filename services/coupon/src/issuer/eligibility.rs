//! Eligibility from `MissionVerified` events: a person is eligible on the campaign-local
//! day their mission was verified (a daily weather mission; one they created only where the
//! campaign's eligibility says so). Events are read from the log (never by calling the
//! mission service), replayed from the beginning at start and after a state loss.

use platform::events::contracts::{MISSION_VERIFIED, MissionSource, MissionVerified};
use platform::events::{Envelope, Handler};

use super::engine::Engine;
use super::{Rules, current};

pub(super) struct Eligibility {
    campaign: Rules,
    engine: Engine,
}

impl Eligibility {
    pub(super) fn new(campaign: Rules, engine: Engine) -> Self {
        Self { campaign, engine }
    }
}

impl Handler for Eligibility {
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        if event.kind != MISSION_VERIFIED {
            return Ok(());
        }
        let Some(verified) = event.decode_or_skip::<MissionVerified>() else { return Ok(()) };
        let campaign = current(&self.campaign);
        // A mission someone made (and may have verified themselves) counts only where the
        // campaign says so.
        if verified.source == MissionSource::Created && !campaign.spec().eligibility.mission.counts_created_missions() {
            return Ok(());
        }
        let day = campaign.day_of(verified.verified_at);
        let schedule = &campaign.spec().schedule;
        // Only days that can still matter: in the period, and not before yesterday.
        let yesterday = campaign.day_of(self.engine.now()).pred_opt().unwrap_or(day);
        if day < schedule.start_date || day > schedule.end_date || day < yesterday {
            return Ok(());
        }
        self.engine.add_eligible(day, verified.user_id).await
    }
}
