//! Pipeline validation: every class of mistake in a pipeline file is refused
//! with an error that names the file, the exact line and column, what is wrong
//! and how to fix it — checked both on the structured error
//! (`ConfigError.problems[i].place`) and on the rendered text a user sees.
//! Also the `pulse validate` command, and that every shipped pipeline validates.

mod common;

use std::path::Path;
use std::process::Command;

use pulse::config::diagnostic::Located;
use pulse::config::{SinkConfig, SourceConfig};
use pulse::{ConfigError, Pipeline};

/// The name errors are reported against (the text is never read from disk).
const FILE: &str = "pipelines/broken.toml";

/// A valid pipeline that the tests below break one way each.
const VALID: &str = r#"[sources.events]
type = "file"
path = "events.jsonl"
max_out_of_orderness = "2s"

[operators.cpu_10s]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }
key = ["tenant", "metric"]
aggregates = ["count", "avg"]

[sinks.out]
type = "file"
inputs = ["cpu_10s"]
path = "out.jsonl"
"#;

/// `VALID` with the line `from` (exactly, once) replaced by `to` (may span lines).
fn broken(from: &str, to: &str) -> String {
    assert_eq!(VALID.matches(from).count(), 1, "{from:?} must occur once in VALID");
    VALID.replacen(from, to, 1)
}

/// Parses `text` with `vars` as the environment, expecting it to be refused.
fn refused_with(text: &str, vars: &[(&str, &str)]) -> ConfigError {
    match Pipeline::parse(Path::new(FILE), text, &common::env_of(vars)) {
        Ok(pipeline) => panic!("accepted a broken pipeline:\n{text}\nparsed as {:#?}", pipeline.config),
        Err(error) => error,
    }
}

fn refused(text: &str) -> ConfigError {
    refused_with(text, &[])
}

/// What one reported problem must say, and where.
struct Expected<'a> {
    line: usize,
    column: usize,
    /// A part of the message that identifies the problem.
    message: &'a str,
    /// A part of the help (or of the message, for errors whose message says the fix).
    help: &'a str,
}

/// Finds the problem whose message contains `expected.message` and checks its
/// place, its help and its rendering; returns it for further checks.
fn assert_reported<'e>(error: &'e ConfigError, text: &str, expected: Expected<'_>) -> &'e Located {
    let rendered = error.to_string();
    let Some(problem) = error
        .problems
        .iter()
        .find(|p| p.diagnostic.message.contains(expected.message))
    else {
        panic!(
            "no problem mentions {:?}; the errors were:\n{rendered}",
            expected.message
        );
    };
    let (line, column, line_text, _width) = problem
        .place
        .clone()
        .unwrap_or_else(|| panic!("{:?} has no place in the file:\n{rendered}", problem.diagnostic.message));
    assert_eq!(
        (line, column),
        (expected.line, expected.column),
        "wrong place for {:?}:\n{rendered}",
        problem.diagnostic.message
    );
    assert_eq!(
        line_text,
        text.lines().nth(line - 1).expect("the line exists"),
        "the quoted line must be line {line} of the file"
    );
    let help = problem.diagnostic.help.as_deref().unwrap_or("");
    assert!(
        help.contains(expected.help) || problem.diagnostic.message.contains(expected.help),
        "the fix {:?} is not in the message or help of:\n{rendered}",
        expected.help
    );

    // The rendered block of this problem: from its `error:` line to the blank line after it.
    let header = format!("error: {}", problem.diagnostic.message);
    let block = rendered
        .split("\n\n")
        .find(|block| block.starts_with(&header))
        .unwrap_or_else(|| panic!("no rendered block starts with {header:?}:\n{rendered}"));
    let location = format!("--> {FILE}:{line}:{column}");
    assert!(block.contains(&location), "the rendering lacks {location:?}:\n{block}");
    assert!(
        block.contains(&format!("{line} | {line_text}")),
        "the rendering does not quote line {line}:\n{block}"
    );
    if !help.is_empty() {
        assert!(
            block.contains(&format!("= help: {help}")),
            "the rendering lacks the help:\n{block}"
        );
    }
    problem
}

#[test]
fn the_valid_pipeline_is_accepted() {
    let pipeline = Pipeline::parse(Path::new(FILE), VALID, &common::env_of(&[]))
        .unwrap_or_else(|e| panic!("the baseline must be valid:\n{e}"));
    assert_eq!(pipeline.config.operators.len(), 1);
}

#[test]
fn unknown_key_in_a_source_points_at_the_key() {
    let text = broken("max_out_of_orderness = \"2s\"\n", "max_out_of_order = \"2s\"\n");
    let error = refused(&text);
    let problem = assert_reported(
        &error,
        &text,
        Expected {
            line: 4,
            column: 1,
            message: "unknown field `max_out_of_order`",
            help: "remove `max_out_of_order`, or correct it to one of the keys listed",
        },
    );
    assert!(
        problem.diagnostic.message.contains("max_out_of_orderness"),
        "the message lists the keys allowed: {}",
        problem.diagnostic.message
    );
    // The caret covers the key, not the table header.
    assert_eq!(problem.place.as_ref().map(|p| p.3), Some("max_out_of_order".len()));
}

#[test]
fn unknown_key_in_an_operator_points_at_the_key() {
    // `allowed_lateness` is what the design sketch wrote; the help says where lateness is set.
    let text = broken(
        "key = [\"tenant\", \"metric\"]\n",
        "key = [\"tenant\", \"metric\"]\nallowed_lateness = \"2s\"\n",
    );
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 11,
            column: 1,
            message: "unknown field `allowed_lateness`",
            help: "set `max_out_of_orderness = \"2s\"` on the source",
        },
    );
}

#[test]
fn unknown_key_in_a_sink_points_at_the_key() {
    let text = broken("path = \"out.jsonl\"\n", "path = \"out.jsonl\"\n  apend = true\n");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 17,
            column: 3,
            message: "unknown field `apend`",
            help: "remove `apend`, or correct it to one of the keys listed",
        },
    );
}

/// Mistakes inside a source, operator or sink table are refused, naming the
/// offending key or value and the fix.
#[test]
fn mistakes_inside_component_tables_are_refused_with_what_is_wrong() {
    let cases = [
        (
            broken("max_out_of_orderness = \"2s\"\n", "max_out_of_order = \"2s\"\n"),
            "unknown field `max_out_of_order`",
            "remove `max_out_of_order`",
        ),
        (
            broken(
                "key = [\"tenant\", \"metric\"]\n",
                "key = [\"tenant\", \"metric\"]\nallowed_lateness = \"2s\"\n",
            ),
            "unknown field `allowed_lateness`",
            "set `max_out_of_orderness = \"2s\"` on the source",
        ),
        (
            broken("path = \"out.jsonl\"\n", "path = \"out.jsonl\"\napend = true\n"),
            "unknown field `apend`, expected one of `inputs`, `path`, `append`",
            "remove `apend`",
        ),
        (
            broken("{ tumbling = \"10s\" }", "{ tumbling = \"10x\" }"),
            "malformed duration \"10x\"",
            "e.g. \"10s\"",
        ),
        (
            broken("[\"count\", \"avg\"]", "[\"count\", \"median\"]"),
            "unknown aggregate \"median\"",
            "p1..p99",
        ),
    ];
    for (text, message, fix) in cases {
        let error = refused(&text);
        let rendered = error.to_string();
        assert_eq!(error.problems.len(), 1, "one mistake, one error:\n{rendered}");
        assert!(
            rendered.contains(&format!("--> {FILE}:")),
            "the file is named:\n{rendered}"
        );
        assert!(
            rendered.contains(&format!("error: {message}")),
            "{message:?} is said:\n{rendered}"
        );
        assert!(rendered.contains(fix), "the fix {fix:?} is given:\n{rendered}");
    }
}

#[test]
fn unknown_key_in_the_engine_table_points_at_the_key() {
    let text = format!("[engine]\ngranule = \"100ms\"\nworker = 2\n\n{VALID}");
    let error = refused(&text);
    let problem = assert_reported(
        &error,
        &text,
        Expected {
            line: 3,
            column: 1,
            message: "unknown field `worker`",
            help: "remove `worker`, or correct it to one of the keys listed",
        },
    );
    assert!(
        problem.diagnostic.message.contains("`workers`"),
        "the message lists the keys allowed: {}",
        problem.diagnostic.message
    );
    // The whole rendering, caret included: it marks the key, not the table header.
    let expected = "\
error: unknown field `worker`, expected one of `workers`, `granule`, `dead_letter_path`, `cluster`
 --> pipelines/broken.toml:3:1
  |
3 | worker = 2
  | ^^^^^^
  = help: remove `worker`, or correct it to one of the keys listed
pipelines/broken.toml: 1 error";
    assert_eq!(error.to_string(), expected);
}

#[test]
fn malformed_duration_in_the_engine_table_points_at_the_value() {
    let text = format!("[engine]\ngranule = \"10x\"\n\n{VALID}");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 2,
            column: 11,
            message: "malformed duration \"10x\": unknown unit",
            help: "write a number followed by a unit (ms, s, m, h, d), e.g. \"10s\"",
        },
    );
}

#[test]
fn unknown_key_in_a_window_shape_points_at_the_key() {
    let text = broken(
        "window = { tumbling = \"10s\" }",
        "window = { hopping = \"20s\", slid = \"10s\" }",
    );
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 9,
            column: 29,
            message: "unknown field `slid`",
            help: "remove `slid`, or correct it to one of the keys listed",
        },
    );
}

#[test]
fn unknown_type_points_at_the_value() {
    let text = broken("type = \"window\"", "type = \"windw\"");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 7,
            column: 8,
            message: "unknown variant `windw`, expected one of `window`, `anomaly`, `forecast`",
            help: "`windw` is not one of the choices listed",
        },
    );
}

#[test]
fn input_that_names_nothing_suggests_the_closest_name() {
    let text = broken("inputs = [\"events\"]", "inputs = [\"event\"]");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 8,
            column: 11,
            message: "input `event` names nothing in this pipeline",
            help: "did you mean `events`?",
        },
    );
    assert_eq!(error.problems.len(), 1, "one mistake, one error:\n{error}");
}

#[test]
fn a_window_over_another_operators_rows_is_refused() {
    let text = r#"[sources.events]
type = "file"
path = "events.jsonl"

[operators.a]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }

[operators.b]
type = "window"
inputs = ["a"]
window = { tumbling = "10s" }

[sinks.out]
type = "stdout"
inputs = ["b"]
"#;
    assert_reported(
        &refused(text),
        text,
        Expected {
            line: 12,
            column: 11,
            message: "`a` produces rows, but a window reads events",
            help: "read a source",
        },
    );
}

#[test]
fn operators_reading_each_other_are_a_cycle() {
    // What operators in a cycle emit cannot be known, so the cycle is what
    // is reported about their inputs.
    let text = r#"[sources.events]
type = "file"
path = "events.jsonl"

[operators.a]
type = "window"
inputs = ["b"]
window = { tumbling = "10s" }

[operators.b]
type = "window"
inputs = ["a"]
window = { tumbling = "10s" }

[sinks.out]
type = "stdout"
inputs = ["a", "b"]
"#;
    let error = refused(text);
    assert_reported(
        &error,
        text,
        Expected {
            line: 7,
            column: 10,
            message: "the operators form a cycle: a → b → a",
            help: "break the loop: an operator cannot (indirectly) read its own output",
        },
    );

    let cycles = error
        .problems
        .iter()
        .filter(|p| p.diagnostic.message.contains("cycle"))
        .count();
    assert_eq!(cycles, 1, "a cycle is reported once:\n{error}");
}

#[test]
fn malformed_duration_in_a_window_points_at_the_value() {
    let text = broken("{ tumbling = \"10s\" }", "{ tumbling = \"10x\" }");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 9,
            column: 23,
            message: "malformed duration \"10x\": unknown unit",
            help: "write a number followed by a unit (ms, s, m, h, d), e.g. \"10s\"",
        },
    );
}

#[test]
fn malformed_duration_in_a_source_points_at_the_value() {
    let text = broken("max_out_of_orderness = \"2s\"", "max_out_of_orderness = \"10x\"");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 4,
            column: 24,
            message: "malformed duration \"10x\": unknown unit",
            help: "write a number followed by a unit (ms, s, m, h, d), e.g. \"10s\"",
        },
    );
}

#[test]
fn aggregate_the_inputs_cannot_provide() {
    let text = broken("max_out_of_orderness = \"2s\"\n", "kinds = [\"log\"]\n")
        .replace("key = [\"tenant\", \"metric\"]", "key = [\"tenant\"]");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 11,
            column: 24,
            message: "aggregate `avg` needs the numeric `value` of metric events, but the inputs of `cpu_10s` carry only log events",
            help: "only `count` works without values",
        },
    );
    assert_eq!(error.problems.len(), 1, "`count` is fine on logs:\n{error}");
}

#[test]
fn unknown_aggregate_points_at_the_value() {
    // p1..p99 are quantiles; `median` is not an aggregate name.
    let text = broken("[\"count\", \"avg\"]", "[\"count\", \"p97\", \"median\"]");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 11,
            column: 31,
            message: "unknown aggregate \"median\"",
            help: "use one of count, sum, min, max, avg, stddev, or a quantile p1..p99",
        },
    );
}

#[test]
fn unset_variable_is_named_where_it_is_used() {
    let text = broken("path = \"events.jsonl\"", "path = \"${EVENTS_DIR}/events.jsonl\"");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 3,
            column: 9,
            message: "environment variable `EVENTS_DIR` is not set",
            help: "set it (`export EVENTS_DIR=...`) or give a default: `${EVENTS_DIR:-value}`",
        },
    );
    assert_eq!(
        error.problems[0].place.as_ref().map(|p| p.3),
        Some("${EVENTS_DIR}".len())
    );
}

#[test]
fn variable_defaults_apply_only_when_unset() {
    let text = broken(
        "path = \"events.jsonl\"",
        "path = \"${EVENTS_FILE:-data/events.jsonl}\"",
    );
    let source_path = |vars: &[(&str, &str)]| {
        let pipeline = Pipeline::parse(Path::new(FILE), &text, &common::env_of(vars))
            .unwrap_or_else(|e| panic!("a default makes the variable optional:\n{e}"));
        match &pipeline.config.sources["events"] {
            SourceConfig::File { path, .. } => path.display().to_string(),
            other => panic!("expected a file source, got {other:?}"),
        }
    };
    assert_eq!(source_path(&[]), "data/events.jsonl");
    assert_eq!(source_path(&[("EVENTS_FILE", "/srv/in.jsonl")]), "/srv/in.jsonl");
}

#[test]
fn cli_validate_refuses_a_broken_file_with_its_location() {
    let dir = common::TempDir::new("validate-cli");
    let path = dir.join("broken.toml");
    std::fs::write(&path, broken("inputs = [\"events\"]", "inputs = [\"event\"]")).expect("write the pipeline");
    let output = Command::new(common::pulse_bin())
        .args(["validate", &path.display().to_string()])
        .output()
        .expect("run pulse validate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "a broken file must fail validation; stderr:\n{stderr}"
    );
    let location = format!("{}:8:11", path.display());
    assert!(stderr.contains(&location), "stderr should name {location}:\n{stderr}");
    assert!(
        stderr.contains("did you mean `events`?"),
        "stderr should carry the help:\n{stderr}"
    );
}

#[test]
fn cli_validate_accepts_the_demo() {
    let demo = common::workspace_dir().join("pipelines/demo.toml");
    let output = Command::new(common::pulse_bin())
        .args(["validate", &demo.display().to_string()])
        .output()
        .expect("run pulse validate");
    assert!(
        output.status.success(),
        "pulse validate {} failed:\n{}",
        demo.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(": ok ("), "stdout: {stdout}");
}

#[test]
fn every_shipped_pipeline_validates() {
    let dir = common::workspace_dir().join("pipelines");
    let out = common::TempDir::new("validate-pipelines");
    let (input, output) = (
        out.join("in.jsonl").display().to_string(),
        out.join("out.jsonl").display().to_string(),
    );
    let models = common::workspace_dir().join("operators/tests/fixtures/onnx/models");
    let models = models.display().to_string();
    let cluster_events = dir.join("data/cluster-events.jsonl").display().to_string();
    let vars = [
        ("BENCH_INPUT", input.as_str()),
        ("BENCH_OUTPUT", output.as_str()),
        ("BENCH_TOPIC", "bench.events"),
        ("PULSE_MODELS_DIR", models.as_str()),
        // sinks-example.toml reads it relative to the repository's root.
        ("PULSE_CLUSTER_EVENTS", cluster_events.as_str()),
    ];
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("pipelines/ exists") {
        let path = entry.expect("entry").path();
        // Pipelines with an onnx operator validate only with ONNX Runtime (CI has it).
        let needs_onnx_runtime = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("onnx"));
        if needs_onnx_runtime
            && std::env::var("CI").as_deref() != Ok("true")
            && let Err(error) = pulse_operators::onnx::runtime::environment()
        {
            eprintln!("\n*** SKIPPED {}: {error} ***\n", path.display());
            continue;
        }
        if path.extension().is_some_and(|e| e == "toml") {
            let pipeline = common::load_pipeline(&path, &vars);
            assert!(!pipeline.config.sinks.is_empty(), "{} has no sinks", path.display());
            checked.push(path.file_name().expect("a file name").to_string_lossy().into_owned());
        }
    }
    checked.sort();
    for must in ["bench-window.toml", "demo.toml"] {
        assert!(checked.iter().any(|c| c == must), "{must} not found among {checked:?}");
    }
    // The bench pipeline writes where BENCH_OUTPUT says.
    let bench = common::load_pipeline(&dir.join("bench-window.toml"), &vars);
    let paths: Vec<String> = bench
        .config
        .sinks
        .values()
        .filter_map(|s| match s {
            SinkConfig::File { path, .. } => Some(path.display().to_string()),
            SinkConfig::Stdout { .. }
            | SinkConfig::Kafka { .. }
            | SinkConfig::Websocket { .. }
            | SinkConfig::Clickhouse(_)
            | SinkConfig::Redis(_)
            | SinkConfig::Parquet(_)
            | SinkConfig::Graph(_) => None,
        })
        .collect();
    assert_eq!(paths, vec![output], "bench-window.toml writes to ${{BENCH_OUTPUT}}");
}

/// A Kafka source that reads nothing, or whose pattern is no regular expression.
#[test]
fn kafka_sources_need_a_topic_and_a_valid_pattern() {
    let kafka = |topics: &str| {
        format!(
            "[sources.events]\ntype = \"kafka\"\nbrokers = \"127.0.0.1:9092\"\n{topics}\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"events\"]\n"
        )
    };
    let text = kafka("");
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 1,
            column: 1,
            message: "Kafka source `events` reads no topic",
            help: "add `topics = [\"acme.events.normalized\"]` or `topic_pattern = \"^.*\\\\.events\\\\.normalized$\"`",
        },
    );
    let text = kafka("topic_pattern = \"^(acme\"");
    let error = refused(&text);
    let problem = &error.problems[0];
    assert_eq!(problem.place.as_ref().map(|p| (p.0, p.1)), Some((4, 17)), "{error}");
    assert!(
        problem.diagnostic.message.contains("not a valid regular expression"),
        "{error}"
    );
    let valid = kafka("topics = [\"acme.events.normalized\"]\nuntil = \"end\"");
    assert!(Pipeline::parse(Path::new(FILE), &valid, &common::env_of(&[])).is_ok());
}

/// A websocket sink needs the pipeline's gateway, and reads window rows only.
#[test]
fn a_websocket_sink_needs_a_gateway_and_window_rows() {
    let text = broken(
        "type = \"file\"\ninputs = [\"cpu_10s\"]\npath = \"out.jsonl\"\n",
        "type = \"websocket\"\ninputs = [\"cpu_10s\", \"events\"]\n",
    );
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 14,
            column: 8,
            message: "publishes through the gateway, and the pipeline has none",
            help: "add a [gateway] table",
        },
    );
    assert_reported(
        &error,
        &text,
        Expected {
            line: 15,
            column: 22,
            message: "`events` is not a window, anomaly, forecast, onnx or incidents operator",
            help: "name a window, anomaly, forecast, onnx or incidents operator",
        },
    );
}

#[test]
fn every_input_of_a_kafka_sink_needs_a_topic_and_topics_name_inputs_only() {
    let text = broken(
        "type = \"file\"\ninputs = [\"cpu_10s\"]\npath = \"out.jsonl\"\n",
        "type = \"kafka\"\ninputs = [\"cpu_10s\", \"events.late\"]\nbrokers = \"127.0.0.1:9092\"\n\
         topics = { cpu_10s = \"streaming-metrics\", alerts = \"streaming-alerts\" }\n",
    );
    let error = refused(&text);
    assert_reported(
        &error,
        &text,
        Expected {
            line: 15,
            column: 10,
            message: "input `events.late` has no topic to go to",
            help: "set `topic` (for every input), or name it in `topics`",
        },
    );
    assert_reported(
        &error,
        &text,
        Expected {
            line: 17,
            column: 52,
            message: "`alerts` in `topics` is not an input of this sink",
            help: "add it to `inputs`, or remove it from `topics`",
        },
    );
    assert_eq!(error.problems.len(), 2, "two mistakes, two errors:\n{error}");

    let with_default = text.replace("brokers =", "topic = \"streaming-late\"\nbrokers =");
    let error = refused(&with_default);
    assert_eq!(error.problems.len(), 1, "`topic` takes the other inputs:\n{error}");
}

/// A pipeline with one mistake of each kind in several components: the
/// source, two operators and a sink.
const MANY_MISTAKES: &str = r#"[sources.sensors]
type = "generator"
rate = -1
sensors = { tenants = 2 }

[sources.events]
type = "file"
path = "events.jsonl"
max_out_of_order = "2s"

[operators.cpu_10s]
type = "window"
inputs = ["sensors"]
window = { tumbling = "10x" }
aggregates = ["count", "median"]

[operators.by_tenant]
type = "window"
inputs = ["sensors"]
window = { tumbling = "10s" }
key = ["tenant"]
aggregates = ["count", "count"]

[sinks.out]
type = "file"
inputs = ["by_tenant", "cpu_10s", "nothing"]
path = "out.jsonl"
max_bytes = 0

[sinks.console]
type = "stdout"
inputs = ["by_tenat"]
format = "tabel"
"#;

/// Issue 25, point 6: `validate` reports every mistake of a file in one run,
/// each at its line and column with a fix, not one at a time.
#[test]
fn every_mistake_of_a_file_is_reported_in_one_run() {
    let error = refused(MANY_MISTAKES);
    let rendered = error.to_string();
    let expected = [
        (
            3,
            8,
            "invalid value: integer `-1`, expected u64",
            "set `rate` to a whole number, 0 or more",
        ),
        (9, 1, "unknown field `max_out_of_order`", "remove `max_out_of_order`"),
        (14, 23, "malformed duration \"10x\"", "e.g. \"10s\""),
        (15, 24, "unknown aggregate \"median\"", "p1..p99"),
        (22, 24, "aggregate `count` is listed twice", "remove the repetition"),
        (
            26,
            35,
            "input `nothing` names nothing in this pipeline",
            "inputs name a source or operator",
        ),
        (
            28,
            13,
            "`max_bytes = 0` would rotate the file before every batch",
            "max_bytes = 50_000_000",
        ),
        // A sink that does not read still has its inputs checked.
        (32, 11, "input `by_tenat` names nothing", "did you mean `by_tenant`?"),
        (
            33,
            10,
            "unknown variant `tabel`",
            "`tabel` is not one of the choices listed",
        ),
    ];
    for (line, column, message, help) in expected {
        assert_reported(
            &error,
            MANY_MISTAKES,
            Expected {
                line,
                column,
                message,
                help,
            },
        );
    }
    assert_eq!(
        error.problems.len(),
        expected.len(),
        "exactly these problems (nothing that only follows from them):\n{rendered}"
    );
    assert!(rendered.ends_with(&format!("{FILE}: 9 errors")), "{rendered}");
}

/// `rate = -1` is placed at the `-1`, not at 1:1 or the table header.
#[test]
fn a_negative_rate_points_at_the_value() {
    let text = "[sources.sensors]\ntype = \"generator\"\nrate = -1\n\n[sinks.out]\ntype = \"stdout\"\ninputs = [\"sensors\"]\n";
    let error = refused(text);
    let problem = assert_reported(
        &error,
        text,
        Expected {
            line: 3,
            column: 8,
            message: "invalid value: integer `-1`",
            help: "set `rate` to a whole number, 0 or more",
        },
    );
    assert_eq!(problem.place.as_ref().map(|p| p.3), Some(2), "the caret covers `-1`");
    assert_eq!(error.problems.len(), 1, "{error}");
}

/// A file source whose file does not exist is an error of `pulse validate`
/// (at the path), and a warning when the path comes from a `${VAR}`.
#[test]
fn a_missing_source_file_is_reported_and_a_variable_path_only_warned_about() {
    let dir = common::TempDir::new("validate-missing-file");
    let missing = dir.join("nowhere.jsonl").display().to_string();
    let pipeline = dir.join("pipeline.toml");
    std::fs::write(&pipeline, VALID.replace("events.jsonl", &missing)).unwrap();
    let error = Pipeline::load(&pipeline, &common::env_of(&[])).expect_err("a missing file is an error");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    let problem = error
        .problems
        .iter()
        .find(|p| p.diagnostic.message.contains("does not exist"))
        .unwrap_or_else(|| panic!("{error}"));
    assert!(problem.diagnostic.message.contains(&missing), "{error}");
    assert_eq!(problem.place.as_ref().map(|p| (p.0, p.1)), Some((3, 8)), "{error}");
    assert_eq!(problem.place.as_ref().map(|p| p.2.as_str()), text.lines().nth(2));

    std::fs::write(&pipeline, VALID.replace("events.jsonl", "${EVENTS:-nowhere.jsonl}")).unwrap();
    let loaded = Pipeline::load(&pipeline, &common::env_of(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].diagnostic.warning);
    let report = loaded.warnings_report().unwrap();
    assert!(
        report.starts_with("warning: the file `nowhere.jsonl` does not exist"),
        "{report}"
    );
    assert!(report.contains("its path comes from a ${VAR}"), "{report}");
    assert!(report.ends_with(": 1 warning"), "{report}");
    assert!(report.contains(&format!("{}:3:8", pipeline.display())), "{report}");

    let output = Command::new(common::pulse_bin())
        .args(["validate", &pipeline.display().to_string()])
        .output()
        .expect("run pulse validate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "a warning does not fail validation:\n{stderr}");
    assert!(
        stderr.contains("warning: the file `nowhere.jsonl` does not exist"),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("; 1 warning)"));
}

/// Issue 25, point 8b: a value with quotes, backslashes, a newline, `]` and
/// `${` is the value, not TOML: it neither breaks nor changes the pipeline,
/// and later errors keep their lines.
#[test]
fn hostile_variable_values_stay_values() {
    let hostile = "pa\"ss]\\word\n${HOME} = 1\n[sinks.evil]";
    let text = r#"[sources.events]
type = "file"
path = "${EVENTS}"

[sinks.out]
type = "stdout"
inputs = ["events"]

[gateway]
demo = true

[gateway.demo_account]
password = "${PULSE_DEMO_PASSWORD}"
"#;
    let vars = [("PULSE_DEMO_PASSWORD", hostile), ("EVENTS", "in \"quotes\".jsonl")];
    let pipeline = Pipeline::parse(Path::new(FILE), text, &common::env_of(&vars)).unwrap_or_else(|e| panic!("{e}"));
    let account = pipeline
        .config
        .gateway
        .as_ref()
        .and_then(|g| g.demo_account.as_ref())
        .unwrap();
    assert_eq!(account.password, hostile);
    assert_eq!(pipeline.config.sinks.len(), 1, "no sink was smuggled in");
    match &pipeline.config.sources["events"] {
        SourceConfig::File { path, .. } => assert_eq!(path.display().to_string(), "in \"quotes\".jsonl"),
        other => panic!("{other:?}"),
    }

    // An error after the hostile value is still placed on its own line.
    let broken = text.replace("inputs = [\"events\"]", "inputs = [\"event\"]");
    let error = refused_with(&broken, &vars);
    assert_reported(
        &error,
        &broken,
        Expected {
            line: 7,
            column: 11,
            message: "input `event` names nothing",
            help: "did you mean `events`?",
        },
    );

    // Outside a string, only a number or boolean fits: the rest is refused where it is used.
    let bare = "[engine]\nworkers = ${WORKERS}\n";
    let error = refused_with(bare, &[("WORKERS", "2\n[sinks.x]")]);
    assert_reported(
        &error,
        bare,
        Expected {
            line: 2,
            column: 11,
            message: "the value of `WORKERS` cannot be used here",
            help: "put the reference in a string",
        },
    );
}

/// The server sinks check what would go wrong only once they run: a database
/// name pasted into SQL, a URL of the wrong kind, inputs they cannot store.
#[test]
fn clickhouse_and_redis_sinks_are_checked_before_they_run() {
    let text = r#"[sources.events]
type = "file"
path = "events.jsonl"

[operators.cpu]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }

[sinks.history]
type = "clickhouse"
inputs = ["cpu", "events.dead_letter"]
url = "127.0.0.1:8123"
database = "pulse; DROP TABLE x"
batch_size = 0

[sinks.latest]
type = "redis"
inputs = ["events"]
url = "http://127.0.0.1:6379"
"#;
    let error = refused(text);
    for (line, column, message, help) in [
        (13, 7, "is not an HTTP URL", "url = \"http://127.0.0.1:8123\""),
        (14, 12, "is not a database name", "letters, digits and `_`"),
        (15, 14, "`batch_size` must be at least 1", "10000"),
        (12, 18, "does not store dead letters", "file or Kafka sink"),
        (20, 7, "is not a Redis URL", "redis://127.0.0.1:6379"),
        (19, 11, "a redis sink writes operator rows", "window operator"),
    ] {
        assert_reported(
            &error,
            text,
            Expected {
                line,
                column,
                message,
                help,
            },
        );
    }
}

/// A graph sink reads sources and incidents operators, nothing else; a
/// clickhouse sink puts an incidents operator's rows in `incidents`.
#[test]
fn graph_and_clickhouse_sinks_take_incidents() {
    let text = |graph_inputs: &str| {
        format!(
            r#"[sources.events]
type = "file"
path = "events.jsonl"

[operators.cpu]
type = "window"
inputs = ["events"]
window = {{ tumbling = "10s" }}

[operators.rca]
type = "incidents"
inputs = ["events"]

[sinks.graph]
type = "graph"
inputs = [{graph_inputs}]
uri = "falkordb://127.0.0.1:6380"

[sinks.history]
type = "clickhouse"
inputs = ["rca", "cpu"]
"#
        )
    };
    let accepted = text("\"events\", \"rca\"");
    let pipeline = Pipeline::parse(Path::new(FILE), &accepted, &common::env_of(&[])).unwrap_or_else(|e| panic!("{e}"));
    let SinkConfig::Clickhouse(clickhouse) = &pipeline.config.sinks["history"] else {
        panic!("a clickhouse sink")
    };
    assert_eq!(
        clickhouse.table_of(&pipeline.config, "rca"),
        Some(pulse_sinks::clickhouse::Table::Incidents)
    );
    let refused_text = text("\"events\", \"cpu\"");
    assert_reported(
        &refused(&refused_text),
        &refused_text,
        Expected {
            line: 16,
            column: 21,
            message: "neither a source's events nor an incidents operator",
            help: "inputs = [\"events\", \"incidents\"]",
        },
    );
}

/// A parquet sink writes operator rows only, and its file limits are at least 1.
#[test]
fn parquet_sinks_are_checked_before_they_run() {
    let text = r#"[sources.events]
type = "file"
path = "events.jsonl"

[operators.cpu]
type = "window"
inputs = ["events"]
window = { tumbling = "10s" }

[sinks.files]
type = "parquet"
inputs = ["cpu", "events", "cpu.late"]
path = "data/parquet"
max_rows_per_file = 0
"#;
    let error = refused(text);
    for (line, column, message, help) in [
        (
            12,
            18,
            "`events` is not an operator's rows",
            "window, anomaly or forecast operator",
        ),
        (14, 21, "`max_rows_per_file` must be at least 1", "1000000"),
    ] {
        assert_reported(
            &error,
            text,
            Expected {
                line,
                column,
                message,
                help,
            },
        );
    }
}

#[test]
fn a_filter_names_a_column_of_its_input_with_a_value_of_its_type() {
    let filter = |condition: &str| {
        broken(
            "[sinks.out]\ntype = \"file\"\ninputs = [\"cpu_10s\"]\n",
            &format!(
                "[operators.busy]\ntype = \"filter\"\ninputs = [\"cpu_10s\"]\nwhere = {{ {condition} }}\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"busy\"]\n"
            ),
        )
    };
    let accepted = filter("metric = [\"cpu\", \"mem\"], count = 3");
    Pipeline::parse(Path::new(FILE), &accepted, &common::env_of(&[])).unwrap_or_else(|e| panic!("{e}"));

    let text = filter("metrc = \"cpu\"");
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 16,
            column: 19,
            message: "its input has no column `metrc`",
            help: "name a column of the input",
        },
    );
    let text = filter("avg = \"high\"");
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 16,
            column: 17,
            message: "`avg` is a float column, and a string never equals one",
            help: "a value of its type",
        },
    );
    let text = broken(
        "[sinks.out]\ntype = \"file\"\ninputs = [\"cpu_10s\"]\n",
        "[operators.busy]\ntype = \"filter\"\ninputs = [\"events\"]\nwhere = { metric = \"cpu\" }\n\n[sinks.out]\ntype = \"file\"\ninputs = [\"busy\"]\n",
    );
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 15,
            column: 11,
            message: "`events` produces events, but a filter reads an operator's rows",
            help: "read an operator",
        },
    );
}

#[test]
fn retry_and_breaker_settings_of_a_sink_are_checked_at_their_keys() {
    let sink = |settings: &str| {
        broken(
            "[sinks.out]\ntype = \"file\"\ninputs = [\"cpu_10s\"]\npath = \"out.jsonl\"\n",
            &format!(
                "[sinks.out]\ntype = \"clickhouse\"\ninputs = [\"cpu_10s\"]\nurl = \"http://127.0.0.1:8123\"\n{settings}\n"
            ),
        )
    };
    let accepted =
        sink("retry = { initial = \"50ms\", max = \"2s\" }\nbreaker = { failures = 3, probe_after = \"1s\" }");
    let pipeline = Pipeline::parse(Path::new(FILE), &accepted, &common::env_of(&[])).unwrap_or_else(|e| panic!("{e}"));
    let SinkConfig::Clickhouse(clickhouse) = &pipeline.config.sinks["out"] else {
        panic!("a clickhouse sink")
    };
    let options = clickhouse.batching.options();
    assert_eq!(
        (options.retry.initial.as_millis(), options.retry.max.as_millis()),
        (50, 2_000)
    );
    assert_eq!(
        (options.breaker.failures_to_open, options.breaker.open_for.as_millis()),
        (3, 1_000)
    );

    let text = sink("retry = { initial = \"1s\", max = \"100ms\" }");
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 17,
            column: 33,
            message: "`retry.max` is shorter than `retry.initial`",
            help: "make `max` at least `initial`",
        },
    );
    let text = sink("breaker = { failures = 0 }");
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 17,
            column: 24,
            message: "`breaker.failures = 0` is out of range",
            help: "give 1 to 1000",
        },
    );
    let text = sink("breaker = { failure = 3 }");
    assert_reported(
        &refused(&text),
        &text,
        Expected {
            line: 17,
            column: 13,
            message: "unknown field `failure`",
            help: "failures",
        },
    );
}

/// The `k8s` generator profile: its options are checked, each error at its key.
#[test]
fn a_k8s_generator_checks_its_speed_and_scenario() {
    let source = |options: &str| {
        format!(
            "[sources.cluster]\ntype = \"generator\"\nprofile = \"k8s\"\n{options}\n\n\
             [operators.incidents]\ntype = \"incidents\"\ninputs = [\"cluster\"]\n\n\
             [sinks.out]\ntype = \"file\"\ninputs = [\"incidents\"]\npath = \"out.jsonl\"\n"
        )
    };
    let good = source("speed = 60\nk8s = { tenants = 2, faults_per_tenant = 4, seed = 3 }");
    Pipeline::parse(Path::new(FILE), &good, &common::env_of(&[])).expect("a valid k8s generator");
    for (options, line, message) in [
        ("speed = 0", 4, "`speed` is 0"),
        ("speed = nan", 4, "`speed` is NaN"),
        ("k8s = { tenants = 0 }", 4, "`tenants` is 0"),
        ("k8s = { faults_per_tenant = 0 }", 4, "`faults_per_tenant` is 0"),
        ("k8s = { start = 5 }", 4, "`start` is not read by a live source"),
    ] {
        let text = source(options);
        let error = refused(&text);
        let rendered = error.to_string();
        assert!(rendered.contains(message), "{options}: {rendered}");
        assert!(
            rendered.contains(&format!(":{line}:")),
            "{options} is reported at its line: {rendered}"
        );
    }
    let typo = refused(&source("k8s = { tenantz = 2 }")).to_string();
    assert!(typo.contains("tenantz"), "{typo}");
}
