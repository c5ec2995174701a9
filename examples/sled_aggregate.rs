//! An aggregate on the embedded sled store, with a projection: bank accounts
//! that refuse overdrafts, and a read model of every balance, caught up from
//! the log and checkpointed with its writes.
//!
//! Run: `cargo run --example sled_aggregate` (data in a temporary directory,
//! or in the directory given as the first argument: run it twice on the same
//! directory and the second run finds the first run's deposits).

use async_trait::async_trait;
use metachat::adapters::sled::{SledConfig, SledDatabase};
use metachat::aggregate::{Aggregate, CommandError, Repository};
use metachat::codec::{Codec, DomainEvent, JsonCodec};
use metachat::event::{Envelope, Metadata};
use metachat::projection::{Projection, ProjectionRunner, ProjectionTx};
use metachat::read_model::ReadModelStoreExt;
use serde::{Deserialize, Serialize};

/// What happened to an account: stored as `Deposited` / `Withdrawn` events.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum AccountEvent {
    Deposited { cents: u64 },
    Withdrawn { cents: u64 },
}

impl DomainEvent for AccountEvent {
    fn event_types() -> &'static [&'static str] {
        &["Deposited", "Withdrawn"]
    }
}

enum AccountCommand {
    Deposit(u64),
    Withdraw(u64),
}

#[derive(Debug, thiserror::Error)]
enum AccountError {
    #[error("insufficient funds: balance {balance}, asked {asked}")]
    InsufficientFunds { balance: u64, asked: u64 },
    #[error("an amount must be positive")]
    ZeroAmount,
}

/// The account's state: its balance, folded from its events.
#[derive(Debug, Default)]
struct Account {
    balance: u64,
}

impl Aggregate for Account {
    const KIND: &'static str = "account";
    type Event = AccountEvent;
    type Command = AccountCommand;
    type Error = AccountError;

    fn apply(&mut self, event: &AccountEvent) {
        match event {
            AccountEvent::Deposited { cents } => self.balance += cents,
            AccountEvent::Withdrawn { cents } => self.balance -= cents,
        }
    }

    fn handle(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match *command {
            AccountCommand::Deposit(0) | AccountCommand::Withdraw(0) => {
                Err(AccountError::ZeroAmount)
            }
            AccountCommand::Deposit(cents) => Ok(vec![AccountEvent::Deposited { cents }]),
            AccountCommand::Withdraw(cents) if cents > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    asked: cents,
                })
            }
            AccountCommand::Withdraw(cents) => Ok(vec![AccountEvent::Withdrawn { cents }]),
        }
    }
}

/// The read model's collection: an account's balance under its stream id.
const BALANCES: &str = "balances";

/// A read model: every account's balance in collection [`BALANCES`].
struct Balances {
    codec: JsonCodec<AccountEvent>,
}

#[async_trait]
impl Projection for Balances {
    fn name(&self) -> &str {
        "balances"
    }

    fn collections(&self) -> Vec<String> {
        vec![BALANCES.to_owned()]
    }

    async fn apply(&self, env: &Envelope, tx: &mut ProjectionTx<'_>) -> metachat::Result<()> {
        if env.stream_id.category() != Account::KIND {
            return Ok(());
        }
        let Some(event) = self.codec.decode(env)? else {
            return Ok(());
        };
        let key = env.stream_id.as_str();
        let balance: i64 = tx.get_json(BALANCES, key).await?.unwrap_or(0);
        let balance = match event {
            AccountEvent::Deposited { cents } => balance + i64::try_from(cents).unwrap_or(i64::MAX),
            AccountEvent::Withdrawn { cents } => balance - i64::try_from(cents).unwrap_or(i64::MAX),
        };
        tx.put_json(BALANCES, key, &balance)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| temp.path().to_owned(), Into::into);
    // Durable by default: an append returns once an fdatasync covered it.
    let db = SledDatabase::open(SledConfig::new(&dir))?;
    let (store, read_models) = (db.event_store(), db.read_models());

    let accounts = Repository::<Account, _>::new(store.clone());
    accounts
        .execute(
            "alice",
            &AccountCommand::Deposit(10_000),
            Metadata::default(),
        )
        .await?;
    let spent = accounts
        .execute(
            "alice",
            &AccountCommand::Withdraw(2_500),
            Metadata::default(),
        )
        .await?;
    println!(
        "alice: balance {} after version {:?}",
        spent.root.state.balance, spent.root.version
    );
    // A refused command is a typed domain error, and nothing is appended.
    match accounts
        .execute(
            "alice",
            &AccountCommand::Withdraw(1_000_000),
            Metadata::default(),
        )
        .await
    {
        Err(CommandError::Domain(e)) => println!("refused: {e}"),
        other => anyhow::bail!("expected a refusal, got {other:?}"),
    }

    // The read model catches up from its checkpoint (stored with its writes).
    let balances = Balances {
        codec: JsonCodec::new(),
    };
    let next = ProjectionRunner::new(store.clone(), read_models.clone(), balances)
        .catch_up()
        .await?;
    let (balance, _) = read_models
        .get_json::<i64>(BALANCES, "account-alice")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no balance for alice"))?;
    println!("balances projection at position {next}: alice has {balance} cents");
    Ok(())
}
