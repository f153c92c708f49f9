//! Cypher parameters written as text, for servers that take them only in the
//! query itself: FalkorDB's `GRAPH.QUERY <graph> "CYPHER name=value … <query>"`.
//!
//! The graph sink (which writes) and the gateway's Cypher endpoint (which
//! reads) both send parameters this way, so the one encoder lives here. The
//! encoder is the only thing standing between a hostile string and the query
//! text, so it is deliberately small: strings are single-quoted with `\` and
//! `'` escaped (nothing else has meaning inside a quoted Cypher string),
//! numbers must be finite, strings must not hold NUL (FalkorDB reads the
//! query as a C string and would stop there), and names (of parameters and of map keys) must be
//! plain identifiers, refused otherwise rather than quoted.
//!
//! ```
//! use std::collections::BTreeMap;
//! use pulse_core::cypher::{CypherValue, parameter_prefix};
//!
//! let params = BTreeMap::from([("name".to_owned(), CypherValue::from("it's \\ here"))]);
//! assert_eq!(parameter_prefix(&params).unwrap(), r"CYPHER name='it\'s \\ here' ");
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value a Cypher parameter can hold.
#[derive(Clone, Debug, PartialEq)]
pub enum CypherValue {
    /// `null`
    Null,
    /// `true` / `false`
    Bool(bool),
    /// A 64-bit integer.
    Int(i64),
    /// A finite float (NaN and infinities are refused when written).
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    List(Vec<CypherValue>),
    /// A map with identifier keys.
    Map(BTreeMap<String, CypherValue>),
}

/// Why a value cannot be written as a Cypher literal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CypherParamError {
    /// A NaN or infinite float (Cypher literals cannot say them).
    #[error("parameter `{0}` holds a number that is not finite")]
    NotFinite(String),
    /// A parameter or map key that is not a plain identifier.
    #[error("`{0}` is not a parameter name (letters, digits and `_`, not starting with a digit)")]
    BadName(String),
    /// A string with a NUL character, which ends FalkorDB's query text early.
    #[error("parameter `{0}` holds a string with a NUL character")]
    Nul(String),
    /// A JSON number that is neither an `i64` nor a finite `f64`.
    #[error("parameter `{0}` holds a number Cypher cannot represent")]
    BadNumber(String),
}

impl From<&str> for CypherValue {
    fn from(text: &str) -> Self {
        CypherValue::Str(text.to_owned())
    }
}

impl From<String> for CypherValue {
    fn from(text: String) -> Self {
        CypherValue::Str(text)
    }
}

impl From<i64> for CypherValue {
    fn from(number: i64) -> Self {
        CypherValue::Int(number)
    }
}

impl From<Option<String>> for CypherValue {
    fn from(text: Option<String>) -> Self {
        text.map_or(CypherValue::Null, CypherValue::Str)
    }
}

impl CypherValue {
    /// The value of a JSON document (map keys must be identifiers; `name`
    /// names the parameter in errors).
    pub fn from_json(name: &str, json: &serde_json::Value) -> Result<Self, CypherParamError> {
        Ok(match json {
            serde_json::Value::Null => CypherValue::Null,
            serde_json::Value::Bool(b) => CypherValue::Bool(*b),
            serde_json::Value::Number(number) => match (number.as_i64(), number.as_f64()) {
                (Some(int), _) => CypherValue::Int(int),
                (None, Some(float)) if float.is_finite() => CypherValue::Float(float),
                _ => return Err(CypherParamError::BadNumber(name.to_owned())),
            },
            serde_json::Value::String(text) => CypherValue::Str(text.clone()),
            serde_json::Value::Array(items) => CypherValue::List(
                items
                    .iter()
                    .map(|item| Self::from_json(name, item))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => CypherValue::Map(
                map.iter()
                    .map(|(key, value)| Ok((key.clone(), Self::from_json(name, value)?)))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }

    /// Appends the value as a Cypher literal to `out` (`name` names the
    /// parameter in errors).
    pub fn write_literal(&self, name: &str, out: &mut String) -> Result<(), CypherParamError> {
        match self {
            CypherValue::Null => out.push_str("null"),
            CypherValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            CypherValue::Int(int) => {
                let _ = write!(out, "{int}");
            }
            CypherValue::Float(float) => {
                if !float.is_finite() {
                    return Err(CypherParamError::NotFinite(name.to_owned()));
                }
                // `{:?}` keeps every digit and a `.` or an exponent; a float
                // literal needs the `.` (`1e300` would read as an integer overflow).
                let text = format!("{float:?}");
                match text.split_once('e') {
                    Some((mantissa, exponent)) if !mantissa.contains('.') => {
                        let _ = write!(out, "{mantissa}.0e{exponent}");
                    }
                    _ => out.push_str(&text),
                }
            }
            CypherValue::Str(text) if text.contains('\0') => return Err(CypherParamError::Nul(name.to_owned())),
            CypherValue::Str(text) => write_string(text, out),
            CypherValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write_literal(name, out)?;
                }
                out.push(']');
            }
            CypherValue::Map(map) => {
                out.push('{');
                for (i, (key, value)) in map.iter().enumerate() {
                    if !is_identifier(key) {
                        return Err(CypherParamError::BadName(key.clone()));
                    }
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(key);
                    out.push_str(": ");
                    value.write_literal(name, out)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }
}

/// `text` as a single-quoted Cypher string: `\` and `'` escaped, everything
/// else (newlines, `*/`, `}`, quotes of the other kind) as it is, which a
/// quoted string holds without meaning.
fn write_string(text: &str, out: &mut String) {
    out.reserve(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        if c == '\\' || c == '\'' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
}

/// Whether `name` can stand as a parameter name or map key unquoted.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

/// The `CYPHER a=… b=… ` prefix that binds `params` for the query after it
/// (empty when there are none).
pub fn parameter_prefix(params: &BTreeMap<String, CypherValue>) -> Result<String, CypherParamError> {
    if params.is_empty() {
        return Ok(String::new());
    }
    let mut out = String::from("CYPHER ");
    for (name, value) in params {
        if !is_identifier(name) {
            return Err(CypherParamError::BadName(name.clone()));
        }
        out.push_str(name);
        out.push('=');
        value.write_literal(name, &mut out)?;
        out.push(' ');
    }
    Ok(out)
}

/// The FalkorDB graph (a Redis key) that holds `tenant`'s graph: `prefix`
/// then the tenant with `%` and `:` written `%25` and `%3A`, so no tenant's
/// graph name can be another's (`pulse:acme` for tenant `acme`).
pub fn tenant_graph(prefix: &str, tenant: &str) -> String {
    format!("{prefix}{}", tenant.replace('%', "%25").replace(':', "%3A"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads back one quoted string the way a Cypher lexer does, returning it
    /// and what follows the closing quote.
    fn read_string(literal: &str) -> (String, &str) {
        let mut chars = literal.char_indices();
        assert_eq!(chars.next(), Some((0, '\'')));
        let mut text = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => text.push(chars.next().expect("an escape is followed by a char").1),
                '\'' => return (text, &literal[i + 1..]),
                other => text.push(other),
            }
        }
        panic!("unterminated string in {literal}");
    }

    #[test]
    fn hostile_strings_round_trip_and_end_where_they_should() {
        let hostile = [
            "plain",
            "it's",
            "'",
            "\\",
            "\\'",
            "'\\",
            "ends with a backslash \\",
            "*/ MATCH (n) DETACH DELETE n /*",
            "' RETURN 1 //",
            "}, x='y'",
            "line\nbreak\r\nand\ttab",
            "\"double\" `back`",
            "$param {map: 1}",
            "ünïcødé ✓ 🚀",
            "",
        ];
        for text in hostile {
            let mut literal = String::new();
            CypherValue::from(text).write_literal("p", &mut literal).unwrap();
            let (back, rest) = read_string(&literal);
            assert_eq!(back, text, "{literal}");
            assert_eq!(rest, "", "the literal ends at its own closing quote: {literal}");
        }
    }

    #[test]
    fn the_prefix_binds_exactly_the_given_names() {
        let params = BTreeMap::from([
            ("a".to_owned(), CypherValue::from("x' b='evil")),
            (
                "rows".to_owned(),
                CypherValue::List(vec![CypherValue::Map(BTreeMap::from([
                    ("name".to_owned(), CypherValue::from("}]")),
                    ("n".to_owned(), CypherValue::Int(-3)),
                    ("f".to_owned(), CypherValue::Float(1e300)),
                    ("none".to_owned(), CypherValue::Null),
                    ("yes".to_owned(), CypherValue::Bool(true)),
                ]))]),
            ),
        ]);
        assert_eq!(
            parameter_prefix(&params).unwrap(),
            r"CYPHER a='x\' b=\'evil' rows=[{f: 1.0e300, n: -3, name: '}]', none: null, yes: true}] "
        );
    }

    #[test]
    fn names_and_numbers_that_cannot_be_written_are_refused() {
        let bad_name = BTreeMap::from([("a=1 b".to_owned(), CypherValue::Null)]);
        assert!(matches!(parameter_prefix(&bad_name), Err(CypherParamError::BadName(_))));
        let bad_key = BTreeMap::from([(
            "m".to_owned(),
            CypherValue::Map(BTreeMap::from([("x}".to_owned(), CypherValue::Null)])),
        )]);
        assert!(matches!(parameter_prefix(&bad_key), Err(CypherParamError::BadName(_))));
        let nul = BTreeMap::from([("s".to_owned(), CypherValue::from("a\0b"))]);
        assert_eq!(parameter_prefix(&nul), Err(CypherParamError::Nul("s".to_owned())));
        for float in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let params = BTreeMap::from([("x".to_owned(), CypherValue::Float(float))]);
            assert_eq!(
                parameter_prefix(&params),
                Err(CypherParamError::NotFinite("x".to_owned()))
            );
        }
        assert!(parameter_prefix(&BTreeMap::new()).unwrap().is_empty());
    }

    #[test]
    fn json_parameters_keep_their_types() {
        let json = serde_json::json!({"n": 1, "f": 0.5, "s": "x", "l": [true, null], "m": {"k": "v"}});
        let CypherValue::Map(map) = CypherValue::from_json("p", &json).unwrap() else {
            panic!("an object is a map")
        };
        assert_eq!(map["n"], CypherValue::Int(1));
        assert_eq!(map["f"], CypherValue::Float(0.5));
        assert_eq!(
            map["l"],
            CypherValue::List(vec![CypherValue::Bool(true), CypherValue::Null])
        );
    }

    #[test]
    fn tenant_graphs_cannot_collide() {
        assert_eq!(tenant_graph("pulse:", "acme"), "pulse:acme");
        assert_ne!(tenant_graph("pulse:", "a:b"), tenant_graph("pulse:", "a%3Ab"));
    }
}
