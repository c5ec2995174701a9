//! The embedded MetaChat demo: users and diary entries on a durable sled
//! database in one process, with the user directory and diary timeline
//! projections caught up from the log. (The REST server with mood analysis
//! replaces this demo when its issue lands.)
//!
//! Run: `cargo run --release --example embedded` (data in `./data`, or
//! `METACHAT_DATA_DIR`). Run it twice: the second run finds the users and
//! entries of the first, because every acknowledged append is on disk.
//!
//! Subcommands: `embedded [demo]`, `embedded register EMAIL NAME`,
//! `embedded write EMAIL TEXT…`, `embedded timeline EMAIL`, `embedded stats`.

use std::path::PathBuf;

use anyhow::{bail, Context};
use metachat::adapters::sled::{SledConfig, SledDatabase, SledEventStore, SledReadModels};
use metachat::domain::{
    Diaries, DiaryTimeline, EntryId, KeyVault, UserDirectory, UserId, Users, UsersError,
};
use metachat::event::Metadata;
use metachat::projection::ProjectionRunner;
use metachat::store::EventReader;

struct App {
    store: SledEventStore,
    read_models: SledReadModels,
    users: Users<SledEventStore>,
    diaries: Diaries<SledEventStore, SledReadModels>,
    vault: KeyVault<SledReadModels>,
}

impl App {
    fn open(dir: &PathBuf) -> anyhow::Result<Self> {
        let db = SledDatabase::open(SledConfig::new(dir))
            .with_context(|| format!("opening the database in {}", dir.display()))?;
        let store = db.event_store();
        let read_models = db.read_models();
        let vault = KeyVault::new(read_models.clone());
        Ok(App {
            users: Users::new(store.clone()),
            diaries: Diaries::new(store.clone(), vault.clone()),
            vault,
            read_models,
            store,
        })
    }

    /// Brings both read models up to the head of the log.
    async fn catch_up(&self) -> anyhow::Result<()> {
        ProjectionRunner::new(
            self.store.clone(),
            self.read_models.clone(),
            UserDirectory::new(),
        )
        .catch_up()
        .await?;
        ProjectionRunner::new(
            self.store.clone(),
            self.read_models.clone(),
            DiaryTimeline::new(),
        )
        .catch_up()
        .await?;
        Ok(())
    }

    /// The user with this address, registering them if new.
    async fn user(&self, email: &str, name: &str) -> anyhow::Result<UserId> {
        if let Some(id) = self.users.find_by_email(email).await? {
            return Ok(id);
        }
        let id = UserId::new();
        // A real server stores an argon2 hash here; the demo has no passwords.
        match self
            .users
            .register(id, email, "demo-no-password", name, Metadata::default())
            .await
        {
            Ok(_) => Ok(id),
            Err(UsersError::EmailTaken) => self
                .users
                .find_by_email(email)
                .await?
                .context("address taken by a registration that has not completed"),
            Err(e) => Err(e.into()),
        }
    }

    async fn find(&self, email: &str) -> anyhow::Result<UserId> {
        self.users
            .find_by_email(email)
            .await?
            .with_context(|| format!("no user with address {email}"))
    }

    async fn write(&self, author: UserId, text: &str) -> anyhow::Result<()> {
        let entry = self
            .diaries
            .create(EntryId::new(), author, text, Metadata::default())
            .await?;
        println!(
            "  wrote {} (stream version {:?})",
            entry.stream, entry.version
        );
        Ok(())
    }

    async fn print_timeline(&self, user: UserId, label: &str) -> anyhow::Result<()> {
        self.catch_up().await?;
        let mut cursor = None;
        println!("timeline of {label}, newest first:");
        loop {
            let page =
                DiaryTimeline::page(&self.read_models, &self.vault, user, cursor.as_deref(), 20)
                    .await?;
            for e in &page.entries {
                println!("  [rev {}] {}", e.revision, e.text);
            }
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(std::env::var("METACHAT_DATA_DIR").unwrap_or_else(|_| "data".into()));
    let args: Vec<String> = std::env::args().skip(1).collect();
    let app = App::open(&dir)?;
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] | ["demo"] => demo(&app).await?,
        ["register", email, name @ ..] if !name.is_empty() => {
            let id = app.user(email, &name.join(" ")).await?;
            println!("{email} is user {id}");
        }
        ["write", email, text @ ..] if !text.is_empty() => {
            let user = app.find(email).await?;
            app.write(user, &text.join(" ")).await?;
        }
        ["timeline", email] => {
            let user = app.find(email).await?;
            app.print_timeline(user, email).await?;
        }
        ["stats"] => {}
        _ => bail!(
            "usage: embedded [demo | register EMAIL NAME | write EMAIL TEXT… | timeline EMAIL | stats]"
        ),
    }
    println!(
        "{} events in {} (durable: every append above returned after fdatasync)",
        app.store.next_position().await?,
        dir.display()
    );
    Ok(())
}

async fn demo(app: &App) -> anyhow::Result<()> {
    let anna = app.user("anna@example.org", "Anna").await?;
    let boris = app.user("boris@example.org", "Борис").await?;
    println!("users: anna = {anna}, boris = {boris}");
    app.write(anna, "Finished the marathon today, tired but so happy.")
        .await?;
    app.write(boris, "Сегодня было тревожно: завтра важный экзамен.")
        .await?;

    // Email uniqueness holds whatever the spelling.
    match app
        .users
        .register(
            UserId::new(),
            " ANNA@example.org ",
            "x",
            "Impostor",
            Metadata::default(),
        )
        .await
    {
        Err(UsersError::EmailTaken) => {
            println!("second registration of anna@example.org refused: email taken")
        }
        other => bail!("uniqueness violated: {other:?}"),
    }

    app.print_timeline(anna, "anna").await?;
    app.print_timeline(boris, "boris").await?;
    let profile = UserDirectory::get(&app.read_models, boris).await?;
    println!("directory: boris is {:?}", profile.map(|p| p.display_name));
    Ok(())
}
