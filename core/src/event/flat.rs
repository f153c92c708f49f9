//! A fast decoder for the common case: a flat metric event.
//!
//! Most events on the wire are metrics shaped like
//! `{"ts":..,"tenant":"..","source":"..","kind":"metric","metric":"..","value":..,"labels":{..}}`.
//! This decoder handles exactly that shape — string values without escapes or
//! control characters, JSON numbers, a flat `labels` object of strings, unknown keys
//! with string or number values — and answers `None` for anything else (escapes,
//! other kinds, nested values, duplicates, malformed input). The caller then
//! decodes with serde_json, so every event decodes to the same value and every
//! error is serde_json's. A property test holds the two decoders equal.

use std::collections::BTreeMap;

use super::{Event, EventBody, Metric};

/// Decodes `text` if it is a flat metric event; `None` means "use the general decoder".
pub(super) fn decode(text: &str) -> Option<Event> {
    let mut cursor = Cursor {
        text,
        bytes: text.as_bytes(),
        at: 0,
    };
    let mut ts = None;
    let mut tenant = None;
    let mut source = None;
    let mut kind_is_metric = false;
    let mut metric = None;
    let mut value = None;
    let mut labels = None;

    cursor.expect(b'{')?;
    if cursor.peek()? == b'}' {
        return None;
    }
    loop {
        let key = cursor.string()?;
        cursor.expect(b':')?;
        match key {
            "ts" => set(&mut ts, cursor.unsigned()?)?,
            "tenant" => set(&mut tenant, cursor.string()?)?,
            "source" => set(&mut source, cursor.string()?)?,
            "kind" => {
                if kind_is_metric || cursor.string()? != "metric" {
                    return None;
                }
                kind_is_metric = true;
            }
            "metric" => set(&mut metric, cursor.string()?)?,
            "value" => set(&mut value, cursor.float()?)?,
            "labels" => set(&mut labels, cursor.string_map()?)?,
            // Keys that other kinds use: leave them to the general decoder.
            "resource" | "reason" | "severity" | "message" | "from" | "to" | "relation" | "op" | "level" => {
                return None;
            }
            _ => cursor.scalar()?,
        }
        match cursor.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    cursor.end()?;
    if !kind_is_metric {
        return None;
    }
    Some(Event {
        ts: ts?,
        tenant: tenant?.to_owned(),
        source: source?.to_owned(),
        body: EventBody::Metric(Metric {
            metric: metric?.to_owned(),
            value: value.filter(|v: &f64| v.is_finite())?,
            labels: labels.unwrap_or_default(),
        }),
    })
}

const ONES: u64 = u64::MAX / 255;
const HIGH: u64 = ONES << 7;

/// The high bit of every byte of `x` equal to `byte` (exact for the lowest one).
fn bytes_equal(x: u64, byte: u8) -> u64 {
    let y = x ^ (ONES * u64::from(byte));
    y.wrapping_sub(ONES) & !y & HIGH
}

/// The length of a string's content up to its closing quote, when it needs no
/// unescaping and is valid JSON as it is (no backslash, no control character);
/// `None` otherwise. Eight bytes at a time (SWAR): the lowest flagged byte of
/// a word is always a real hit, and it says which case it is.
fn plain_string_length(rest: &[u8]) -> Option<usize> {
    let mut offset = 0;
    while let Some(word) = rest.get(offset..offset + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let hits = bytes_equal(x, b'"') | bytes_equal(x, b'\\') | control;
        if hits != 0 {
            let index = offset + (hits.trailing_zeros() / 8) as usize;
            return (rest[index] == b'"').then_some(index);
        }
        offset += 8;
    }
    for (index, &byte) in rest.iter().enumerate().skip(offset) {
        if byte == b'"' {
            return Some(index);
        }
        if byte == b'\\' || byte < 0x20 {
            return None;
        }
    }
    None
}

/// Stores a field seen for the first time; a duplicate is for serde to report.
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// The next non-whitespace byte, consumed.
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn end(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    /// A string without escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.at;
        let length = plain_string_length(&self.bytes[start..])?;
        self.at = start + length + 1;
        // Both ends are next to an ASCII quote, so they are char boundaries.
        self.text.get(start..start + length)
    }

    /// The text of a JSON number, checked against the JSON grammar
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    fn number(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        let digits = |c: &mut Self| {
            let from = c.at;
            while c.bytes.get(c.at).is_some_and(u8::is_ascii_digit) {
                c.at += 1;
            }
            c.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        self.text.get(start..self.at)
    }

    /// A non-negative integer that fits in a u64.
    fn unsigned(&mut self) -> Option<u64> {
        let text = self.number()?;
        text.bytes().try_fold(0u64, |n, b| {
            let digit = b.wrapping_sub(b'0');
            (digit < 10).then_some(())?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
    }

    fn float(&mut self) -> Option<f64> {
        // Rust's parser rounds correctly, as serde_json's does.
        self.number()?.parse().ok()
    }

    /// An object whose values are all plain strings.
    fn string_map(&mut self) -> Option<BTreeMap<String, String>> {
        self.expect(b'{')?;
        let mut map = BTreeMap::new();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(map);
        }
        loop {
            let key = self.string()?;
            self.expect(b':')?;
            let value = self.string()?;
            if map.insert(key.to_owned(), value.to_owned()).is_some() {
                return None;
            }
            match self.next()? {
                b',' => continue,
                b'}' => return Some(map),
                _ => return None,
            }
        }
    }

    /// An ignored value: a plain string or a number.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            _ => self.number().map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn general(text: &str) -> Result<Event, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn plain_strings_end_at_their_quote_without_escapes_or_control_characters() {
        let host = b"host-0325.rack-05.az-1.eu-central.prod.example.internal\", \"kind\"";
        assert_eq!(plain_string_length(host), Some(55));
        assert_eq!(plain_string_length(b"\""), Some(0));
        assert_eq!(
            plain_string_length("ünïcödé and more than eight bytes\"".as_bytes()),
            Some(37)
        );
        for bad in [
            &b"back\\slash in a long string\""[..],
            b"tab\there\"",
            b"\x1f\"",
            b"0123456789abcdef\n\"",
            b"no end",
        ] {
            assert_eq!(plain_string_length(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn decodes_the_common_shapes() {
        for text in [
            r#"{"ts": 1700000000001, "tenant": "tenant-06", "source": "host-0325.rack-05.az-1.eu-central.prod.example.internal", "kind": "metric", "metric": "mem", "value": 95.5837}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":-1.5e-3,"labels":{"region":"eu","az":"1"}}"#,
            r#" { "value" : 0 , "kind":"metric","metric":"m","source":"s","tenant":"ü","ts":0,"extra":"x","n":12 } "#,
        ] {
            let fast = decode(text).unwrap_or_else(|| panic!("fast path declined {text}"));
            assert_eq!(fast, general(text).unwrap(), "{text}");
        }
    }

    #[test]
    fn declines_what_it_does_not_handle() {
        for text in [
            r#"{"ts":1,"tenant":"t\"x","source":"s","kind":"metric","metric":"cpu","value":1}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"log","resource":{"kind":"Pod","name":"a"},"level":"e","message":"m"}"#,
            r#"{"ts":1.0,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#,
            r#"{"ts":1,"ts":2,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":01}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1,"x":null}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1e999}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu"}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":1} x"#,
            r#"{}"#,
        ] {
            assert_eq!(decode(text), None, "{text}");
        }
    }

    /// Pieces of JSON: mostly well-formed event fields, sometimes not.
    fn field() -> impl Strategy<Value = String> {
        let string = prop_oneof![
            "[a-z0-9._-]{0,12}",
            Just("with \\\"escape".to_owned()),
            Just("tab\\there".to_owned()),
            Just("ünïcödé".to_owned()),
        ];
        let number = prop_oneof![
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| format!("{x:e}")),
            any::<f64>()
                .prop_filter("finite", |x| x.is_finite())
                .prop_map(|x| format!("{x}")),
            any::<i64>().prop_map(|x| x.to_string()),
            any::<u64>().prop_map(|x| x.to_string()),
            Just("-0".to_owned()),
            Just("1.".to_owned()),
            Just(".5".to_owned()),
            Just("+1".to_owned()),
            Just("1e400".to_owned()),
            Just("00".to_owned()),
        ];
        let value = prop_oneof![
            4 => string.clone().prop_map(|s| format!("\"{s}\"")),
            4 => number,
            1 => Just("null".to_owned()),
            1 => Just("true".to_owned()),
            1 => Just("[1,2]".to_owned()),
            1 => (string.clone(), string.clone()).prop_map(|(k, v)| format!("{{\"{k}\":\"{v}\"}}")),
        ];
        let key = prop_oneof![
            Just("ts"),
            Just("tenant"),
            Just("source"),
            Just("kind"),
            Just("metric"),
            Just("value"),
            Just("labels"),
            Just("level"),
            Just("other"),
        ];
        (key, value, prop_oneof![Just(""), Just(" "), Just("\n")])
            .prop_map(|(k, v, ws)| format!("{ws}\"{k}\"{ws}:{ws}{v}{ws}"))
    }

    fn well_formed() -> impl Strategy<Value = String> {
        (
            any::<u64>(),
            "[a-z-]{1,10}",
            "[a-z0-9.-]{1,60}",
            "[a-z]{1,6}",
            any::<f64>().prop_filter("finite", |x| x.is_finite()),
            prop::collection::btree_map("[a-z]{1,5}", "[a-z0-9]{0,5}", 0..3),
        )
            .prop_map(|(ts, tenant, source, metric, value, labels)| {
                let labels: Vec<String> = labels.iter().map(|(k, v)| format!("\"{k}\":\"{v}\"")).collect();
                format!(
                    r#"{{"ts":{ts},"tenant":"{tenant}","source":"{source}","kind":"metric","metric":"{metric}","value":{value:e},"labels":{{{}}}}}"#,
                    labels.join(",")
                )
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Whenever the fast path answers, the general decoder gives the same event.
        #[test]
        fn agrees_with_serde_json(fields in prop::collection::vec(field(), 0..9), with_kind in any::<bool>()) {
            let mut fields = fields;
            if with_kind {
                fields.push(r#""kind":"metric""#.to_owned());
            }
            let text = format!("{{{}}}", fields.join(","));
            if let Some(fast) = decode(&text) {
                let general = general(&text);
                prop_assert!(general.is_ok(), "fast path accepted what serde_json rejects: {text}: {general:?}");
                let general = general.unwrap();
                prop_assert_eq!(fast.value().map(f64::to_bits), general.value().map(f64::to_bits), "{}", text);
                prop_assert_eq!(fast, general, "{}", text);
            }
        }

        /// Well-formed flat metric events take the fast path, and agree.
        #[test]
        fn takes_well_formed_events(text in well_formed()) {
            let fast = decode(&text);
            prop_assert!(fast.is_some(), "declined {text}");
            prop_assert_eq!(fast.unwrap(), general(&text).unwrap());
        }
    }
}
