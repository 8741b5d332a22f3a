//! `kassa backup <file>`: an online, consistent copy of a SQLite database.

use anyhow::{Context, bail};
use kassa_server::config::Settings;
use kassa_server::startup;
use std::path::Path;

pub async fn run(settings: Settings, file: &Path) -> anyhow::Result<()> {
    if !settings.database.url.starts_with("sqlite:") {
        bail!(
            "kassa backup copies SQLite databases; for PostgreSQL use pg_dump (see docs/deploy.md): \
             pg_dump --format=custom --file=kassa.dump \"$DATABASE_URL\""
        );
    }
    if file.exists() {
        bail!("{} exists already; kassa backup writes a new file and never overwrites one", file.display());
    }
    let target = file.to_str().with_context(|| format!("{} is not a UTF-8 path", file.display()))?;
    let source = sqlite_path(&settings.database.url);
    if !Path::new(source).exists() {
        bail!("database.url (environment variable DATABASE_URL): {source} does not exist; nothing to back up");
    }
    // The copy is taken as it is (a server of another version may be running on it); a server
    // started on the copy applies its pending migrations itself.
    let store = startup::connect_store(&settings).await?;
    store.backup_sqlite(target).await.with_context(|| format!("writing the copy to {}", file.display()))?;
    store.close().await;
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up {} to {} ({size} bytes); restore by pointing DATABASE_URL at a copy of it",
        startup::redact(&settings.database.url),
        file.display()
    );
    Ok(())
}

/// The file of a `sqlite:` URL (`sqlite://kassa.db?mode=rwc` → `kassa.db`).
fn sqlite_path(url: &str) -> &str {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    rest.split('?').next().unwrap_or(rest)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_paths() {
        assert_eq!(super::sqlite_path("sqlite://kassa.db"), "kassa.db");
        assert_eq!(super::sqlite_path("sqlite:///var/lib/kassa/kassa.db?mode=rwc"), "/var/lib/kassa/kassa.db");
        assert_eq!(super::sqlite_path("sqlite:kassa.db"), "kassa.db");
    }
}
