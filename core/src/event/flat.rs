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

use super::{CompactString, Event, EventBody, Metric, Projection};

/// Decodes `text` if it is a flat metric event, keeping what `projection`
/// asks for; `None` means "use the general decoder".
pub(super) fn decode(text: &str, projection: Projection) -> Option<Event> {
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
        cursor.expect(b'"')?;
        let key = cursor.key()?;
        cursor.expect(b':')?;
        match key {
            Key::Ts => set(&mut ts, cursor.unsigned()?)?,
            Key::Tenant => set(&mut tenant, cursor.string()?)?,
            Key::Source => set(&mut source, cursor.string()?)?,
            Key::Kind => {
                if kind_is_metric || !cursor.kind_is_metric()? {
                    return None;
                }
                kind_is_metric = true;
            }
            Key::Metric => set(&mut metric, cursor.string()?)?,
            Key::Value => set(&mut value, cursor.float()?)?,
            Key::Labels => set(&mut labels, cursor.string_map(projection.labels)?)?,
            Key::Other => cursor.scalar()?,
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
        tenant: CompactString::from(tenant?),
        source: match source? {
            kept if projection.source => CompactString::from(kept),
            _ => CompactString::default(),
        },
        body: EventBody::Metric(Metric {
            metric: CompactString::from(metric?),
            value: value.filter(|v: &f64| v.is_finite())?,
            labels: labels.unwrap_or_default(),
        }),
    })
}

/// The keys of a flat metric event, and any other key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Key {
    Ts,
    Tenant,
    Source,
    Kind,
    Metric,
    Value,
    Labels,
    Other,
}

/// Each known key, recognised with its closing quote by one 8-byte compare
/// ([`QuotedName::starts`]), without scanning it for its end first. In the order
/// the keys usually come.
const KNOWN_KEYS: [(QuotedName, Key); 7] = [
    (QuotedName::new(b"ts\""), Key::Ts),
    (QuotedName::new(b"tenant\""), Key::Tenant),
    (QuotedName::new(b"source\""), Key::Source),
    (QuotedName::new(b"kind\""), Key::Kind),
    (QuotedName::new(b"metric\""), Key::Metric),
    (QuotedName::new(b"value\""), Key::Value),
    (QuotedName::new(b"labels\""), Key::Labels),
];

/// `metric` and its closing quote, the one `kind` this decoder takes.
const METRIC_KIND: QuotedName = QuotedName::new(b"metric\"");

/// A name and its closing quote (at most 8 bytes) as the little-endian word
/// its bytes make, with the mask of those bytes.
#[derive(Clone, Copy)]
struct QuotedName {
    word: u64,
    mask: u64,
    length: usize,
}

impl QuotedName {
    const fn new(bytes: &[u8]) -> Self {
        let mut word = 0u64;
        let mut i = 0;
        while i < bytes.len() {
            word |= (bytes[i] as u64) << (8 * i);
            i += 1;
        }
        let mask = if bytes.len() == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * bytes.len())) - 1
        };
        Self {
            word,
            mask,
            length: bytes.len(),
        }
    }

    /// Whether `word` (the text after an opening quote) begins with this name and its quote.
    #[inline]
    fn starts(self, word: u64) -> bool {
        word & self.mask == self.word
    }
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
/// a word is a real hit in every mask that flags it, so the quote mask alone
/// says whether it is the closing quote.
fn plain_string_length(rest: &[u8]) -> Option<usize> {
    let mut offset = 0;
    while let Some(word) = rest.get(offset..offset + 8) {
        let x = u64::from_le_bytes(word.try_into().expect("8 bytes"));
        let quote = bytes_equal(x, b'"');
        let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
        let hits = quote | bytes_equal(x, b'\\') | control;
        if hits != 0 {
            let first = hits & hits.wrapping_neg();
            return (quote & first != 0).then_some(offset + (first.trailing_zeros() / 8) as usize);
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

/// The value of eight ASCII digits (the first in the lowest byte), if all
/// eight bytes are digits: pairs, then quadruples, then the whole, each step
/// one multiply (SWAR).
fn eight_digits(word: u64) -> Option<u64> {
    const HIGH_NIBBLES: u64 = ONES * 0xf0;
    let all_digits = word & HIGH_NIBBLES == ONES * 0x30 && word.wrapping_add(ONES * 0x06) & HIGH_NIBBLES == ONES * 0x30;
    if !all_digits {
        return None;
    }
    let digits = word - ONES * u64::from(b'0');
    let pairs = (digits * 10 + (digits >> 8)) & 0x00ff_00ff_00ff_00ff;
    let quadruples = (pairs * 100 + (pairs >> 16)) & 0x0000_ffff_0000_ffff;
    Some((quadruples * 10_000 + (quadruples >> 32)) & 0xffff_ffff)
}

/// Powers of ten that an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

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
    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The next non-whitespace byte, not consumed.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    /// The next non-whitespace byte, consumed.
    #[inline]
    fn next(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.at += 1;
        Some(byte)
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.next()? == byte).then_some(())
    }

    fn end(&mut self) -> Option<()> {
        self.skip_whitespace();
        (self.at == self.bytes.len()).then_some(())
    }

    /// The eight bytes from the cursor on, if there are that many.
    #[inline]
    fn word(&self) -> Option<u64> {
        let word = self.bytes.get(self.at..self.at + 8)?;
        Some(u64::from_le_bytes(word.try_into().expect("8 bytes")))
    }

    /// The next eight bytes as a word; near the end of the text the
    /// missing bytes read as NUL, which no [`QuotedName`] holds.
    #[inline]
    fn padded_word(&self) -> u64 {
        self.word().unwrap_or_else(|| {
            let rest = &self.bytes[self.at.min(self.bytes.len())..];
            let mut padded = [0u8; 8];
            padded[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(padded)
        })
    }

    /// A key, after its opening quote.
    fn key(&mut self) -> Option<Key> {
        let word = self.padded_word();
        if let Some(&(name, key)) = KNOWN_KEYS.iter().find(|(name, _)| name.starts(word)) {
            self.at += name.length;
            return Some(key);
        }
        match self.string_content()? {
            // Keys that other kinds use: leave them to the general decoder.
            "resource" | "reason" | "severity" | "message" | "from" | "to" | "relation" | "op" | "level" => None,
            _ => Some(Key::Other),
        }
    }

    /// Whether the `kind` value is the string `metric` (consumed if so).
    fn kind_is_metric(&mut self) -> Option<bool> {
        self.expect(b'"')?;
        let found = METRIC_KIND.starts(self.padded_word());
        if found {
            self.at += METRIC_KIND.length;
        }
        Some(found)
    }

    /// A string without escapes or control characters.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        self.string_content()
    }

    /// The rest of a string whose opening quote was consumed, and its closing quote.
    #[inline]
    fn string_content(&mut self) -> Option<&'a str> {
        let start = self.at;
        let length = plain_string_length(&self.bytes[start..])?;
        self.at = start + length + 1;
        // Both ends are next to an ASCII quote, so they are char boundaries.
        self.text.get(start..start + length)
    }

    /// Consumes ASCII digits; how many.
    #[inline]
    fn digits(&mut self) -> usize {
        self.accumulate(&mut 0)
    }

    /// The text of a JSON number, checked against the JSON grammar
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`).
    fn number(&mut self) -> Option<&'a str> {
        self.skip_whitespace();
        let start = self.at;
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        match self.bytes.get(self.at)? {
            b'0' => self.at += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        self.text.get(start..self.at)
    }

    /// A non-negative integer that fits in a u64, in one pass over its
    /// digits: eight at a time while there are eight (a millisecond timestamp
    /// has 13), then one at a time.
    fn unsigned(&mut self) -> Option<u64> {
        self.skip_whitespace();
        let first = *self.bytes.get(self.at)?;
        if !first.is_ascii_digit() || (first == b'0' && self.bytes.get(self.at + 1).is_some_and(u8::is_ascii_digit)) {
            // Not a number, or a leading zero (not JSON).
            return None;
        }
        let mut n = 0u64;
        while let Some(eight) = self.word().and_then(eight_digits) {
            n = n.checked_mul(100_000_000)?.checked_add(eight)?;
            self.at += 8;
        }
        while let Some(&byte) = self.bytes.get(self.at) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            n = n.checked_mul(10)?.checked_add(u64::from(digit))?;
            self.at += 1;
        }
        // A fraction or an exponent makes it a float: not a timestamp.
        match self.bytes.get(self.at) {
            Some(b'.' | b'e' | b'E') => None,
            _ => Some(n),
        }
    }

    /// A number as the nearest `f64`.
    fn float(&mut self) -> Option<f64> {
        self.skip_whitespace();
        let start = self.at;
        if let Some(value) = self.short_decimal() {
            return Some(value);
        }
        self.at = start;
        // Rust's parser rounds correctly, as serde_json's does.
        self.number()?.parse().ok()
    }

    /// A number of at most 15 digits without exponent
    /// (`-?(0|[1-9][0-9]*)(\.[0-9]+)?`), or `None` with the cursor anywhere.
    /// Its digits as an integer and the power of ten to divide them by are
    /// both exact in an `f64`, so the one rounding of the division is the
    /// correct one (Clinger's fast path, which Rust's parser takes first too,
    /// after more general work).
    fn short_decimal(&mut self) -> Option<f64> {
        let negative = self.bytes.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let integer_starts_with_zero = self.bytes.get(self.at) == Some(&b'0');
        let mut mantissa = 0u64;
        let integer_digits = self.accumulate(&mut mantissa);
        if integer_digits == 0 || (integer_digits > 1 && integer_starts_with_zero) {
            return None;
        }
        let mut fraction_digits = 0;
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            fraction_digits = self.accumulate(&mut mantissa);
            if fraction_digits == 0 {
                return None;
            }
        }
        if integer_digits + fraction_digits > 15 || matches!(self.bytes.get(self.at), Some(b'e' | b'E')) {
            return None;
        }
        let magnitude = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction_digits];
        Some(if negative { -magnitude } else { magnitude })
    }

    /// Consumes ASCII digits, appending them to `n` (wrapping past 19
    /// digits); how many.
    #[inline]
    fn accumulate(&mut self, n: &mut u64) -> usize {
        let from = self.at;
        while let Some(&byte) = self.bytes.get(self.at) {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                break;
            }
            *n = n.wrapping_mul(10).wrapping_add(u64::from(digit));
            self.at += 1;
        }
        self.at - from
    }

    /// An object whose values are all plain strings; empty unless `keep`.
    fn string_map(&mut self, keep: bool) -> Option<BTreeMap<String, String>> {
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
            if keep && map.insert(key.to_owned(), value.to_owned()).is_some() {
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
    fn eight_digits_read_as_one_number() {
        let word = |text: &[u8; 8]| u64::from_le_bytes(*text);
        assert_eq!(eight_digits(word(b"17000000")), Some(17_000_000));
        assert_eq!(eight_digits(word(b"01234567")), Some(1_234_567));
        assert_eq!(eight_digits(word(b"99999999")), Some(99_999_999));
        for not_digits in [b"1234567,", b"/1234567", b"1234:567", b"12345 67"] {
            assert_eq!(
                eight_digits(word(not_digits)),
                None,
                "{:?}",
                std::str::from_utf8(not_digits)
            );
        }
    }

    #[test]
    fn decodes_the_common_shapes() {
        for text in [
            r#"{"ts": 1700000000001, "tenant": "tenant-06", "source": "host-0325.rack-05.az-1.eu-central.prod.example.internal", "kind": "metric", "metric": "mem", "value": 95.5837}"#,
            r#"{"ts":1,"tenant":"t","source":"s","kind":"metric","metric":"cpu","value":-1.5e-3,"labels":{"region":"eu","az":"1"}}"#,
            r#" { "value" : 0 , "kind":"metric","metric":"m","source":"s","tenant":"ü","ts":0,"extra":"x","n":12 } "#,
            // The last key and kind within eight bytes of the end.
            r#"{"value":1,"metric":"m","source":"s","tenant":"t","kind":"metric","ts":1}"#,
        ] {
            let fast = decode(text, Projection::ALL).unwrap_or_else(|| panic!("fast path declined {text}"));
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
            assert_eq!(decode(text, Projection::ALL), None, "{text}");
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
            if let Some(fast) = decode(&text, Projection::ALL) {
                let general = general(&text);
                prop_assert!(general.is_ok(), "fast path accepted what serde_json rejects: {text}: {general:?}");
                let general = general.unwrap();
                prop_assert_eq!(fast.value().map(f64::to_bits), general.value().map(f64::to_bits), "{}", text);
                prop_assert_eq!(fast, general, "{}", text);
            }
        }

        /// Short decimals (computed exactly, not by Rust's parser) and
        /// integers of any length agree with serde_json to the bit.
        #[test]
        fn numbers_agree_with_serde_json(
            digits in 0u64..10_000_000_000_000_000,
            scale in 0usize..20,
            negative in any::<bool>(),
            ts in any::<u64>(),
        ) {
            let digits = digits.to_string();
            let number = if scale == 0 || scale >= digits.len() {
                digits.clone()
            } else {
                format!("{}.{}", &digits[..digits.len() - scale], &digits[digits.len() - scale..])
            };
            let number = if negative { format!("-{number}") } else { number };
            let text = format!(r#"{{"ts":{ts},"tenant":"t","source":"s","kind":"metric","metric":"m","value":{number}}}"#);
            let fast = decode(&text, Projection::ALL);
            prop_assert!(fast.is_some(), "declined {text}");
            let (fast, general) = (fast.unwrap(), general(&text).unwrap());
            prop_assert_eq!(fast.ts, general.ts);
            prop_assert_eq!(fast.value().map(f64::to_bits), general.value().map(f64::to_bits), "{}", text);
        }

        /// Well-formed flat metric events take the fast path, and agree,
        /// projected or not.
        #[test]
        fn takes_well_formed_events(text in well_formed(), source in any::<bool>(), labels in any::<bool>()) {
            let projection = Projection { source, labels };
            let fast = decode(&text, projection);
            prop_assert!(fast.is_some(), "declined {text}");
            let mut general = general(&text).unwrap();
            projection.apply(&mut general);
            prop_assert_eq!(fast.unwrap(), general);
        }

        /// A projected decode accepts and refuses what the full one does,
        /// and differs from it only in the parts it leaves out.
        #[test]
        fn projections_leave_out_only_their_parts(
            fields in prop::collection::vec(field(), 0..9),
            with_kind in any::<bool>(),
            source in any::<bool>(),
            labels in any::<bool>(),
        ) {
            let mut fields = fields;
            if with_kind {
                fields.push(r#""kind":"metric""#.to_owned());
            }
            let text = format!("{{{}}}", fields.join(","));
            let projection = Projection { source, labels };
            match (Event::from_json(text.as_bytes()), Event::from_json_projected(text.as_bytes(), projection)) {
                (Ok(mut full), Ok(projected)) => {
                    projection.apply(&mut full);
                    prop_assert_eq!(projected, full, "{}", text);
                }
                (Err(full), Err(projected)) => prop_assert_eq!(full.to_string(), projected.to_string()),
                (full, projected) => prop_assert!(false, "{text}: full {full:?}, projected {projected:?}"),
            }
        }
    }
}
