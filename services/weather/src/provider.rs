//! Where weather comes from: Open-Meteo over HTTPS, or the simulated provider. One
//! interface, chosen by configuration ([`crate::WeatherConfig`]).

use chrono::{DateTime, Utc};

use crate::model::{Cell, Weather};
use crate::open_meteo::OpenMeteo;
use crate::simulated::Simulated;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ProviderError {
    #[error("no answer within {0} ms")]
    Timeout(u64),
    #[error("cannot reach the provider: {0}")]
    Unreachable(String),
    /// An HTTP error answer (Open-Meteo: `{"error": true, "reason": …}`).
    #[error("the provider refused ({status}): {reason}")]
    Refused { status: u16, reason: String },
    #[error("the provider's answer is malformed: {0}")]
    Malformed(String),
}

impl ProviderError {
    /// The `outcome` label of `weather_upstream_requests_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            ProviderError::Timeout(_) => "timeout",
            ProviderError::Unreachable(_) => "unreachable",
            ProviderError::Refused { status: 429, .. } => "rate-limited",
            ProviderError::Refused { .. } => "refused",
            ProviderError::Malformed(_) => "malformed",
        }
    }
}

#[derive(Debug)]
pub enum Provider {
    OpenMeteo(OpenMeteo),
    Simulated(Simulated),
}

impl Provider {
    /// The name in answers (`provider`) and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Provider::OpenMeteo(_) => "open-meteo",
            Provider::Simulated(_) => "simulated",
        }
    }

    /// Current conditions and forecast for `cell`, fetched at `now`.
    pub async fn fetch(&self, cell: Cell, now: DateTime<Utc>) -> Result<Weather, ProviderError> {
        let started = std::time::Instant::now();
        let result = match self {
            Provider::OpenMeteo(p) => p.fetch(cell, now).await,
            Provider::Simulated(p) => Ok(p.weather(cell, now)),
        };
        let outcome = result.as_ref().map_or_else(ProviderError::outcome, |_| "ok");
        metrics::counter!("weather_upstream_requests_total", "provider" => self.name(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("weather_upstream_seconds", "provider" => self.name())
            .record(started.elapsed().as_secs_f64());
        result
    }
}
