//! Dataflow tests of the incident operator: a late cause re-ranks by
//! retraction and insertion; bad input is counted and never duplicates an incident.

use std::sync::Arc;

use pulse_core::{Event, EventTime};
use timely::dataflow::InputHandle;
use timely::dataflow::operators::capture::{Capture, Extract};
use timely::dataflow::operators::{Input, Probe};

use super::{IncidentCounters, IncidentReport, IncidentsConfig, IncidentsExt, Reach};

const T0: EventTime = 1_700_000_000_000;

fn topology(ts: EventTime, from: (&str, &str), relation: &str, to: (&str, &str), op: &str) -> Event {
    let ns = |kind: &str| if kind == "Node" { "" } else { "prod" };
    let text = format!(
        r#"{{"ts":{ts},"tenant":"acme","source":"w","kind":"topology","from":{{"kind":"{}","namespace":"{}","name":"{}"}},"to":{{"kind":"{}","namespace":"{}","name":"{}"}},"relation":"{relation}","op":"{op}"}}"#,
        from.0,
        ns(from.0),
        from.1,
        to.0,
        ns(to.0),
        to.1
    );
    Event::from_json(text.as_bytes()).unwrap()
}

fn k8s(ts: EventTime, kind: &str, name: &str, reason: &str, severity: &str) -> Event {
    let namespace = if kind == "Node" { "" } else { "prod" };
    let text = format!(
        r#"{{"ts":{ts},"tenant":"acme","source":"kubelet","kind":"k8s_event","resource":{{"kind":"{kind}","namespace":"{namespace}","name":"{name}"}},"reason":"{reason}","severity":"{severity}","message":"m"}}"#
    );
    Event::from_json(text.as_bytes()).unwrap()
}

fn log(ts: EventTime, pod: &str, level: &str, message: &str) -> Event {
    let text = format!(
        r#"{{"ts":{ts},"tenant":"acme","source":"vector","kind":"log","resource":{{"kind":"Pod","namespace":"prod","name":"{pod}"}},"level":"{level}","message":"{message}"}}"#
    );
    Event::from_json(text.as_bytes()).unwrap()
}

fn metric(ts: EventTime, pod: &str, metric: &str, value: f64) -> Event {
    let text = format!(
        r#"{{"ts":{ts},"tenant":"acme","source":"prometheus","kind":"metric","metric":"{metric}","value":{value},"labels":{{"pod":"{pod}","namespace":"prod"}}}}"#
    );
    Event::from_json(text.as_bytes()).unwrap()
}

/// A web → db call graph, each with one pod on its own node.
fn cluster() -> Vec<Event> {
    vec![
        topology(T0, ("Service", "web"), "SELECTS", ("Pod", "web-1"), "upsert"),
        topology(T0, ("Service", "db"), "SELECTS", ("Pod", "db-1"), "upsert"),
        topology(T0, ("Service", "web"), "CALLS", ("Service", "db"), "upsert"),
        topology(T0, ("Pod", "web-1"), "RUNS_ON", ("Node", "n1"), "upsert"),
        topology(T0, ("Pod", "db-1"), "RUNS_ON", ("Node", "n2"), "upsert"),
    ]
}

/// Feeds `rounds` of events, each round at its own later time (the events keep
/// their own `ts`), and returns every update of the incident collection with its time.
fn run(rounds: Vec<Vec<Event>>) -> (Vec<(IncidentReport, EventTime, isize)>, Arc<IncidentCounters>) {
    let counters = Arc::new(IncidentCounters::default());
    let shared = Arc::clone(&counters);
    let captured = timely::execute_directly(move |worker| {
        let mut input = InputHandle::new();
        let (captured, probe) = worker.dataflow(|scope| {
            let reports = scope
                .input_from(&mut input)
                .incidents("test", &IncidentsConfig::default(), &shared);
            let (probe, inner) = reports.inner.probe();
            (inner.capture(), probe)
        });
        for (round, events) in rounds.into_iter().enumerate() {
            let time = T0 + 60_000 * (round as u64 + 1);
            input.advance_to(time.max(*input.time()));
            for event in events {
                input.send(event);
            }
            input.advance_to(time + 1);
            while probe.less_than(input.time()) {
                worker.step();
            }
        }
        input.close();
        while worker.step() {}
        captured
    });
    let updates = captured.extract().into_iter().flat_map(|(_, batch)| batch).collect();
    (updates, counters)
}

#[test]
fn a_late_cause_re_ranks_by_retraction_and_insertion() {
    let mut first = cluster();
    first.push(log(T0 + 30_000, "web-1", "error", "timeout calling db"));
    // The OOM kill behind it happened before, but its event arrives a round later.
    let late = vec![k8s(T0 + 20_000, "Pod", "db-1", "OOMKilled", "warning")];
    let (updates, _) = run(vec![first, late]);
    let open_rankings: Vec<&(IncidentReport, EventTime, isize)> = updates
        .iter()
        .filter(|(report, _, _)| report.closed_at.is_none())
        .collect();
    let before = open_rankings
        .iter()
        .find(|(report, _, diff)| *diff > 0 && report.causes.iter().all(|c| c.reason != "OOMKilled"))
        .expect("a ranking before the late cause");
    let retracted = open_rankings
        .iter()
        .any(|(report, time, diff)| *diff < 0 && report == &before.0 && *time > before.1);
    assert!(retracted, "the first ranking is retracted: {updates:#?}");
    let after = open_rankings
        .iter()
        .find(|(_, time, diff)| *diff > 0 && *time > before.1)
        .expect("a new ranking after the late cause");
    assert_eq!(after.0.incident_id, before.0.incident_id, "the same incident");
    assert_eq!(after.0.causes[0].resource.name, "db-1");
    assert_eq!(after.0.causes[0].reason, "OOMKilled");
}

#[test]
fn bad_input_is_counted_and_never_duplicates_an_incident() {
    let mut events = cluster();
    events.extend([
        // A delete of an edge never seen, and a repeated upsert.
        topology(T0 + 1_000, ("Pod", "ghost"), "RUNS_ON", ("Node", "n9"), "delete"),
        topology(T0 + 1_000, ("Service", "web"), "CALLS", ("Service", "db"), "upsert"),
        // The same error twice, and an error about a resource no edge touches.
        log(T0 + 30_000, "db-1", "error", "disk full"),
        log(T0 + 30_000, "db-1", "error", "disk full"),
        log(T0 + 31_000, "stranger", "error", "who am I"),
    ]);
    // Seconds out of order.
    events.push(log(T0 + 25_000, "web-1", "error", "timeout calling db"));
    let (updates, counters) = run(vec![events]);
    let get = IncidentCounters::get;
    assert_eq!(get(&counters.unknown_deletes), 1);
    assert_eq!(get(&counters.repeated_upserts), 1);
    assert_eq!(get(&counters.duplicates), 1);
    assert_eq!(get(&counters.unknown_resources), 1);
    // At the end, after retention, nothing is left; at the close, one incident
    // for db and web (related by the call), one for the stranger.
    let mut closed: Vec<&IncidentReport> = updates
        .iter()
        .filter(|(report, _, diff)| *diff > 0 && report.closed_at.is_some())
        .map(|(report, _, _)| report)
        .collect();
    closed.sort_by_key(|report| report.incident_id.clone());
    closed.dedup_by_key(|report| report.incident_id.clone());
    assert_eq!(closed.len(), 2, "{closed:#?}");
    let net: isize = updates.iter().map(|(_, _, diff)| diff).sum();
    assert_eq!(net, 0, "everything expires once retention has passed");
}

#[test]
fn a_latency_onset_opens_an_incident_that_later_errors_join() {
    let mut events = cluster();
    // db-1's latency: usual for 5 min, then far above it for 4 min; no error
    // anywhere until web-1 (its caller) logs one 150 s into the rise, longer
    // after the onset than the quiet period: the rise keeps the incident open.
    for i in 0..36u64 {
        let value = if i < 20 { 100.0 + (i % 3) as f64 } else { 900.0 };
        events.push(metric(T0 + 1_000 + i * 15_000, "db-1", "latency_p99_ms", value));
    }
    let onset = T0 + 1_000 + 20 * 15_000;
    events.push(log(onset + 150_000, "web-1", "error", "timeout calling db"));
    // web-1's latency jumps for one sample only: not sustained, no incident.
    for i in 0..30u64 {
        let value = if i == 25 { 900.0 } else { 100.0 + (i % 3) as f64 };
        events.push(metric(T0 + 2_000 + i * 15_000, "web-1", "latency_p99_ms", value));
    }
    let (updates, counters) = run(vec![events]);
    let mut closed: Vec<&IncidentReport> = updates
        .iter()
        .filter(|(report, _, diff)| *diff > 0 && report.closed_at.is_some())
        .map(|(report, _, _)| report)
        .collect();
    closed.dedup_by_key(|report| report.incident_id.clone());
    assert_eq!(closed.len(), 1, "one incident, not one per signal: {closed:#?}");
    let incident = closed[0];
    assert_eq!(incident.opened_at, onset, "opened by the latency onset");
    assert_eq!(incident.symptom.name, "db-1");
    assert_eq!(incident.symptom_reason, "latency_p99_ms");
    assert_eq!(incident.causes[0].resource.name, "db-1", "{:#?}", incident.causes);
    assert_eq!(IncidentCounters::get(&counters.opened), 1);
}

#[test]
fn reach_counts_each_member_once_at_its_nearest_and_never_as_a_caller() {
    // Member 1 (the opener) reaches the resource in 1 and 3 steps, member 2 in
    // 2 steps, member 3 only as its callee (a caller of member 3 is not
    // explained by it).
    let walks = [(1, 1, 1), (1, 3, 0), (2, 2, 1), (3, 2, -1)];
    let reach = Reach::of(&walks, 1);
    assert_eq!(reach.hops, 1);
    assert_eq!((reach.deepest, reach.shallowest), (1, -1));
    assert_eq!(reach.members_at, [0, 1, 1, 0]);
    assert!(reach.from_opener);
    assert!(!Reach::of(&walks, 3).from_opener, "the opener below it does not count");
}
