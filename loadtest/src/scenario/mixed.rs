//! `pulse-loadtest mixed`: everything at once, as production sees it — events
//! into Kafka timed to their windows on `/ws` (with `--subscribers` sockets
//! fanning out), and the API mix beside them — in one report.

use anyhow::Context;

use super::api::{self, ApiLoad};
use super::events::{self, EventsArgs, EventsLoad};
use super::{Run, RunArgs};
use crate::report::Report;

/// Options of `pulse-loadtest mixed`.
#[derive(Clone, Debug, clap::Args)]
pub struct MixedArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
    /// Event options (`--rate` is the event rate).
    #[command(flatten)]
    pub events: EventsLoad,
    /// API options.
    #[command(flatten)]
    pub api: ApiLoad,
    /// API requests per second (default: as fast as --concurrency workers go).
    #[arg(long, value_parser = super::parse_rate)]
    pub api_rate: Option<f64>,
    /// Leave Kafka out (no broker here): API load and nothing else.
    #[arg(long)]
    pub without_events: bool,
}

/// Runs `pulse-loadtest mixed` and returns its report.
pub fn run(args: &MixedArgs) -> anyhow::Result<Report> {
    let target = args.run.checked_target()?;
    if !args.without_events && args.events.via == events::Via::Kafka {
        events::ensure_broker(&args.events.brokers, args.run.allow_remote)?;
    }
    super::runtime()?.block_on(async {
        let client = super::signed_in_client(&args.run, &target).await?;
        api::prepare(&client, &args.api).await?;
        let mut run = Run::start(args.run.duration);
        let events_args = EventsArgs {
            run: args.run.clone(),
            load: args.events.clone(),
        };
        let started_events = if args.without_events {
            run.notes.push("events left out (--without-events)".into());
            None
        } else {
            Some(events::start_events(&events_args, &target, &client, &mut run).await?)
        };
        let api_run = RunArgs {
            rate: args.api_rate,
            ..args.run.clone()
        };
        let sent = api::send(client, &api_run, &args.api, &run.recorder).await;
        let api_rate = args
            .api_rate
            .map_or("as fast as answered".to_owned(), |rate| format!("{rate}/s"));
        run.notes.push(format!(
            "{sent} API requests ({api_rate}) over {} keys, mix {}",
            args.api.keys, args.api.mix
        ));
        if let Some((stop_listening, producing)) = started_events {
            let sent = producing.await.context("the sending task panicked")??;
            events::drain(&run.recorder, args.events.drain).await;
            let _ = stop_listening.send(true);
            run.notes.push(sent);
        }
        Ok(run.finish("mixed", &args.run))
    })
}
