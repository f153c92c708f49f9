//! Checks of a parsed pipeline: names, inputs, cycles and what each input can provide.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use pulse_core::{ColumnType, EventKind, RowSchema};

use super::{GeneratorProfile, OperatorConfig, PipelineConfig, SinkConfig, SourceConfig, components};
use crate::operators::InputShape;

/// A problem found in a parsed pipeline, at a key path such as
/// `["operators", "w", "inputs", "1"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Key path of the offending value.
    pub path: Vec<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
}

/// A problem at `path` saying `message`, with `help` on how to fix it.
pub(crate) fn problem(path: &[&str], message: String, help: impl Into<Option<String>>) -> Problem {
    Problem {
        path: path.iter().map(|s| s.to_string()).collect(),
        message,
        help: help.into(),
    }
}

/// What a stream carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamType {
    /// Events of these kinds.
    Events(BTreeSet<EventKind>),
    /// Rows of an operator, of this schema.
    Rows(Arc<RowSchema>),
    /// Dead letters of a source.
    DeadLetters,
    /// A component that did not read: could be anything.
    Unknown,
}

impl StreamType {
    /// What it carries, in words.
    pub fn describe(&self) -> &'static str {
        match self {
            StreamType::Events(_) => "events",
            StreamType::Rows(_) => "rows",
            StreamType::DeadLetters => "dead letters",
            StreamType::Unknown => "something unknown",
        }
    }
}

/// The streams a pipeline offers, by the name an `inputs` entry uses: what
/// each source's outputs carry, and each operator's row schema as its check
/// declares it (problems aside; an operator whose check finds its schema
/// unknown, or that is part of a cycle, offers [`StreamType::Unknown`]).
pub fn streams(config: &PipelineConfig) -> BTreeMap<String, StreamType> {
    checked_streams(config, &components::Unparsed::default(), &mut Vec::new())
}

/// [`streams`], with the operators' problems added to `problems` and the
/// outputs of the components that did not read (`unparsed`) unknown.
fn checked_streams(
    config: &PipelineConfig,
    unparsed: &components::Unparsed,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, StreamType> {
    let mut streams = BTreeMap::new();
    for (name, source) in &config.sources {
        let kinds: BTreeSet<EventKind> = match source {
            SourceConfig::Generator { profile, .. } => match profile {
                GeneratorProfile::Sensors => [EventKind::Metric].into(),
                GeneratorProfile::K8s => EventKind::ALL.into_iter().collect(),
            },
            SourceConfig::File { kinds, .. } | SourceConfig::Kafka { kinds, .. } | SourceConfig::Http { kinds, .. } => {
                kinds.iter().copied().collect()
            }
        };
        streams.insert(name.clone(), StreamType::Events(kinds.clone()));
        streams.insert(format!("{name}.late"), StreamType::Events(kinds));
        streams.insert(format!("{name}.dead_letter"), StreamType::DeadLetters);
    }
    for name in &unparsed.names {
        streams.insert(name.clone(), StreamType::Unknown);
        streams.insert(format!("{name}.late"), StreamType::Unknown);
        streams.insert(format!("{name}.dead_letter"), StreamType::Unknown);
    }
    // Operators in an order where each comes after the operators it reads.
    // Those left over form cycles (reported by `check_cycles`): what they
    // emit cannot be known, but their own settings are still checked.
    let mut pending: Vec<&String> = config.operators.keys().collect();
    while !pending.is_empty() {
        let ready = pending.iter().position(|name| {
            config.operators[*name]
                .inputs()
                .iter()
                .all(|input| !config.operators.contains_key(input) || streams.contains_key(input))
        });
        let name = match ready {
            Some(ready) => pending.remove(ready),
            None => {
                for name in &pending {
                    streams.insert((*name).clone(), StreamType::Unknown);
                }
                pending.remove(0)
            }
        };
        let operator = config.operators[name].operator();
        let inputs: Vec<InputShape<'_>> = operator
            .inputs()
            .iter()
            .enumerate()
            .filter_map(|(position, input)| {
                Some(InputShape {
                    position,
                    name: input,
                    stream: streams.get(input)?,
                })
            })
            .collect();
        let schema = operator.check(name, &config.engine, &inputs, problems);
        if !matches!(streams.get(name), Some(StreamType::Unknown)) {
            let stream = schema.map_or(StreamType::Unknown, |schema| StreamType::Rows(Arc::new(schema)));
            streams.insert(name.clone(), stream);
        }
        if operator.refuses_input() {
            streams.insert(format!("{name}.dead_letter"), StreamType::DeadLetters);
        }
    }
    streams
}

/// Every problem in `config`, in no particular order (the caller sorts by place).
///
/// `unparsed` names the components of the file that did not read (and so are
/// missing from `config`; [`components::GATEWAY`] for the gateway): what only
/// follows from their absence is not reported again, while their `inputs`
/// are still checked.
pub fn validate(config: &PipelineConfig, unparsed: &components::Unparsed) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_engine(config, &mut problems);
    check_names(config, &mut problems);
    if let Some(ml) = &config.ml
        && let Err(message) = crate::ml_service::check_models_dir(&ml.registry_dir())
    {
        problems.push(problem(
            &["ml", "models_dir"],
            message,
            "point it at a directory (it is created when a model is trained)".to_owned(),
        ));
    }
    let streams = checked_streams(config, unparsed, &mut problems);
    for (name, source) in &config.sources {
        check_source(name, source, &mut problems);
    }
    if !unparsed.names.contains(components::GATEWAY) {
        check_http_sources(config, &mut problems);
    }
    for (name, operator) in &config.operators {
        check_inputs("operators", name, operator.inputs(), &streams, &mut problems);
    }
    for (name, sink) in &config.sinks {
        check_inputs("sinks", name, sink.inputs(), &streams, &mut problems);
        if !unparsed.names.contains(components::GATEWAY) {
            check_live_sink(config, name, sink, &streams, &mut problems);
        }
        check_kafka_sink(name, sink, &mut problems);
        match sink {
            SinkConfig::Clickhouse(clickhouse) => clickhouse.check(config, name, &mut problems),
            SinkConfig::Redis(redis) => redis.check(config, name, &mut problems),
            SinkConfig::Parquet(parquet) => parquet.check(config, name, &mut problems),
            SinkConfig::Graph(graph) => graph.check(config, name, &mut problems),
            _ => {}
        }
        if let SinkConfig::File { max_bytes: Some(0), .. } = sink {
            problems.push(problem(
                &["sinks", name, "max_bytes"],
                "`max_bytes = 0` would rotate the file before every batch".into(),
                "give a size in bytes, e.g. max_bytes = 50_000_000, or remove it for no cap".to_owned(),
            ));
        }
    }
    for (section, name, inputs) in &unparsed.inputs {
        check_inputs(section, name, inputs, &streams, &mut problems);
    }
    check_cycles(config, &mut problems);
    if !unparsed.names.is_empty() {
        return problems;
    }
    if config.sources.is_empty() {
        problems.push(problem(
            &[],
            "the pipeline has no sources".into(),
            "add one, e.g. [sources.events] with type = \"file\"".to_owned(),
        ));
    }
    if config.sinks.is_empty() {
        problems.push(problem(
            &[],
            "the pipeline has no sinks, so it would compute nothing visible".into(),
            "add one, e.g. [sinks.out] with type = \"stdout\" and inputs = [...]".to_owned(),
        ));
    }
    problems
}

/// A websocket sink publishes through the gateway, and only rows of windows
/// (rows with `window_start` and `window_end` times), of anomaly, forecast and
/// onnx operators, and the live answer of incidents operators.
fn check_live_sink(
    config: &PipelineConfig,
    name: &str,
    sink: &SinkConfig,
    streams: &BTreeMap<String, StreamType>,
    problems: &mut Vec<Problem>,
) {
    let SinkConfig::Websocket { inputs } = sink else { return };
    if config.gateway.is_none() {
        problems.push(problem(
            &["sinks", name, "type"],
            "a websocket sink publishes through the gateway, and the pipeline has none".into(),
            "add a [gateway] table, e.g. listen = \"127.0.0.1:8080\"".to_owned(),
        ));
    }
    let windowed = |schema: &RowSchema| {
        ["window_start", "window_end"]
            .iter()
            .all(|bound| schema.column(bound).is_some_and(|(_, c)| c.ty == ColumnType::Time))
    };
    for (i, input) in inputs.iter().enumerate() {
        // Anomaly, forecast and onnx rows go to their own topics (and views).
        let analytics = matches!(
            config
                .operators
                .get(input)
                .map(|operator| operator.producer(&config.operators)),
            Some(OperatorConfig::Anomaly(_) | OperatorConfig::Forecast(_) | OperatorConfig::Onnx(_))
        );
        // Incidents go to their own topic, from the operator itself (not through a filter).
        let incidents = matches!(config.operators.get(input), Some(OperatorConfig::Incidents(_)));
        let publishable = match streams.get(input) {
            Some(StreamType::Rows(_)) if analytics || incidents => true,
            Some(StreamType::Rows(schema)) => windowed(schema),
            Some(StreamType::Unknown) | None => true,
            Some(_) => false,
        };
        if !publishable {
            problems.push(problem(
                &["sinks", name, "inputs", &i.to_string()],
                format!(
                    "`{input}` is not a window, anomaly, forecast, onnx or incidents operator; a websocket sink publishes their rows"
                ),
                "name a window, anomaly, forecast, onnx or incidents operator".to_owned(),
            ));
        }
    }
}

/// An `http` source is fed by the pipeline's gateway, which has one ingest
/// endpoint: there must be a gateway, and one such source at most.
fn check_http_sources(config: &PipelineConfig, problems: &mut Vec<Problem>) {
    let http: Vec<&String> = config
        .sources
        .iter()
        .filter(|(_, source)| matches!(source, SourceConfig::Http { .. }))
        .map(|(name, _)| name)
        .collect();
    for name in &http {
        if config.gateway.is_none() {
            problems.push(problem(
                &["sources", name, "type"],
                "an http source reads what the gateway's POST /api/v1/events accepts, and the pipeline has no gateway"
                    .into(),
                "add a [gateway] table, e.g. listen = \"127.0.0.1:8080\"".to_owned(),
            ));
        }
    }
    for name in http.iter().skip(1) {
        problems.push(problem(
            &["sources", name, "type"],
            format!(
                "`{name}` is a second http source; the gateway has one ingest endpoint, which feeds `{}`",
                http[0]
            ),
            "keep one http source; several operators may read it".to_owned(),
        ));
    }
}

/// Every input of a Kafka sink goes to a topic, and `topics` names inputs only.
fn check_kafka_sink(name: &str, sink: &SinkConfig, problems: &mut Vec<Problem>) {
    let SinkConfig::Kafka {
        inputs,
        topic,
        topics,
        retry,
        breaker,
        ..
    } = sink
    else {
        return;
    };
    retry.check(name, problems);
    breaker.check(name, problems);
    if topic.is_none() {
        for input in inputs.iter().filter(|input| !topics.contains_key(*input)) {
            problems.push(problem(
                &["sinks", name, "inputs"],
                format!("input `{input}` has no topic to go to"),
                format!("set `topic` (for every input), or name it in `topics`, e.g. topics = {{ \"{input}\" = \"streaming-metrics\" }}"),
            ));
        }
    }
    for input in topics.keys().filter(|key| !inputs.contains(key)) {
        problems.push(problem(
            &["sinks", name, "topics", input],
            format!("`{input}` in `topics` is not an input of this sink"),
            "add it to `inputs`, or remove it from `topics`".to_owned(),
        ));
    }
}

fn check_engine(config: &PipelineConfig, problems: &mut Vec<Problem>) {
    if config.engine.workers == 0 {
        problems.push(problem(
            &["engine", "workers"],
            "`workers` must be at least 1".into(),
            "set `workers = 1` or more".to_owned(),
        ));
    }
    if config.engine.granule.as_millis() == 0 {
        problems.push(problem(
            &["engine", "granule"],
            "`granule` must be greater than 0".into(),
            "the default is \"100ms\"".to_owned(),
        ));
    }
    if let Some(cluster) = &config.engine.cluster {
        problems.extend(crate::cluster::check_config(cluster));
    }
}

fn check_names(config: &PipelineConfig, problems: &mut Vec<Problem>) {
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    let sections = [
        ("sources", config.sources.keys().collect::<Vec<_>>()),
        ("operators", config.operators.keys().collect()),
        ("sinks", config.sinks.keys().collect()),
    ];
    for (section, names) in sections {
        for name in names {
            if name.is_empty() || name.contains('.') || name.contains(char::is_whitespace) {
                problems.push(problem(
                    &[section, name],
                    format!("component name {name:?} is not allowed"),
                    "use letters, digits, `_` and `-` (a `.` separates a source from its side output)".to_owned(),
                ));
            }
            if let Some(other) = seen.insert(name, section) {
                problems.push(problem(
                    &[section, name],
                    format!("`{name}` is defined both in [{other}] and in [{section}]"),
                    "give every component a unique name".to_owned(),
                ));
            }
        }
    }
}

fn check_source(name: &str, source: &SourceConfig, problems: &mut Vec<Problem>) {
    match source {
        SourceConfig::Generator {
            profile: GeneratorProfile::Sensors,
            sensors,
            ..
        } => {
            if let Err(message) = sensors.validate() {
                problems.push(problem(&["sources", name, "sensors"], message, None));
            }
        }
        SourceConfig::Generator {
            profile: GeneratorProfile::K8s,
            k8s,
            speed,
            events,
            ..
        } => {
            let settings = pulse_connectors::generator::k8s_live::K8sLiveSettings {
                scenario: k8s.clone(),
                speed: *speed,
                events: *events,
                start: 0,
            };
            if let Err(message) = settings.validate() {
                let key = if message.starts_with("`speed`") { "speed" } else { "k8s" };
                problems.push(problem(&["sources", name, key], message, None));
            }
        }
        SourceConfig::File { kinds, .. } => check_kinds(name, kinds, problems),
        SourceConfig::Http {
            kinds, queue_capacity, ..
        } => {
            check_kinds(name, kinds, problems);
            if *queue_capacity == 0 {
                problems.push(problem(
                    &["sources", name, "queue_capacity"],
                    "`queue_capacity = 0` would refuse every request".into(),
                    "give the number of events the queue holds, e.g. queue_capacity = 100_000".to_owned(),
                ));
            }
        }
        SourceConfig::Kafka {
            topics,
            topic_pattern,
            kinds,
            ..
        } => {
            check_kinds(name, kinds, problems);
            if topics.is_empty() && topic_pattern.is_none() {
                problems.push(problem(
                    &["sources", name],
                    format!("Kafka source `{name}` reads no topic"),
                    "add `topics = [\"acme.events.normalized\"]` or `topic_pattern = \"^.*\\\\.events\\\\.normalized$\"`".to_owned(),
                ));
            }
            if let Some(Err(error)) = topic_pattern.as_deref().map(pulse_connectors::kafka::check_pattern) {
                problems.push(problem(
                    &["sources", name, "topic_pattern"],
                    format!("`topic_pattern` is not a valid regular expression: {error}"),
                    "write a regular expression, e.g. \"^.*\\\\.events\\\\.normalized$\"".to_owned(),
                ));
            }
        }
    }
}

fn check_kinds(name: &str, kinds: &[EventKind], problems: &mut Vec<Problem>) {
    if kinds.is_empty() {
        problems.push(problem(
            &["sources", name, "kinds"],
            "`kinds` is empty, so no event could be read".into(),
            "list the kinds the input holds, e.g. [\"metric\"], or remove the key".to_owned(),
        ));
    }
}

fn check_inputs(
    section: &str,
    name: &str,
    inputs: &[String],
    streams: &BTreeMap<String, StreamType>,
    problems: &mut Vec<Problem>,
) {
    if inputs.is_empty() {
        problems.push(problem(
            &[section, name, "inputs"],
            format!("`{name}` has no inputs"),
            "name at least one source or operator".to_owned(),
        ));
    }
    for (i, input) in inputs.iter().enumerate() {
        if input == name {
            problems.push(problem(
                &[section, name, "inputs", &i.to_string()],
                format!("`{name}` reads itself"),
                "a component cannot be its own input".to_owned(),
            ));
        } else if !streams.contains_key(input) {
            let hint = match closest(input, streams.keys()) {
                Some(candidate) => format!(
                    "did you mean `{candidate}`? Inputs name a source or operator, or a source's `.late` / `.dead_letter` output"
                ),
                None => "inputs name a source or operator, or a source's `.late` / `.dead_letter` output".to_owned(),
            };
            problems.push(problem(
                &[section, name, "inputs", &i.to_string()],
                format!("input `{input}` names nothing in this pipeline"),
                hint,
            ));
        }
    }
}

/// Operators that feed each other in a loop never start: report each cycle once.
fn check_cycles(config: &PipelineConfig, problems: &mut Vec<Problem>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        config: &'a PipelineConfig,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        problems: &mut Vec<Problem>,
    ) {
        match marks.get(node) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                let from = stack.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<&str> = stack[from..].to_vec();
                cycle.push(node);
                problems.push(problem(
                    &["operators", node, "inputs"],
                    format!("the operators form a cycle: {}", cycle.join(" → ")),
                    "break the loop: an operator cannot (indirectly) read its own output".to_owned(),
                ));
                return;
            }
            None => {}
        }
        let Some(operator) = config.operators.get(node) else {
            return;
        };
        marks.insert(node, Mark::Visiting);
        stack.push(node);
        for input in operator.inputs() {
            if config.operators.contains_key(input.as_str()) && input != node {
                visit(input, config, marks, stack, problems);
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    for name in config.operators.keys() {
        visit(name, config, &mut marks, &mut Vec::new(), problems);
    }
}

/// The candidate closest to `word` by edit distance, if reasonably close.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb)).min(row[j] + 1).min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
