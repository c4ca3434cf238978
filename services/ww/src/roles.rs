//! The roles of the `ww` binary, one entry each in [`roles!`] below: the name `ww serve`
//! takes (and its `--help` line), whether it needs Redis, what `ww serve` must be told
//! before it can run, whether only `ww dev` mounts it, and how it starts. `ww serve`,
//! `ww dev` and [`crate::app::build`] all read this table: adding a role is adding an
//! entry here.

use futures::future::BoxFuture;
use platform::service::{Context, Started};

use crate::cli::{ServeArgs, ServiceConfig};

type Start = for<'a> fn(&'a Context, &'a ServiceConfig) -> BoxFuture<'a, anyhow::Result<Started>>;

/// One role of the binary.
pub struct Role {
    pub name: ServiceName,
    /// Needs Redis in production (else in-memory counters do).
    pub redis: bool,
    /// Mounted by `ww dev` only (not a `ww serve` argument).
    pub dev_only: bool,
    /// What `ww serve` must be told for this role, as the error that says how; `None`
    /// when all is set.
    pub missing: fn(&ServeArgs) -> Option<&'static str>,
    pub start: Start,
}

/// Declares [`ServiceName`] (the clap value enum) and [`ROLES`] from one list.
macro_rules! roles {
    ($(
        $(#[$meta:meta])*
        $variant:ident { redis: $redis:expr, dev_only: $dev:expr, missing: $missing:expr, start: $start:expr $(,)? }
    ),* $(,)?) => {
        /// A service role this binary can run.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
        pub enum ServiceName {
            $( $(#[$meta])* $variant, )*
        }

        /// Every role, in the order `ww dev` starts them.
        pub static ROLES: &[Role] = &[
            $( Role { name: ServiceName::$variant, redis: $redis, dev_only: $dev, missing: $missing, start: $start }, )*
        ];
    };
}

roles! {
    /// Signup, login, refresh, logout, password change.
    Auth {
        redis: true,
        dev_only: false,
        // Login limits are per client address; guessing the proxy setup wrong either lets
        // anyone pick their address (trusting too much) or puts everyone behind the
        // ingress in one bucket (trusting too little). Make the deployment say it.
        missing: |args| args.http.trusted_proxies.is_none().then_some(
            "the auth role limits logins per client address and needs a stated proxy policy: set \
             --trusted-proxies or WW_TRUSTED_PROXIES to the CIDR ranges of the ingress/load balancer \
             in front of it (e.g. 10.0.0.0/8), or to `none` when clients connect directly",
        ),
        start: |ctx, config| Box::pin(auth::start(ctx, &config.auth)),
    },
    /// Profiles (`/api/users/me`), built from signup events.
    User {
        redis: false,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(user::start(ctx, &config.user)),
    },
    /// Coupon catalog, wallet, redemption and the persister of issued coupons.
    Coupon {
        redis: false,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(coupon::start(ctx, !config.issuers_in_process)),
    },
    /// The first-come issuer of one campaign (`--campaign NAME`): the per-event workload.
    CouponIssuer {
        redis: true,
        dev_only: false,
        missing: |args| args.services_config.issuer.campaign.is_none().then_some(
            "the coupon-issuer role serves one campaign: set --campaign or WW_CAMPAIGN",
        ),
        start: |ctx, config| Box::pin(async move {
            let campaigns = coupon::load_campaigns(&config.issuer)?;
            // In a cluster the operator announces the campaign; its issuers announce the file
            // they run too (the operator's ConfigMap, versioned by the resource's generation and
            // naming its uid), so the definition is there even before the operator's reaches
            // the coupon service. Same instance, same version: the same row.
            if config.issuer.campaign_file.is_some() {
                for c in &campaigns {
                    coupon::publish_definitions(&ctx.bus, std::slice::from_ref(c), c.generation()).await?;
                }
            }
            Ok(coupon::start_issuers(ctx, campaigns, &config.issuer).await?.0)
        }),
    },
    /// Chat rooms, history and moderation over HTTP.
    Chat {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(chat::start_chat(ctx, &config.chat)),
    },
    /// Chat WebSockets (`GET /ws/chat/{room}`): this gateway's sockets, fed from the cluster's log.
    ChatGateway {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(chat::start_gateway(ctx, &config.chat)),
    },
    /// Chat persistence: every message to SQL, the newest per room to Redis.
    ChatPersister {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(chat::start_persister(ctx, &config.chat)),
    },
    /// Weather by place (`/api/weather`): the provider behind a per-cell cache.
    Weather {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(weather::start_with(ctx, &config.weather, config.default_weather_provider())),
    },
    /// Daily missions from the weather, proofs, moderation (`/api/missions/...`).
    Mission {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(async move {
            let proofs = config.data_dir.as_deref().unwrap_or(std::path::Path::new(".")).join("proofs");
            mission::start(ctx, &config.mission, &config.weather, config.default_weather_provider(), &proofs).await
        }),
    },
    /// Missions people create for each other (`/api/created-missions/...`).
    CreatedMission {
        redis: false,
        dev_only: false,
        missing: |_| None,
        start: |ctx, _| Box::pin(created_mission::start(ctx)),
    },
    /// The community board (`/api/board/...`): posts, comments, likes, reports, search.
    Board {
        redis: true,
        dev_only: false,
        missing: |_| None,
        start: |ctx, config| Box::pin(board::start(ctx, &config.board)),
    },
    /// The web app (`/`) and the marketing dashboard (`/dashboard`), with the dashboard's live
    /// counts (`/api/live/campaigns`) and campaign editor.
    Web {
        redis: false,
        dev_only: false,
        missing: |_| None,
        start: |ctx, _| Box::pin(web::start(ctx)),
    },
    /// Development helpers (`ww dev` only).
    #[value(skip)]
    DevTools {
        redis: false,
        dev_only: true,
        missing: |_| None,
        start: |ctx, _| Box::pin(async move { Ok(dev_tools(ctx)) }),
    },
}

impl ServiceName {
    /// Everything `ww dev` runs.
    pub fn all() -> Vec<ServiceName> {
        ROLES.iter().map(|r| r.name).collect()
    }

    pub fn role(self) -> &'static Role {
        // Every variant has its entry: the macro writes both from one list.
        ROLES.iter().find(|r| r.name == self).unwrap_or(&ROLES[0])
    }
}

fn dev_tools(ctx: &Context) -> Started {
    use utoipa::OpenApi;
    let state = coupon::dev::DevState { bus: ctx.bus.clone(), keys: ctx.keys.clone(), clock: ctx.clock.clone() };
    Started {
        name: "dev-tools",
        router: coupon::dev::router(state),
        openapi: coupon::dev::DevDoc::openapi(),
        readiness: Vec::new(),
        tasks: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use clap::ValueEnum;

    use super::*;

    #[test]
    fn every_role_has_one_entry_and_serve_offers_all_but_the_dev_only_ones() {
        let names: Vec<ServiceName> = ROLES.iter().map(|r| r.name).collect();
        let unique: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        let served: Vec<ServiceName> = ROLES.iter().filter(|r| !r.dev_only).map(|r| r.name).collect();
        assert_eq!(ServiceName::value_variants(), served.as_slice());
        for name in names {
            assert_eq!(name.role().name, name);
        }
    }
}
