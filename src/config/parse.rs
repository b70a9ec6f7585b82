//! Parse TOML, JSON and YAML into one tree that remembers where each key and value was
//! written, so that every later check reports a line and column the same way whatever the
//! format. TOML gives spans directly; for JSON and YAML the values come from serde (in
//! document order) and the positions of keys from a scan of the text in the same order.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::error::Pos;

/// A value with the position where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Node>),
    Table(Vec<Entry>),
}

/// A key of a table, its position and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub pos: Pos,
    pub value: Node,
}

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

impl Node {
    pub fn table(entries: Vec<Entry>, pos: Pos) -> Node {
        Node {
            kind: Kind::Table(entries),
            pos,
        }
    }

    /// The entries of a table, or `None` for any other kind.
    pub fn entries(&self) -> Option<&Vec<Entry>> {
        match &self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    pub fn entries_mut(&mut self) -> Option<&mut Vec<Entry>> {
        match &mut self.kind {
            Kind::Table(e) => Some(e),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries()?.iter().find(|e| e.key == key)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries_mut()?.iter_mut().find(|e| e.key == key)
    }

    /// Remove and return the entry `key` of a table.
    pub fn take(&mut self, key: &str) -> Option<Entry> {
        let entries = self.entries_mut()?;
        let i = entries.iter().position(|e| e.key == key)?;
        Some(entries.remove(i))
    }

    /// The position of the value at a path of keys and indexes (`["port", "web", "host"]`,
    /// `["provider", "1", "name"]`), or of the deepest part of it that exists. For a key, the
    /// position of the key itself, which is where an editor should jump.
    pub fn locate(&self, path: &[String]) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for seg in path {
            match &node.kind {
                Kind::Table(entries) => match entries.iter().find(|e| &e.key == seg) {
                    Some(e) => {
                        pos = e.pos;
                        node = &e.value;
                    }
                    None => return pos,
                },
                Kind::Array(items) => match seg.parse::<usize>().ok().and_then(|i| items.get(i)) {
                    Some(item) => {
                        pos = item.pos;
                        node = item;
                    }
                    None => return pos,
                },
                _ => return pos,
            }
        }
        pos
    }

    /// What kind of value this is, in words, for messages.
    pub fn describe(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Str(_) => "a string",
            Kind::Array(_) => "a list",
            Kind::Table(_) => "a table",
        }
    }

    /// The plain JSON value, for serde.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Array(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Table(entries) => Value::Object(
                entries
                    .iter()
                    .map(|e| (e.key.clone(), e.value.to_json()))
                    .collect(),
            ),
        }
    }
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
    let table = DeTable::parse(text).map_err(|e| SyntaxError {
        pos: Pos::from_offset(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim_end().to_string(),
    })?;
    fn convert(value: &DeValue, start: usize, text: &str) -> Node {
        let pos = Pos::from_offset(text, start);
        let kind = match value {
            DeValue::String(s) => Kind::Str(s.to_string()),
            DeValue::Integer(i) => {
                let digits = i.as_str().replace('_', "");
                Kind::Int(i64::from_str_radix(&digits, i.radix()).unwrap_or_default())
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
            Kind::Table(entries) => {
                for entry in entries {
                    if let Some(at) = self.find_key(&entry.key) {
                        self.cursor = at;
                    }
                    entry.pos = Pos::from_offset(self.text, self.cursor);
                    self.cursor += entry.key.len();
                    self.place(&mut entry.value);
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

    /// The offset of the next occurrence of `key` written as a key (quoted in JSON, followed
    /// by `:` in YAML).
    fn find_key(&self, key: &str) -> Option<usize> {
        let rest = &self.text[self.cursor..];
        let candidates: Vec<String> = if self.json {
            vec![serde_json::to_string(key).ok()?]
        } else {
            vec![format!("\"{key}\""), format!("'{key}'"), key.to_string()]
        };
        let mut best: Option<usize> = None;
        for needle in candidates {
            let mut from = 0;
            while let Some(i) = rest[from..].find(&needle) {
                let start = from + i;
                let after = rest[start + needle.len()..].trim_start_matches([' ', '\t']);
                let before = rest[..start].chars().next_back();
                let boundary = before.is_none_or(|c| " \t\n-{,".contains(c));
                if after.starts_with(':') && boundary {
                    best = Some(best.map_or(start, |b: usize| b.min(start)));
                    break;
                }
                from = start + needle.len();
            }
        }
        best.map(|b| self.cursor + b)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

fn node(kind: Kind) -> Node {
    Node {
        kind,
        pos: Pos::default(),
    }
}

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(node(Kind::Null))
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(node(Kind::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(node(Kind::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(node(Kind::Int(v)))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Node, E> {
        i64::try_from(v)
            .map(|i| node(Kind::Int(i)))
            .map_err(|_| E::custom("integer too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(node(Kind::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(node(Kind::Str(v.to_string())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(node(Kind::Str(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(node(Kind::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries: Vec<Entry> = Vec::new();
        while let Some((key, value)) = map.next_entry::<Node, Node>()? {
            let key = match key.kind {
                Kind::Str(s) => s,
                Kind::Int(i) => i.to_string(),
                Kind::Bool(b) => b.to_string(),
                _ => return Err(serde::de::Error::custom("keys must be strings")),
            };
            if entries.iter().any(|e| e.key == key) {
                return Err(serde::de::Error::custom(format!("duplicate key `{key}`")));
            }
            entries.push(Entry {
                key,
                pos: Pos::default(),
                value,
            });
        }
        Ok(node(Kind::Table(entries)))
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
    #[case("a = [1,\nb = 2", Format::Toml, 2)]
    #[case("{\n\"a\": 1,,\n}", Format::Json, 2)]
    #[case("a:\n  - b\n c: d", Format::Yaml, 3)]
    fn syntax_errors_have_a_line(#[case] text: &str, #[case] format: Format, #[case] line: usize) {
        let err = parse(text, format).unwrap_err();
        assert_eq!(err.pos.line, line, "{}", err.message);
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
