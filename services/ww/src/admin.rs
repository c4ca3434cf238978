//! `ww admin`: operator tasks run against the databases directly (no service needs to be
//! up), e.g. `ww admin grant-role minji@example.com moderator`.

use clap::Subcommand;
use platform::db::DatabaseConfig;
use platform::roles::Role;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Grant a role (moderator, marketing, admin); effective at the account's next login
    /// or token refresh.
    GrantRole(RoleArgs),
    /// Revoke a role; effective at the account's next token refresh.
    RevokeRole(RoleArgs),
}

#[derive(Debug, clap::Args)]
pub struct RoleArgs {
    /// The account's email.
    pub email: String,
    /// moderator, marketing or admin.
    #[arg(value_parser = Role::parse)]
    pub role: Role,
    #[command(flatten)]
    pub database: DatabaseConfig,
}

pub async fn run(cmd: AdminCommand) -> anyhow::Result<()> {
    let (args, grant) = match &cmd {
        AdminCommand::GrantRole(args) => (args, true),
        AdminCommand::RevokeRole(args) => (args, false),
    };
    let url =
        args.database.database_url.as_ref().ok_or_else(|| {
            anyhow::anyhow!("no database configured: set WW_DATABASE_URL (postgres://… or sqlite://DIR)")
        })?;
    let db = auth::open_database(url).await?;
    let outcome = auth::set_role(&db, &args.email, args.role, grant).await?;
    let (verb, already) = if grant { ("granted", "already has") } else { ("revoked", "does not have") };
    match outcome {
        auth::RoleChange::Done => {
            println!("{verb} `{}` for {} (effective at its next token refresh)", args.role, args.email)
        }
        auth::RoleChange::Unchanged => println!("{} {already} the role `{}`; nothing changed", args.email, args.role),
        auth::RoleChange::NoSuchAccount => anyhow::bail!("no account with the email {}", args.email),
    }
    db.pool.close().await;
    Ok(())
}
