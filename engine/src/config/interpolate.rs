//! `${VAR}` and `${VAR:-default}` in pipeline files, as Vector does.
//!
//! Interpolation runs on the raw text before it is parsed, so it works in any
//! string value; `$$` writes a literal `$`. Replacement values must not
//! contain newlines (they would shift every line number after them).

use super::diagnostic::Diagnostic;

/// Replaces every `${VAR}` / `${VAR:-default}` in `text` using `env`.
///
/// Returns every unset variable without a default, and every malformed
/// reference, as diagnostics placed at the reference.
pub fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<Diagnostic>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let start = offset + dollar;
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            offset += dollar + 2;
            rest = tail;
            continue;
        }
        let Some(body_and_tail) = after.strip_prefix('{') else {
            out.push('$');
            offset += dollar + 1;
            rest = after;
            continue;
        };
        let Some(close) = body_and_tail.find('}').filter(|i| !body_and_tail[..*i].contains('\n')) else {
            errors.push(Diagnostic::new(
                Some(start..start + 2),
                "unclosed `${` in the pipeline file",
                Some("close it: `${NAME}`, or write `$$` for a literal dollar sign".into()),
            ));
            out.push_str("${");
            offset += dollar + 2;
            rest = body_and_tail;
            continue;
        };
        let body = &body_and_tail[..close];
        let span = start..start + close + 3;
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
        } else {
            match (env(name), default) {
                (Some(value), _) if value.contains('\n') => errors.push(Diagnostic::new(
                    Some(span),
                    format!("environment variable `{name}` contains a newline"),
                    Some("pipeline values are single-line; set it without newlines".into()),
                )),
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => errors.push(Diagnostic::new(
                    Some(span),
                    format!("environment variable `{name}` is not set"),
                    Some(format!(
                        "set it (`export {name}=...`) or give a default: `${{{name}:-value}}`"
                    )),
                )),
            }
        }
        offset += dollar + 1 + 1 + close + 1;
        rest = &body_and_tail[close + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() { Ok(out) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "HOME_DIR").then(|| "/home/pulse".to_owned())
    }

    #[test]
    fn replaces_variables_and_defaults() {
        let text = r#"path = "${HOME_DIR}/in.jsonl" # ${MISSING:-fallback} $$5 $x"#;
        assert_eq!(
            interpolate(text, &env).unwrap(),
            r#"path = "/home/pulse/in.jsonl" # fallback $5 $x"#
        );
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
}
