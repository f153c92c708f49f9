//! Where a key or value sits in a pipeline file, for error messages.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

use super::diagnostic::Diagnostic;
use super::validate::Problem;

/// Places each problem at the value its path names (e.g. `operators.w.inputs.1`),
/// or at the deepest part of the path that exists.
pub fn locate_all(text: &str, problems: Vec<Problem>) -> Vec<Diagnostic> {
    let document = DeTable::parse(text).ok();
    problems
        .into_iter()
        .map(|problem| {
            let span = document.as_ref().and_then(|doc| locate(doc.get_ref(), &problem.path));
            Diagnostic::new(span, problem.message, problem.help)
        })
        .collect()
}

fn locate(table: &DeTable<'_>, path: &[String]) -> Option<Range<usize>> {
    let (first, rest) = path.split_first()?;
    let (_, value) = table.iter().find(|(key, _)| key.get_ref() == first)?;
    descend(value, rest)
}

fn descend(value: &serde_spanned::Spanned<DeValue<'_>>, path: &[String]) -> Option<Range<usize>> {
    let here = Some(value.span());
    let Some((first, rest)) = path.split_first() else {
        return here;
    };
    let deeper = match value.get_ref() {
        DeValue::Table(table) => table
            .iter()
            .find(|(key, _)| key.get_ref() == first)
            .and_then(|(_, v)| descend(v, rest)),
        DeValue::Array(items) => first
            .parse::<usize>()
            .ok()
            .and_then(|i| items.get(i))
            .and_then(|v| descend(v, rest)),
        _ => None,
    };
    deeper.or(here)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_values_and_array_items() {
        let text = "[operators.w]\ninputs = [\"a\", \"nope\"]\nwindow = { tumbling = \"10s\" }\n";
        let problem = |path: &[&str]| Problem {
            path: path.iter().map(|s| s.to_string()).collect(),
            message: "m".into(),
            help: None,
        };
        let spans: Vec<_> = locate_all(
            text,
            vec![
                problem(&["operators", "w", "inputs", "1"]),
                problem(&["operators", "w", "window", "tumbling"]),
            ],
        )
        .into_iter()
        .map(|d| &text[d.span.unwrap()])
        .map(str::to_owned)
        .collect();
        assert_eq!(spans, vec!["\"nope\"", "\"10s\""]);
    }
}
