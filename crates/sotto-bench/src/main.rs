//! `sotto-bench`: an open-loop load generator for a running `sotto serve`, over the
//! real REST API and realtime WebSocket, on loopback. Every request and message is due at
//! a fixed schedule and its latency counts from that due time, so a stall in the server
//! shows in the figures instead of slowing the load. See docs/benchmarks.md.

mod client;
mod e2e_users;
mod history;
mod load;
mod otr;
mod procfs;
mod report;
mod rotation;
mod scenarios;
mod schedule;
mod setup;
mod synapse;
mod target;

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use target::{Target, TargetArgs};

#[derive(Parser)]
#[command(name = "sotto-bench", version)]
struct Cli {
    /// Worker threads of the generator (default: one per core).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(flatten)]
    target: TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// 1: one room of N online members, R messages/s via REST, send → receive on every socket.
    Fanout(scenarios::FanoutArgs),
    /// 2: many users in rooms of 4–10, rate raised until REST p99 passes the limit.
    Capacity(scenarios::CapacityArgs),
    /// Scenario 2's users and rooms at one fixed rate for many minutes (the soak).
    Soak(scenarios::SoakArgs),
    /// 3: idle authenticated sockets (server RSS per connection), then a reconnect storm.
    Idle(scenarios::IdleArgs),
    /// 4: pages of 50 from a long history, and the room list of a user in many rooms.
    History(history::HistoryArgs),
    /// 5: one owner rotates the key of a large encrypted room; accept and delivery times.
    Rotation(rotation::RotationArgs),
    /// 6: pairs in direct messages relaying off-the-record frames; server storage writes.
    Otr(otr::OtrArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = cli.threads {
        runtime.worker_threads(n.max(1));
    }
    let result = runtime.build().map_err(anyhow::Error::from).and_then(|rt| {
        rt.block_on(async {
            if cli.target.synapse {
                let (Some(addr), Some(pid)) = (cli.target.addr, cli.target.server_pid) else {
                    anyhow::bail!("--synapse needs --addr and --server-pid");
                };
                let peer = synapse::Synapse::new(addr, pid)?;
                return match &cli.scenario {
                    Scenario::Fanout(a) => scenarios::fanout(&peer, a).await,
                    Scenario::Capacity(a) => scenarios::capacity(&peer, a).await,
                    _ => anyhow::bail!("only fanout and capacity run against Synapse"),
                };
            }
            let target = Target::open(&cli.target).await?;
            let result = match &cli.scenario {
                Scenario::Fanout(a) => scenarios::fanout(&target, a).await,
                Scenario::Capacity(a) => scenarios::capacity(&target, a).await,
                Scenario::Soak(a) => scenarios::soak(&target, a).await,
                Scenario::Idle(a) => scenarios::idle(&target, a).await,
                Scenario::History(a) => history::history(&target, a).await,
                Scenario::Rotation(a) => rotation::rotation(&target, a).await,
                Scenario::Otr(a) => otr::otr(&target, a).await,
            };
            target.finish().await?;
            result
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sotto-bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
