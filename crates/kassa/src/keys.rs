//! `kassa keys create|list|revoke`.

use clap::{Subcommand, ValueEnum};
use kassa_server::config::Settings;
use kassa_server::services::keys::{self, KeyKind};
use kassa_server::startup;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once).
    Create {
        #[arg(long, value_enum)]
        kind: Kind,
        /// A label to recognise the key by.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id (`key_…`); requests with it are refused from then on.
    Revoke { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Kind {
    Secret,
    Publishable,
}

pub async fn run(settings: Settings, command: KeysCommand) -> anyhow::Result<()> {
    let store = startup::connect_store(&settings).await?;
    kassa_sandbox::migrations::migrate_all(&store).await?;
    let now = kassa_server::clock::Clock::default().now();
    match command {
        KeysCommand::Create { kind, name } => {
            let kind = match kind {
                Kind::Secret => KeyKind::Secret,
                Kind::Publishable => KeyKind::Publishable,
            };
            let key = keys::create(&store, kind, name, now).await?;
            println!("{}  {}", key.row.id, key.secret);
        }
        KeysCommand::List => {
            println!("{:<32} {:<12} {:<8} {:<10} name", "id", "kind", "ends", "status");
            for k in kassa_store::api_keys::list(store.reader()).await? {
                let status = if k.revoked_at.is_some() { "revoked" } else { "active" };
                println!("{:<32} {:<12} …{:<7} {:<10} {}", k.id, k.kind, k.last4, status, k.name.unwrap_or_default());
            }
        }
        KeysCommand::Revoke { id } => {
            if keys::revoke(&store, &id, now).await? {
                println!("revoked {id}");
            } else {
                anyhow::bail!("no active key {id}");
            }
        }
    }
    Ok(())
}
