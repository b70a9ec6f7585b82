//! The positioned tree every format is parsed into: values, the line and column where each
//! key and value was written, and the serde visitor that builds it from JSON and YAML in
//! document order.

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
    /// An integer written in the file that does not fit in 64 bits, as written. Never reaches
    /// serde: validation reports it as out of range (TOML requires that, and a silent 0 or a
    /// rounded float would be worse).
    BigInt(String),
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
            Kind::Int(_) | Kind::BigInt(_) => "an integer",
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
            // Only reached for a tree that failed validation; the nearest float will do.
            Kind::BigInt(digits) => digits
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Value::Null, Value::Number),
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
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(node(
            i64::try_from(v).map_or_else(|_| Kind::BigInt(v.to_string()), Kind::Int),
        ))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Node, E> {
        Ok(node(
            i64::try_from(v).map_or_else(|_| Kind::BigInt(v.to_string()), Kind::Int),
        ))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Node, E> {
        Ok(node(
            i64::try_from(v).map_or_else(|_| Kind::BigInt(v.to_string()), Kind::Int),
        ))
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
