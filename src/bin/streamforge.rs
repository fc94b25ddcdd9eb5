//! The `streamforge` binary: parses the command line and calls `app::<command>::run`; each
//! command's arguments, their defaults and what they mean live with the command in `app`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use streamforge::app::{self, args::LogArgs, node::shutdown_signal, AppError};

#[derive(Parser)]
#[command(name = "streamforge", version, about = "Binance market data → bus → store, run by supervised actors.")]
struct Cli {
    #[command(flatten)]
    log: LogArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backfill klines into the store through the bus, print a summary, exit.
    Run(app::run::RunArgs),
    /// Run the long-running actor node until SIGTERM.
    Node(app::node::NodeArgs),
    /// Run a node with only the dummy actor (ping/pong, simulated loading, failures).
    Dummy(app::dummy::DummyArgs),
    /// Keep one symbol's local order book from its depth stream; print it when the stream ends.
    Book(app::book::BookArgs),
    /// Build correlation graphs of many symbols' candles (backfilling them first), print a summary.
    Graph(app::graph::GraphArgs),
    /// Derive 5m/15m/1h/4h/1d candles from stored shorter ones (1m), store them, print a summary.
    Derive(app::derive::DeriveArgs),
    /// Find holes anywhere in stored series, fill them from the exchange, record what it confirms empty.
    Repair(app::repair::RepairArgs),
    /// Train the temporal GNN with a walk-forward evaluation against baselines; save and register it
    /// (needs the `trainer` feature).
    #[cfg(feature = "trainer")]
    Train(app::train::TrainArgs),
    /// Score the latest candles with a saved model (needs the `trainer` feature).
    #[cfg(feature = "trainer")]
    Predict(app::train::PredictArgs),
    /// Train the temporal GNN (this binary was built without the `trainer` feature).
    #[cfg(not(feature = "trainer"))]
    Train(app::args::Unavailable),
    /// Score the latest candles with a saved model (built without the `trainer` feature).
    #[cfg(not(feature = "trainer"))]
    Predict(app::args::Unavailable),
    /// Talk to a node's admin API: workflows, ping, the supervision tree.
    Ctl(app::ctl::CtlArgs),
    /// Serve recorded Binance data over Binance's REST and WebSocket API.
    ReplayServer(app::replay_server::ReplayArgs),
    /// Measure the REST backfill, connector and WebSocket paths on recorded data: records/s,
    /// latency to the store commit, peak RSS, CPU per record.
    Bench(app::bench::BenchArgs),
}

/// What the command printed, if anything.
async fn execute(cli: Cli) -> Result<String, AppError> {
    let log = &cli.log;
    match cli.command {
        Command::Run(args) => app::run::run(args, log).await,
        Command::Node(args) => app::node::run(args, log, shutdown_signal()).await.map(|()| String::new()),
        Command::Dummy(args) => app::dummy::run(args, log, shutdown_signal()).await.map(|()| String::new()),
        Command::Book(args) => app::book::run(args, log, shutdown_signal()).await,
        Command::Graph(args) => app::graph::run(args, log).await,
        Command::Derive(args) => app::derive::run(args, log).await,
        Command::Repair(args) => app::repair::run(args, log).await,
        #[cfg(feature = "trainer")]
        Command::Train(args) => app::train::run(args, log).await,
        #[cfg(feature = "trainer")]
        Command::Predict(args) => app::train::run_predict(args, log).await,
        #[cfg(not(feature = "trainer"))]
        Command::Train(_) | Command::Predict(_) => Err(AppError::Usage(
            "this binary was built without the trainer: cargo build --release --features trainer".into(),
        )),
        Command::Ctl(args) => app::ctl::run(args, shutdown_signal()).await,
        Command::Bench(args) => app::bench::run(args, log).await,
        Command::ReplayServer(args) => {
            log.init();
            app::replay_server::run(args.into(), shutdown_signal()).await.map(|()| String::new())
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    app::malloc::tune();
    match execute(Cli::parse()).await {
        Ok(out) => {
            if !out.is_empty() {
                println!("{out}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
