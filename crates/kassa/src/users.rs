//! `kassa users create|list`: the people who sign in to the dashboard (`/dashboard`).

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use kassa_server::config::Settings;
use kassa_server::services::dashboard::{Role, users};
use kassa_server::startup;
use std::io::{BufRead, IsTerminal, Write};

/// The environment variable a password may come from (scripts, containers).
pub const PASSWORD_ENV: &str = "KASSA_USER_PASSWORD";

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a dashboard user. The password comes from `--password`, else from the
    /// environment variable KASSA_USER_PASSWORD, else it is asked for on the terminal (or read
    /// as one line from standard input). At least 10 characters.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Visible to other users of this machine in the process list: prefer the
        /// environment variable or the prompt.
        #[arg(long)]
        password: Option<String>,
    },
    /// List dashboard users (never their passwords).
    List,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Everything, including API keys and users.
    Owner,
    /// Orders, customers and credits.
    Staff,
    /// Reads only.
    Viewer,
}

/// Reads a password from the terminal without echoing it (or a line of piped input).
fn prompt_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Password for the new user: ");
        std::io::stderr().flush().ok();
        let _ = std::process::Command::new("stty").arg("-echo").stdin(std::process::Stdio::inherit()).status();
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        let _ = std::process::Command::new("stty").arg("echo").stdin(std::process::Stdio::inherit()).status();
        eprintln!();
    }
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(settings: Settings, command: UsersCommand) -> anyhow::Result<()> {
    let store = startup::connect_store(&settings).await?;
    kassa_sandbox::migrations::migrate_all(&store).await?;
    let now = kassa_server::clock::Clock::default().now();
    match command {
        UsersCommand::Create { email, role, password } => {
            let role = match role {
                RoleArg::Owner => Role::Owner,
                RoleArg::Staff => Role::Staff,
                RoleArg::Viewer => Role::Viewer,
            };
            let password = match password.or_else(|| std::env::var(PASSWORD_ENV).ok()) {
                Some(p) => p,
                None => prompt_password()?,
            };
            let user = users::create(&store, &email, role, &password, now).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            println!("created {} {} {}", user.id, user.email, user.role);
        }
        UsersCommand::List => {
            println!("{:<32} {:<8} email", "id", "role");
            for u in users::list(&store).await.map_err(|e| anyhow::anyhow!("{e}"))? {
                println!("{:<32} {:<8} {}", u.id, u.role, u.email);
            }
        }
    }
    Ok(())
}
