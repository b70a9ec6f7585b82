//! Parse TOML, JSON and YAML into one tree that remembers where each key and value was
//! written, so that every later check reports a line and column the same way whatever the
//! format. TOML gives spans directly; for JSON and YAML the values come from serde (in
//! document order) and the positions of keys from a scan of the text in the same order.

use super::error::Pos;
pub(crate) use super::tree::{Entry, Kind, Node};

/// The format of a config file, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
    Yaml,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }
}

/// A syntax error: position and message.
#[derive(Debug)]
pub(crate) struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Parse `text` in `format` into a positioned tree.
pub(crate) fn parse(text: &str, format: Format) -> Result<Node, SyntaxError> {
    match format {
        Format::Toml => parse_toml(text),
        Format::Json => {
            let mut node: Node = serde_json::from_str(text).map_err(|e| SyntaxError {
                pos: Pos {
                    line: e.line(),
                    col: e.column(),
                },
                message: strip_position(&e.to_string()),
            })?;
            Scanner {
                text,
                cursor: 0,
                json: true,
            }
            .place(&mut node);
            Ok(node)
        }
        Format::Yaml => {
            let mut node: Node = serde_yaml_ng::from_str(text).map_err(|e| {
                let pos = e.location().map_or(Pos { line: 1, col: 1 }, |l| Pos {
                    line: l.line(),
                    col: l.column(),
                });
                SyntaxError {
                    pos,
                    message: strip_position(&e.to_string()),
                }
            })?;
            Scanner {
                text,
                cursor: 0,
                json: false,
            }
            .place(&mut node);
            Ok(node)
        }
    }
}

/// serde_json and serde_yaml end their messages with the position, which the caller prints
/// in front already.
fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn parse_toml(text: &str) -> Result<Node, SyntaxError> {
    use toml::de::{DeTable, DeValue};
    let table = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        let mut message = e.message().trim_end().to_string();
        // toml does not say which key is duplicated; its span does.
        if message == "duplicate key" {
            if let Some(key) = text.get(span.clone()) {
                message = format!("duplicate key `{key}`");
            }
        }
        SyntaxError {
            pos: Pos::from_offset(text, span.start),
            message,
        }
    })?;
    fn convert(value: &DeValue, start: usize, text: &str) -> Node {
        let pos = Pos::from_offset(text, start);
        let kind = match value {
            DeValue::String(s) => Kind::Str(s.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                match i64::from_str_radix(&digits, i.radix()) {
                    Ok(n) => Kind::Int(n),
                    // Too large for 64 bits (the only way a valid TOML integer fails to
                    // parse): kept as written so that validation reports it where it is.
                    Err(_) => Kind::BigInt(match i.radix() {
                        16 => format!("0x{digits}"),
                        8 => format!("0o{digits}"),
                        2 => format!("0b{digits}"),
                        _ => digits,
                    }),
                }
            }
            DeValue::Float(f) => {
                Kind::Float(f.as_str().replace('_', "").parse().unwrap_or(f64::NAN))
            }
            DeValue::Boolean(b) => Kind::Bool(*b),
            DeValue::Datetime(d) => Kind::Str(d.to_string()),
            DeValue::Array(items) => Kind::Array(
                items
                    .iter()
                    .map(|v| convert(v.get_ref(), v.span().start, text))
                    .collect(),
            ),
            DeValue::Table(t) => {
                let mut entries: Vec<Entry> = t
                    .iter()
                    .map(|(k, v)| Entry {
                        key: k.get_ref().to_string(),
                        pos: Pos::from_offset(text, k.span().start),
                        value: convert(v.get_ref(), v.span().start, text),
                    })
                    .collect();
                // toml keeps tables sorted by key; the order written is the order of the spans.
                entries.sort_by_key(|e| e.pos);
                Kind::Table(entries)
            }
        };
        Node { kind, pos }
    }
    let span = table.span();
    let root = DeValue::Table(table.into_inner());
    let mut node = convert(&root, span.start, text);
    node.pos = Pos { line: 1, col: 1 };
    Ok(node)
}

/// Finds, in document order, where each key of a JSON or YAML tree was written.
struct Scanner<'t> {
    text: &'t str,
    cursor: usize,
    json: bool,
}

impl Scanner<'_> {
    fn place(&mut self, node: &mut Node) {
        node.pos = Pos::from_offset(self.text, self.cursor);
        match &mut node.kind {
            // serde_json reads an integer beyond 64 bits as a float: when the text written
            // here is that integer, keep it as one so that it is reported as out of range.
            Kind::Float(f) if self.json => {
                let rest = &self.text[self.cursor..];
                let end = rest
                    .char_indices()
                    .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && *c == '-')))
                    .map_or(rest.len(), |(i, _)| i);
                let literal = &rest[..end];
                let integer = !rest[end..].starts_with(['.', 'e', 'E']);
                if integer && literal.parse::<f64>().ok() == Some(*f) {
                    node.kind = Kind::BigInt(literal.to_string());
                }
            }
            Kind::Table(entries) => {
                for entry in entries {
                    match self.find_key(&entry.key) {
                        Some((key_at, value_at)) => {
                            entry.pos = Pos::from_offset(self.text, key_at);
                            self.cursor = value_at;
                        }
                        None => entry.pos = Pos::from_offset(self.text, self.cursor),
                    }
                    self.place(&mut entry.value);
                    // A table is where its key is, as a TOML table is where its header is.
                    if entry.value.entries().is_some() {
                        entry.value.pos = entry.pos;
                    }
                }
            }
            Kind::Array(items) => {
                for item in items {
                    self.place(item);
                    if let Some(first) = item.entries().and_then(|e| e.first()) {
                        item.pos = first.pos;
                    }
                }
            }
            _ => {}
        }
    }

    /// The offsets of the next occurrence of `key` written as a key (quoted in JSON, followed
    /// by `:` in both) and of what follows its `:` on the same line.
    fn find_key(&self, key: &str) -> Option<(usize, usize)> {
        let rest = &self.text[self.cursor..];
        let candidates: Vec<String> = if self.json {
            vec![serde_json::to_string(key).ok()?]
        } else {
            vec![format!("\"{key}\""), format!("'{key}'"), key.to_string()]
        };
        let mut best: Option<(usize, usize)> = None;
        for needle in candidates {
            let mut from = 0;
            while let Some(i) = rest[from..].find(&needle) {
                let start = from + i;
                let after = rest[start + needle.len()..].trim_start_matches([' ', '\t']);
                let before = rest[..start].chars().next_back();
                let boundary = before.is_none_or(|c| " \t\n-{,".contains(c));
                if after.starts_with(':') && boundary {
                    let value = after[1..].trim_start_matches([' ', '\t']);
                    let value_at = rest.len() - value.len();
                    if best.is_none_or(|(b, _)| start < b) {
                        best = Some((start, value_at));
                    }
                    break;
                }
                from = start + needle.len();
            }
        }
        best.map(|(k, v)| (self.cursor + k, self.cursor + v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const TOML: &str = "[metadata]\nid = \"a\"\n\n[port.web]\ncontainer = 80\n";
    const JSON: &str = "{\n  \"metadata\": {\"id\": \"a\"},\n  \"port\": {\n    \"web\": {\n      \"container\": 80\n    }\n  }\n}\n";
    const YAML: &str = "metadata:\n  id: a\nport:\n  web:\n    container: 80\n";

    #[rstest]
    #[case(TOML, Format::Toml, 5, 1)]
    #[case(JSON, Format::Json, 5, 7)]
    #[case(YAML, Format::Yaml, 5, 5)]
    fn keys_know_where_they_were_written(
        #[case] text: &str,
        #[case] format: Format,
        #[case] line: usize,
        #[case] col: usize,
    ) {
        let tree = parse(text, format).unwrap();
        let path = ["port", "web", "container"].map(String::from);
        assert_eq!(tree.locate(&path), Pos { line, col });
        assert_eq!(tree.to_json()["port"]["web"]["container"], 80);
    }

    #[rstest]
    #[case(TOML, Format::Toml, 5, 13)]
    #[case(JSON, Format::Json, 5, 20)]
    #[case(YAML, Format::Yaml, 5, 16)]
    fn values_know_where_they_were_written(
        #[case] text: &str,
        #[case] format: Format,
        #[case] line: usize,
        #[case] col: usize,
    ) {
        let tree = parse(text, format).unwrap();
        let web = &tree.get("port").unwrap().value.get("web").unwrap().value;
        assert_eq!(web.get("container").unwrap().value.pos, Pos { line, col });
    }

    #[rstest]
    #[case("a = [1,\nb = 2", Format::Toml, 2)]
    #[case("{\n\"a\": 1,,\n}", Format::Json, 2)]
    #[case("a:\n  - b\n c: d", Format::Yaml, 3)]
    fn syntax_errors_have_a_line(#[case] text: &str, #[case] format: Format, #[case] line: usize) {
        let err = parse(text, format).unwrap_err();
        assert_eq!(err.pos.line, line, "{}", err.message);
    }

    #[rstest]
    #[case("a = 99999999999999999999\n", Format::Toml, "99999999999999999999")]
    #[case(
        "a = -9_223_372_036_854_775_809\n",
        Format::Toml,
        "-9223372036854775809"
    )]
    #[case("a = 0xff_ffff_ffff_ffff_ffff\n", Format::Toml, "0xffffffffffffffffff")]
    #[case("{\"a\": 99999999999999999999}", Format::Json, "99999999999999999999")]
    #[case("{\"a\": 18446744073709551615}", Format::Json, "18446744073709551615")]
    #[case(
        "{\"a\": -99999999999999999999}",
        Format::Json,
        "-99999999999999999999"
    )]
    #[case("a: 99999999999999999999\n", Format::Yaml, "99999999999999999999")]
    #[case("a: 9223372036854775808\n", Format::Yaml, "9223372036854775808")]
    fn integers_beyond_64_bits_are_kept_as_written(
        #[case] text: &str,
        #[case] format: Format,
        #[case] want: &str,
    ) {
        let tree = parse(text, format).unwrap();
        assert_eq!(tree.get("a").unwrap().value.kind, Kind::BigInt(want.into()));
    }

    #[rstest]
    #[case("{\"a\": 1e20}")]
    #[case("{\"a\": 100000000000000000000.0}")]
    #[case("{\"a\": 1.5}")]
    fn json_floats_stay_floats(#[case] text: &str) {
        let tree = parse(text, Format::Json).unwrap();
        assert!(matches!(tree.get("a").unwrap().value.kind, Kind::Float(_)));
    }

    #[test]
    fn toml_keeps_the_written_order_and_octal_integers() {
        let tree = parse("b = 0o17\na = 1\n", Format::Toml).unwrap();
        let keys: Vec<&str> = tree
            .entries()
            .unwrap()
            .iter()
            .map(|e| e.key.as_str())
            .collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(tree.to_json()["b"], 15);
    }
}
