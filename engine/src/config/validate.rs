//! Checks of a parsed pipeline: names, inputs, cycles and what each input can provide.

use std::collections::{BTreeMap, BTreeSet};

use pulse_core::EventKind;

use super::{OperatorConfig, PipelineConfig, SinkConfig, SourceConfig, components};

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

fn problem(path: &[&str], message: String, help: impl Into<Option<String>>) -> Problem {
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
    /// Rows of a window operator.
    WindowRows,
    /// Dead letters of a source.
    DeadLetters,
    /// A component that did not read: could be anything.
    Unknown,
}

impl StreamType {
    fn describe(&self) -> &'static str {
        match self {
            StreamType::Events(_) => "events",
            StreamType::WindowRows => "window rows",
            StreamType::DeadLetters => "dead letters",
            StreamType::Unknown => "something unknown",
        }
    }
}

/// The streams a pipeline offers, by the name an `inputs` entry uses.
pub fn streams(config: &PipelineConfig) -> BTreeMap<String, StreamType> {
    let mut streams = BTreeMap::new();
    for (name, source) in &config.sources {
        let kinds: BTreeSet<EventKind> = match source {
            SourceConfig::Generator { .. } => [EventKind::Metric].into(),
            SourceConfig::File { kinds, .. } | SourceConfig::Kafka { kinds, .. } => kinds.iter().copied().collect(),
        };
        streams.insert(name.clone(), StreamType::Events(kinds.clone()));
        streams.insert(format!("{name}.late"), StreamType::Events(kinds));
        streams.insert(format!("{name}.dead_letter"), StreamType::DeadLetters);
    }
    for (name, operator) in &config.operators {
        match operator {
            OperatorConfig::Window { .. } => streams.insert(name.clone(), StreamType::WindowRows),
        };
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
    let mut streams = streams(config);
    for name in &unparsed.names {
        streams.insert(name.clone(), StreamType::Unknown);
        streams.insert(format!("{name}.late"), StreamType::Unknown);
        streams.insert(format!("{name}.dead_letter"), StreamType::Unknown);
    }
    for (name, source) in &config.sources {
        check_source(name, source, &mut problems);
    }
    for (name, operator) in &config.operators {
        check_inputs("operators", name, operator.inputs(), &streams, &mut problems);
        check_operator(config, name, operator, &streams, &mut problems);
    }
    for (name, sink) in &config.sinks {
        check_inputs("sinks", name, sink.inputs(), &streams, &mut problems);
        if !unparsed.names.contains(components::GATEWAY) {
            check_live_sink(config, name, sink, &streams, &mut problems);
        }
        check_kafka_sink(name, sink, &mut problems);
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

/// A websocket sink publishes through the gateway, and only window rows.
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
    for (i, input) in inputs.iter().enumerate() {
        if streams
            .get(input)
            .is_some_and(|t| !matches!(t, StreamType::WindowRows | StreamType::Unknown))
        {
            problems.push(problem(
                &["sinks", name, "inputs", &i.to_string()],
                format!("`{input}` is not a window operator; a websocket sink publishes window rows"),
                "name a window operator".to_owned(),
            ));
        }
    }
}

/// Every input of a Kafka sink goes to a topic, and `topics` names inputs only.
fn check_kafka_sink(name: &str, sink: &SinkConfig, problems: &mut Vec<Problem>) {
    let SinkConfig::Kafka {
        inputs, topic, topics, ..
    } = sink
    else {
        return;
    };
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
        SourceConfig::Generator { sensors, .. } => {
            if let Err(message) = sensors.validate() {
                problems.push(problem(&["sources", name, "sensors"], message, None));
            }
        }
        SourceConfig::File { kinds, .. } => check_kinds(name, kinds, problems),
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

fn check_operator(
    config: &PipelineConfig,
    name: &str,
    operator: &OperatorConfig,
    streams: &BTreeMap<String, StreamType>,
    problems: &mut Vec<Problem>,
) {
    let OperatorConfig::Window {
        inputs,
        window,
        key,
        aggregates,
    } = operator;
    if let Err(message) = window.check_granule(config.engine.granule.as_millis().max(1)) {
        problems.push(problem(
            &["operators", name, "window"],
            message,
            "change the window, or `granule` in [engine]".to_owned(),
        ));
    }
    let mut kinds = BTreeSet::new();
    for (i, input) in inputs.iter().enumerate() {
        match streams.get(input) {
            Some(StreamType::Events(of_input)) => kinds.extend(of_input.iter().copied()),
            Some(StreamType::Unknown) | None => {}
            Some(other) => problems.push(problem(
                &["operators", name, "inputs", &i.to_string()],
                format!("`{input}` produces {}, but a window reads events", other.describe()),
                "read a source (or a source's `.late` output)".to_owned(),
            )),
        }
    }
    if aggregates.is_empty() {
        problems.push(problem(
            &["operators", name, "aggregates"],
            "`aggregates` is empty".into(),
            "list at least one, e.g. [\"count\", \"avg\"]".to_owned(),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, aggregate) in aggregates.iter().enumerate() {
        let path = ["operators", name, "aggregates", &i.to_string()];
        if !seen.insert(aggregate.to_string()) {
            problems.push(problem(
                &path,
                format!("aggregate `{aggregate}` is listed twice"),
                "remove the repetition".to_owned(),
            ));
        }
        if aggregate.needs_value() && !kinds.is_empty() && !kinds.contains(&EventKind::Metric) {
            let have: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            problems.push(problem(
                &path,
                format!("aggregate `{aggregate}` needs the numeric `value` of metric events, but the inputs of `{name}` carry only {} events", have.join(", ")),
                "remove it (only `count` works without values), or read a stream of metric events".to_owned(),
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for (i, field) in key.iter().enumerate() {
        let path = ["operators", name, "key", &i.to_string()];
        if !seen.insert(field.to_string()) {
            problems.push(problem(
                &path,
                format!("key field `{field}` is listed twice"),
                "remove the repetition".to_owned(),
            ));
        }
        if !kinds.is_empty() && !field.kinds().iter().any(|k| kinds.contains(k)) {
            let carriers: Vec<&str> = field.kinds().iter().map(|k| k.as_str()).collect();
            problems.push(problem(
                &path,
                format!(
                    "no event the inputs of `{name}` carry has the field `{field}` (only {} events do)",
                    carriers.join(", ")
                ),
                "group by a field these events have, e.g. tenant or source".to_owned(),
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
