//! `${VAR}` and `${VAR:-default}` in pipeline files, as Vector does.
//!
//! Interpolation runs on the raw text before it is parsed, so a reference
//! works anywhere; `$$` writes a literal `$`. A value is never pasted in as
//! TOML syntax: it is escaped for the place it lands in, so a `"`, `\`, `]`
//! or `${` in a password stays part of the password.
//!
//! - in a `"…"` or `"""…"""` string: `\` and `"` are escaped, control
//!   characters (newlines too) written as escapes, so no line moves;
//! - in a `'…'` or `'''…'''` string (no escapes in TOML): a value with a `'`
//!   or a control character is refused, with the fix (use `"…"`);
//! - outside strings (e.g. `workers = ${WORKERS}`): only a bare number,
//!   boolean or date fits; anything else is refused (quote the reference);
//! - in a comment: control characters become spaces.
//!
//! The text that results has the same lines as the file, so later errors
//! keep their line numbers.

use std::ops::Range;

use super::diagnostic::Diagnostic;

/// A pipeline's text after interpolation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interpolated {
    /// The text, with every reference replaced.
    pub text: String,
    /// Where in `text` a value was put (a variable's value or a default).
    pub substituted: Vec<Range<usize>>,
}

impl Interpolated {
    /// Whether `span` of the text holds (part of) a substituted value.
    pub fn is_substituted(&self, span: &Range<usize>) -> bool {
        self.substituted
            .iter()
            .any(|value| value.start < span.end && span.start < value.end)
    }
}

/// Where in the TOML text a reference sits: what a value must be escaped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// Outside strings and comments.
    Bare,
    /// `"…"` or `"""…"""`.
    Basic { multiline: bool },
    /// `'…'` or `'''…'''`.
    Literal { multiline: bool },
    /// After `#`, to the end of the line.
    Comment,
}

/// Follows `text` byte by byte to know the [`Context`] of each position.
struct Lexer {
    context: Context,
}

impl Lexer {
    /// Moves past the TOML syntax at the start of `rest` (which is not a `$`),
    /// returning how many bytes it covered.
    fn advance(&mut self, rest: &str) -> usize {
        let starts = |s: &str| rest.starts_with(s);
        match self.context {
            Context::Bare => {
                if starts("\"\"\"") {
                    self.context = Context::Basic { multiline: true };
                    3
                } else if starts("'''") {
                    self.context = Context::Literal { multiline: true };
                    3
                } else if starts("\"") {
                    self.context = Context::Basic { multiline: false };
                    1
                } else if starts("'") {
                    self.context = Context::Literal { multiline: false };
                    1
                } else if starts("#") {
                    self.context = Context::Comment;
                    1
                } else {
                    char_len(rest)
                }
            }
            Context::Basic { multiline } => {
                if starts("\\") {
                    1 + rest[1..].chars().next().map_or(0, char::len_utf8)
                } else if multiline && starts("\"\"\"") {
                    self.context = Context::Bare;
                    3
                } else if !multiline && (starts("\"") || starts("\n")) {
                    self.context = Context::Bare;
                    1
                } else {
                    char_len(rest)
                }
            }
            Context::Literal { multiline } => {
                if multiline && starts("'''") {
                    self.context = Context::Bare;
                    3
                } else if !multiline && (starts("'") || starts("\n")) {
                    self.context = Context::Bare;
                    1
                } else {
                    char_len(rest)
                }
            }
            Context::Comment => {
                if starts("\n") {
                    self.context = Context::Bare;
                }
                char_len(rest)
            }
        }
    }
}

fn char_len(rest: &str) -> usize {
    rest.chars().next().map_or(1, char::len_utf8)
}

/// `value` written so that it means itself where `context` says it lands,
/// or why it cannot be.
fn escape(value: &str, context: Context) -> Result<String, String> {
    match context {
        Context::Basic { .. } => {
            let mut escaped = String::with_capacity(value.len());
            for c in value.chars() {
                match c {
                    '\\' => escaped.push_str("\\\\"),
                    '"' => escaped.push_str("\\\""),
                    '\n' => escaped.push_str("\\n"),
                    '\r' => escaped.push_str("\\r"),
                    '\t' => escaped.push_str("\\t"),
                    c if c.is_control() => escaped.push_str(&format!("\\u{:04X}", c as u32)),
                    c => escaped.push(c),
                }
            }
            Ok(escaped)
        }
        Context::Literal { .. } => {
            if value.contains('\'') || value.chars().any(char::is_control) {
                Err("it contains a `'` or a control character, which a '…' string cannot hold".to_owned())
            } else {
                Ok(value.to_owned())
            }
        }
        Context::Bare => {
            let bare = !value.is_empty()
                && value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '.' | ':'));
            if bare {
                Ok(value.to_owned())
            } else {
                Err("it is pasted outside a string, where only a number, true/false or a date fits".to_owned())
            }
        }
        Context::Comment => Ok(value.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()),
    }
}

/// Replaces every `${VAR}` / `${VAR:-default}` in `text` using `env`.
///
/// Returns every unset variable without a default, every malformed
/// reference and every value that cannot be written where it is used, as
/// diagnostics placed at the reference.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Interpolated, Vec<Diagnostic>> {
    let mut out = String::with_capacity(text.len());
    let mut substituted = Vec::new();
    let mut errors = Vec::new();
    let mut lexer = Lexer { context: Context::Bare };
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        if !rest.starts_with('$') {
            let step = lexer.advance(rest);
            out.push_str(&rest[..step]);
            at += step;
            continue;
        }
        let after = &rest[1..];
        if after.starts_with('$') {
            out.push('$');
            at += 2;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            at += 1;
            continue;
        };
        let Some(close) = body_and_tail.find('}').filter(|i| !body_and_tail[..*i].contains('\n')) else {
            errors.push(Diagnostic::new(
                Some(at..at + 2),
                "unclosed `${` in the pipeline file",
                Some("close it: `${NAME}`, or write `$$` for a literal dollar sign".into()),
            ));
            out.push_str("${");
            at += 2;
            continue;
        };
        let body = &body_and_tail[..close];
        let span = at..at + close + 3;
        at = span.end;
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            errors.push(Diagnostic::new(
                Some(span),
                format!("`${{{body}}}` is not a valid variable reference"),
                Some("write `${NAME}` or `${NAME:-default}` with NAME made of letters, digits and `_`".into()),
            ));
            continue;
        }
        let value = match (env(name), default) {
            (Some(value), _) => value,
            (None, Some(default)) => default.to_owned(),
            (None, None) => {
                errors.push(Diagnostic::new(
                    Some(span),
                    format!("environment variable `{name}` is not set"),
                    Some(format!(
                        "set it (`export {name}=...`) or give a default: `${{{name}:-value}}`"
                    )),
                ));
                continue;
            }
        };
        match escape(&value, lexer.context) {
            Ok(escaped) => {
                substituted.push(out.len()..out.len() + escaped.len());
                out.push_str(&escaped);
            }
            Err(why) => errors.push(Diagnostic::new(
                Some(span),
                format!("the value of `{name}` cannot be used here: {why}"),
                Some(match lexer.context {
                    Context::Bare => format!("put the reference in a string: \"${{{body}}}\""),
                    _ => format!("use a \"…\" string, where any value is escaped: \"${{{body}}}\""),
                }),
            )),
        }
    }
    if errors.is_empty() {
        Ok(Interpolated { text: out, substituted })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "HOME_DIR" => Some("/home/pulse".to_owned()),
            "HOSTILE" => Some("a\"b\\c\nd]e${HOME_DIR}'f\u{1}".to_owned()),
            "COUNT" => Some("20".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn replaces_variables_and_defaults() {
        let text = r#"path = "${HOME_DIR}/in.jsonl" # ${MISSING:-fallback} $$5 $x"#;
        let done = interpolate(text, &env).unwrap();
        assert_eq!(done.text, r#"path = "/home/pulse/in.jsonl" # fallback $5 $x"#);
        assert_eq!(&done.text[done.substituted[0].clone()], "/home/pulse");
        assert_eq!(&done.text[done.substituted[1].clone()], "fallback");
    }

    #[test]
    fn names_unset_variables_where_they_are() {
        let text = "a = \"${NOPE}\"\nb = \"${ALSO_NOPE}\"";
        let errors = interpolate(text, &env).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(errors[0].message.contains("`NOPE` is not set"));
        assert_eq!(errors[0].span, Some(5..12));
        assert!(errors[1].help.as_deref().unwrap().contains("${ALSO_NOPE:-value}"));
    }

    #[test]
    fn rejects_malformed_references() {
        assert!(
            interpolate("a = \"${bad name}\"", &env).unwrap_err()[0]
                .message
                .contains("not a valid variable")
        );
        assert!(
            interpolate("a = \"${OPEN\"\n", &env).unwrap_err()[0]
                .message
                .contains("unclosed")
        );
    }

    /// Quotes, backslashes, newlines, `]` and `${` in a value stay part of the
    /// value: the parsed string is exactly the variable's value.
    #[test]
    fn hostile_values_in_strings_are_escaped() {
        for text in ["v = \"${HOSTILE}\"\nw = 1\n", "v = \"\"\"${HOSTILE}\"\"\"\nw = 1\n"] {
            let done = interpolate(text, &env).unwrap();
            assert_eq!(done.text.lines().count(), 2, "no line added: {}", done.text);
            let table: toml::Table = toml::from_str(&done.text).unwrap();
            assert_eq!(table["v"].as_str(), env("HOSTILE").as_deref(), "{}", done.text);
            assert_eq!(table["w"].as_integer(), Some(1));
        }
    }

    #[test]
    fn values_that_cannot_be_written_where_they_land_are_refused() {
        let in_literal = interpolate("v = '${HOSTILE}'", &env).unwrap_err();
        assert!(in_literal[0].help.as_deref().unwrap().contains("\"${HOSTILE}\""));
        let bare = interpolate("v = ${HOSTILE}", &env).unwrap_err();
        assert!(bare[0].message.contains("outside a string"), "{:?}", bare[0]);
        assert_eq!(bare[0].span, Some(4..14));
        let done = interpolate("v = ${COUNT} # and '${HOME_DIR}' in a comment", &env).unwrap();
        assert_eq!(done.text, "v = 20 # and '/home/pulse' in a comment");
        assert_eq!(
            interpolate("v = 'C:\\${HOME_DIR}' # \"${HOSTILE}\"", &env)
                .unwrap()
                .text,
            "v = 'C:\\/home/pulse' # \"a\"b\\c d]e${HOME_DIR}'f \""
        );
    }
}
