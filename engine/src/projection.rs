//! Which parts of a source's events the pipeline reads, so that the source
//! copies only those out of each message (projection pushdown).
//!
//! A window reads the time, kind, value and its key fields; a sink that
//! writes a source's events (or its late events) reads everything. A part no
//! reader needs, such as a long `source` host name under windows keyed by
//! tenant and metric, is checked by the decoder but not kept.

use pulse_core::Projection;

use crate::config::PipelineConfig;

/// The parts of source `source`'s events that something in `config` reads.
pub fn source_projection(config: &PipelineConfig, source: &str) -> Projection {
    let late = format!("{source}.late");
    let reads = |inputs: &[String]| inputs.iter().any(|input| *input == source || *input == late);
    let by_operators = config
        .operators
        .values()
        .filter(|operator| reads(operator.inputs()))
        .map(|operator| operator.operator().projection());
    let by_sinks = config
        .sinks
        .values()
        .filter(|sink| reads(sink.inputs()))
        .map(|_| Projection::ALL);
    by_operators.chain(by_sinks).fold(Projection::NONE, Projection::union)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(operators_and_sinks: &str) -> PipelineConfig {
        toml::from_str(&format!(
            "[sources.events]\ntype = \"file\"\npath = \"events.jsonl\"\n{operators_and_sinks}"
        ))
        .expect("a pipeline")
    }

    /// A 10 s tumbling window named `name` over `input`, grouped by `key` (TOML list items).
    fn window(name: &str, input: &str, key: &str) -> String {
        format!(
            "[operators.{name}]\ntype = \"window\"\ninputs = [\"{input}\"]\nwindow = {{ tumbling = \"10s\" }}\nkey = [{key}]\n"
        )
    }

    #[test]
    fn windows_keep_their_key_fields_only() {
        let config = pipeline(&format!(
            "{}[sinks.out]\ntype = \"stdout\"\ninputs = [\"by_metric\"]",
            window("by_metric", "events", r#""tenant", "metric""#)
        ));
        assert_eq!(source_projection(&config, "events"), Projection::NONE);
    }

    #[test]
    fn every_reader_adds_what_it_needs() {
        let config = pipeline(&format!(
            "{}{}[sinks.out]\ntype = \"stdout\"\ninputs = [\"by_host\", \"by_region\"]",
            window("by_host", "events", r#""source""#),
            window("by_region", "events.late", r#""labels.region""#)
        ));
        assert_eq!(source_projection(&config, "events"), Projection::ALL);
    }

    #[test]
    fn a_sink_of_the_events_or_their_late_ones_keeps_everything() {
        for input in ["events", "events.late"] {
            let config = pipeline(&format!("[sinks.raw]\ntype = \"stdout\"\ninputs = [\"{input}\"]"));
            assert_eq!(source_projection(&config, "events"), Projection::ALL, "{input}");
        }
        let unread = pipeline("[sinks.dead]\ntype = \"stdout\"\ninputs = [\"events.dead_letter\"]");
        assert_eq!(source_projection(&unread, "events"), Projection::NONE);
    }
}
