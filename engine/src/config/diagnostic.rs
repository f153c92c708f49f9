//! Errors in pipeline files, rendered with the file, line, column and a fix.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in a pipeline file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Byte range in the (interpolated) text, when known.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// A warning does not stop the pipeline (e.g. a file that a variable may
    /// name differently when it runs); an error does.
    pub warning: bool,
}

impl Diagnostic {
    /// A problem at `span`.
    pub fn new(span: Option<Range<usize>>, message: impl Into<String>, help: Option<String>) -> Self {
        Self {
            span,
            message: message.into(),
            help,
            warning: false,
        }
    }

    /// The same problem, as a warning.
    pub fn into_warning(mut self) -> Self {
        self.warning = true;
        self
    }
}

/// A problem placed in its file: line and column are 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    /// What is wrong and how to fix it.
    pub diagnostic: Diagnostic,
    /// Line, column (in characters) and the line's text, when the span is known.
    pub place: Option<(usize, usize, String, usize)>,
}

/// Everything wrong with one pipeline file: at least one error, and the
/// warnings found beside them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// Its problems, in file order.
    pub problems: Vec<Located>,
}

/// Places `diagnostics` in `text`, in file order.
pub fn locate(text: &str, mut diagnostics: Vec<Diagnostic>) -> Vec<Located> {
    diagnostics.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
    diagnostics
        .into_iter()
        .map(|diagnostic| {
            let place = diagnostic.span.as_ref().map(|span| place(text, span));
            Located { diagnostic, place }
        })
        .collect()
}

impl ConfigError {
    /// Places `diagnostics` in `text`, read from `path`.
    pub fn new(path: &Path, text: &str, diagnostics: Vec<Diagnostic>) -> Self {
        Self {
            path: path.to_owned(),
            problems: locate(text, diagnostics),
        }
    }

    /// The file could not be read at all.
    pub fn unreadable(path: &Path, error: &std::io::Error) -> Self {
        let diagnostic = Diagnostic::new(
            None,
            format!("cannot read the pipeline file: {error}"),
            Some("check the path; pipelines live in pipelines/, e.g. pipelines/demo.toml".into()),
        );
        Self {
            path: path.to_owned(),
            problems: vec![Located {
                diagnostic,
                place: None,
            }],
        }
    }
}

/// Line, column, the line's text and the width of the marker for `span`.
fn place(text: &str, span: &Range<usize>) -> (usize, usize, String, usize) {
    let start = span.start.min(text.len());
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    let line = text[..start].matches('\n').count() + 1;
    let column = text[line_start..start].chars().count() + 1;
    let width = text[start..span.end.clamp(start, line_end)].chars().count().max(1);
    (line, column, text[line_start..line_end].to_owned(), width)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        render(f, &self.path, &self.problems)
    }
}

/// Renders `problems` of the file at `path` as a compiler does: each with
/// its place, the line quoted and marked, and the fix; then a count.
pub fn render(f: &mut fmt::Formatter<'_>, path: &Path, problems: &[Located]) -> fmt::Result {
    let path = path.display();
    for (i, problem) in problems.iter().enumerate() {
        if i > 0 {
            writeln!(f)?;
        }
        let d = &problem.diagnostic;
        let severity = if d.warning { "warning" } else { "error" };
        writeln!(f, "{severity}: {}", d.message)?;
        match &problem.place {
            Some((line, column, text, width)) => {
                let gutter = " ".repeat(line.to_string().len());
                writeln!(f, "{gutter}--> {path}:{line}:{column}")?;
                writeln!(f, "{gutter} |")?;
                writeln!(f, "{line} | {text}")?;
                writeln!(f, "{gutter} | {}{}", " ".repeat(column - 1), "^".repeat(*width))?;
                if let Some(help) = &d.help {
                    writeln!(f, "{gutter} = help: {help}")?;
                }
            }
            None => {
                writeln!(f, "  --> {path}")?;
                if let Some(help) = &d.help {
                    writeln!(f, "   = help: {help}")?;
                }
            }
        }
    }
    let warnings = problems.iter().filter(|p| p.diagnostic.warning).count();
    let errors = problems.len() - warnings;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    match (errors, warnings) {
        (_, 0) => write!(f, "{path}: {errors} error{}", plural(errors)),
        (0, _) => write!(f, "{path}: {warnings} warning{}", plural(warnings)),
        _ => write!(
            f,
            "{path}: {errors} error{}, {warnings} warning{}",
            plural(errors),
            plural(warnings)
        ),
    }
}

impl std::error::Error for ConfigError {}

/// Turns a TOML/serde error into a diagnostic, pointing at the offending key
/// when the error names one (serde reports unknown keys against their table).
pub fn from_toml(text: &str, error: &toml::de::Error) -> Diagnostic {
    from_message(text, error.message(), error.span())
}

/// A diagnostic for a serde `message` about the value at `span` (a whole
/// component table when the error has no place of its own).
pub fn from_message(text: &str, message: &str, span: Option<Range<usize>>) -> Diagnostic {
    let message = message.trim().to_owned();
    // A component table is read whole (it is an enum tagged by `type`), so the
    // error carries the span of its `[header]`: look for the culprit in the body.
    let mut span = span.map(|s| table_body(text, s));
    let backticked = |prefix: &str| -> Option<String> {
        let rest = message.strip_prefix(prefix)?;
        let rest = rest.strip_prefix('`')?;
        Some(rest[..rest.find('`')?].to_owned())
    };
    let help = if let Some(key) = backticked("unknown field ") {
        span = span.map(|s| find_key(text, s.clone(), &key).unwrap_or(s));
        Some(match key.as_str() {
            "allowed_lateness" | "max_lateness" => {
                "lateness is decided where events enter: set `max_out_of_orderness = \"2s\"` on the source".to_owned()
            }
            _ => format!("remove `{key}`, or correct it to one of the keys listed"),
        })
    } else if let Some(variant) = backticked("unknown variant ") {
        span = span.map(|s| find_value(text, s.clone(), &variant).unwrap_or(s));
        Some(format!(
            "`{variant}` is not one of the choices listed; see the pipeline reference in README.md"
        ))
    } else if let Some(field) = backticked("missing field ") {
        Some(format!("add `{field} = ...` to this table"))
    } else {
        // Value errors quote the value: "malformed duration \"10x\"", "unknown aggregate \"median\"".
        if let Some(value) = message.split('"').nth(1) {
            span = span.map(|s| find_value(text, s.clone(), value).unwrap_or(s));
        }
        (!message.contains("malformed duration")).then(|| "see the pipeline reference in README.md".to_owned())
    };
    let span = span.map(|s| {
        if s.len() > 1 && text[s.clone()].starts_with('[') {
            s.start..line_end(text, s.start)
        } else {
            s
        }
    });
    Diagnostic::new(span, message, help)
}

/// For the span of a `[header]` line, the header and the table's body up to
/// the next header; any other span unchanged.
fn table_body(text: &str, span: Range<usize>) -> Range<usize> {
    let Some(header) = text.get(span.clone()) else {
        return span;
    };
    if !header.trim_start().starts_with('[') || header.contains('=') {
        return span;
    }
    let body_start = line_end(text, span.start);
    let end = text[body_start..]
        .find("\n[")
        .map_or(text.len(), |i| body_start + i + 1);
    span.start..end
}

fn line_end(text: &str, from: usize) -> usize {
    text[from..].find('\n').map_or(text.len(), |i| from + i)
}

/// The span of `key = ` within `within`.
fn find_key(text: &str, within: Range<usize>, key: &str) -> Option<Range<usize>> {
    let region = text.get(within.clone())?;
    let mut offset = 0;
    while let Some(found) = region[offset..].find(key) {
        let start = offset + found;
        let before_ok = region[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = region[start + key.len()..].trim_start_matches([' ', '\t', '"']);
        if before_ok && after.starts_with('=') {
            return Some(within.start + start..within.start + start + key.len());
        }
        offset = start + key.len();
    }
    None
}

/// The span of the string value `"value"` within `within`.
fn find_value(text: &str, within: Range<usize>, value: &str) -> Option<Range<usize>> {
    let region = text.get(within.clone())?;
    let quoted = format!("\"{value}\"");
    region
        .find(&quoted)
        .map(|i| within.start + i..within.start + i + quoted.len())
}
