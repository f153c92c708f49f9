//! Reading a parsed pipeline one component at a time, so that one run of
//! `pulse validate` reports every mistake in the file, not the first.
//!
//! serde stops at the first error of whatever it reads. So each top-level
//! table (`[engine]`, `[gateway]`) and each source, operator and sink is read
//! on its own; within one, the key an error points at is set aside and the
//! component read again, until it reads or nothing more can be set aside.
//! Components that do not read are left out of the graph checks, which do not
//! report what follows from them (an input naming a component that did not
//! read is not "dangling").

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use serde::Deserialize;
use serde::de::IntoDeserializer;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Diagnostic, from_message};
use super::{EngineConfig, PipelineConfig};

/// Marks the `[gateway]` table among the components that did not read.
pub const GATEWAY: &str = "[gateway]";

/// What reading a pipeline's components gave.
pub struct Components {
    /// The components that read (the others are missing from it).
    pub config: PipelineConfig,
    /// What is wrong with the others.
    pub diagnostics: Vec<Diagnostic>,
    /// The components that did not read.
    pub unparsed: Unparsed,
}

/// The components of a file that did not read, for the graph checks.
#[derive(Clone, Debug, Default)]
pub struct Unparsed {
    /// Their names ([`GATEWAY`] for the gateway).
    pub names: BTreeSet<String>,
    /// The `inputs` of operators and sinks among them, by section and name,
    /// so that those are still checked.
    pub inputs: Vec<(String, String, Vec<String>)>,
}

/// Reads every component of `document`, parsed from `text`.
pub fn read<'i>(text: &str, document: DeTable<'i>) -> Components {
    let mut read = Components {
        config: PipelineConfig {
            engine: EngineConfig::default(),
            sources: BTreeMap::new(),
            operators: BTreeMap::new(),
            sinks: BTreeMap::new(),
            gateway: None,
            ml: None,
        },
        diagnostics: Vec::new(),
        unparsed: Unparsed::default(),
    };
    for (key, value) in document {
        let diagnostics = &mut read.diagnostics;
        match key.get_ref().as_ref() {
            "engine" => {
                if let Some(engine) = read_one(text, value, diagnostics) {
                    read.config.engine = engine;
                }
            }
            "ml" => read.config.ml = read_one(text, value, diagnostics),
            "gateway" => {
                read.config.gateway = read_one(text, value, diagnostics);
                if read.config.gateway.is_none() {
                    read.unparsed.names.insert(GATEWAY.to_owned());
                }
            }
            section @ ("sources" | "operators" | "sinks") => {
                let span = value.span();
                let DeValue::Table(components) = value.into_inner() else {
                    diagnostics.push(Diagnostic::new(
                        Some(span),
                        format!("`{section}` must be a table of named components"),
                        Some(format!("write e.g. [{section}.name] with its `type`")),
                    ));
                    continue;
                };
                for (name, component) in components {
                    let name = name.get_ref().to_string();
                    let inputs = inputs_of(&component);
                    let config = &mut read.config;
                    let ok = match section {
                        "sources" => read_one(text, component, diagnostics).map(|c| {
                            config.sources.insert(name.clone(), c);
                        }),
                        "operators" => read_one(text, component, diagnostics).map(|c| {
                            config.operators.insert(name.clone(), c);
                        }),
                        _ => read_one(text, component, diagnostics).map(|c| {
                            config.sinks.insert(name.clone(), c);
                        }),
                    };
                    if ok.is_none() {
                        if let Some(inputs) = inputs.filter(|_| section != "sources") {
                            read.unparsed.inputs.push((section.to_owned(), name.clone(), inputs));
                        }
                        read.unparsed.names.insert(name);
                    }
                }
            }
            other => diagnostics.push(Diagnostic::new(
                Some(key.span()),
                format!(
                    "unknown field `{other}`, expected one of `engine`, `sources`, `operators`, `sinks`, `gateway`, `ml`"
                ),
                Some(format!("remove `{other}`, or correct it to one of the keys listed")),
            )),
        }
    }
    crate::ml_service::resolve_models_dirs(&mut read.config);
    read
}

/// The `inputs` of a component table, when it is a list of strings.
fn inputs_of(component: &Spanned<DeValue<'_>>) -> Option<Vec<String>> {
    let DeValue::Table(table) = component.get_ref() else {
        return None;
    };
    let (_, inputs) = table.iter().find(|(key, _)| key.get_ref() == "inputs")?;
    let DeValue::Array(items) = inputs.get_ref() else {
        return None;
    };
    items
        .iter()
        .map(|item| item.get_ref().as_str().map(str::to_owned))
        .collect()
}

/// Reads one component, reporting each of its mistakes; `None` when it has any.
fn read_one<'i, T: Deserialize<'i>>(
    text: &str,
    mut value: Spanned<DeValue<'i>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    let mut set_aside: Vec<String> = Vec::new();
    // Each round sets a key aside: a component has few keys.
    for _ in 0..32 {
        let error = match T::deserialize(value.clone().into_deserializer()) {
            Ok(component) => return set_aside.is_empty().then_some(component),
            Err(error) => error,
        };
        let missing = error
            .message()
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next());
        if missing.is_some_and(|field| set_aside.iter().any(|key| key == field)) {
            // Missing only because a mistaken value was set aside: said already.
            return None;
        }
        let diagnostic = diagnose(text, &value, &error);
        let culprit = diagnostic.span.clone().and_then(|span| top_level_key(&value, &span));
        diagnostics.push(diagnostic);
        let (Some(key), DeValue::Table(table)) = (culprit, value.get_mut()) else {
            return None;
        };
        if key == "type" {
            return None;
        }
        let entries = std::mem::take(table);
        *table = entries
            .into_iter()
            .filter(|(k, _)| k.get_ref().as_ref() != key)
            .collect();
        set_aside.push(key);
    }
    None
}

/// The key of `component` whose entry holds `span`.
fn top_level_key(component: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Option<String> {
    let DeValue::Table(table) = component.get_ref() else {
        return None;
    };
    table
        .iter()
        .find(|(key, value)| {
            let entry = key.span().start..value.span().end.max(key.span().end);
            entry.contains(&span.start)
        })
        .map(|(key, _)| key.get_ref().to_string())
}

/// The diagnostic of `error`, met reading `component`: for a value of the
/// wrong type or out of range, placed at that value, with what it must be.
fn diagnose(text: &str, component: &Spanned<DeValue<'_>>, error: &toml::de::Error) -> Diagnostic {
    // Errors inside a component tagged by `type` come without a place: search its table.
    let mut diagnostic = from_message(text, error.message(), error.span().or_else(|| Some(component.span())));
    let message = error.message();
    if !(message.starts_with("invalid type:") || message.starts_with("invalid value:")) {
        return diagnostic;
    }
    let Some(literal) = Literal::of(message) else {
        return diagnostic;
    };
    let mut path = Vec::new();
    if let Some((span, key)) = find_leaf(component, &literal, &mut path) {
        diagnostic.span = Some(span);
        let expected = message.rsplit_once(", expected ").map_or("", |(_, e)| e);
        diagnostic.help = Some(format!("set `{key}` to {}", in_words(expected)));
    }
    diagnostic
}

/// The value a serde error quotes.
#[derive(Debug, PartialEq)]
enum Literal {
    Integer(String),
    Float(f64),
    Boolean(bool),
    String(String),
}

impl Literal {
    /// The value quoted in `message`: "integer `-1`", "string \"x\"", ….
    fn of(message: &str) -> Option<Self> {
        let backticked = |prefix: &str| -> Option<&str> {
            let rest = &message[message.find(prefix)? + prefix.len()..];
            rest.get(..rest.find('`')?)
        };
        if let Some(integer) = backticked("integer `") {
            return Some(Literal::Integer(integer.to_owned()));
        }
        if let Some(float) = backticked("floating point `") {
            return float.parse().ok().map(Literal::Float);
        }
        if let Some(boolean) = backticked("boolean `") {
            return boolean.parse().ok().map(Literal::Boolean);
        }
        let quoted = message.split('"').nth(1)?;
        Some(Literal::String(quoted.to_owned()))
    }

    fn matches(&self, value: &DeValue<'_>) -> bool {
        match (self, value) {
            (Literal::Integer(want), DeValue::Integer(have)) => {
                have.radix() == 10 && have.as_str().replace('_', "") == *want
            }
            (Literal::Float(want), DeValue::Float(have)) => have.as_str().replace('_', "").parse() == Ok(*want),
            (Literal::Boolean(want), DeValue::Boolean(have)) => want == have,
            (Literal::String(want), DeValue::String(have)) => have.as_ref() == want,
            _ => false,
        }
    }
}

/// The first scalar in `value` equal to `literal`: its span and dotted key path.
fn find_leaf(
    value: &Spanned<DeValue<'_>>,
    literal: &Literal,
    path: &mut Vec<String>,
) -> Option<(Range<usize>, String)> {
    match value.get_ref() {
        DeValue::Table(table) => table.iter().find_map(|(key, value)| {
            path.push(key.get_ref().to_string());
            let found = find_leaf(value, literal, path);
            path.pop();
            found
        }),
        DeValue::Array(items) => items.iter().find_map(|item| find_leaf(item, literal, path)),
        scalar if literal.matches(scalar) => Some((value.span(), path.join("."))),
        _ => None,
    }
}

/// What serde's `expected …` asks for, for a user.
fn in_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a string" => "a string in quotes".to_owned(),
        "a sequence" => "a list, e.g. [\"a\", \"b\"]".to_owned(),
        "" => "a value of the right type (see the pipeline reference in README.md)".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_found_in_serde_messages() {
        let of = Literal::of;
        assert_eq!(
            of("invalid value: integer `-1`, expected u64"),
            Some(Literal::Integer("-1".into()))
        );
        assert_eq!(
            of("invalid type: string \"x\", expected u32"),
            Some(Literal::String("x".into()))
        );
        assert_eq!(
            of("invalid type: floating point `1.5`, expected u64"),
            Some(Literal::Float(1.5))
        );
        assert_eq!(
            of("invalid type: boolean `true`, expected a string"),
            Some(Literal::Boolean(true))
        );
    }
}
