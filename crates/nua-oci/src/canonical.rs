//! Canonical JSON: object keys sorted at every depth, no insignificant whitespace.
//!
//! The digest of a config or manifest is the digest of its bytes, so the same value must
//! always serialize to the same bytes. oci-spec and our own types hold `HashMap`s (labels,
//! annotations) whose order varies between runs; and `serde_json::Map` keeps insertion order
//! when any crate in the build enables its `preserve_order` feature. So the writer below sorts
//! keys itself instead of trusting the map type.

use serde::Serialize;
use serde_json::Value;

/// Serialize `value` as canonical JSON bytes.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let value = serde_json::to_value(value)?;
    let mut out = Vec::with_capacity(256);
    write_value(&value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> serde_json::Result<()> {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                serde_json::to_writer(&mut *out, key)?;
                out.push(b':');
                write_value(value, out)?;
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        scalar => serde_json::to_writer(&mut *out, scalar)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn keys_are_sorted_at_every_depth_without_whitespace() {
        let mut inner = HashMap::new();
        for k in ["zeta", "alpha", "mid", "Beta"] {
            inner.insert(k.to_owned(), vec![k.len()]);
        }
        let value = serde_json::json!({
            "z": 1,
            "a": {"y": [ {"d": 1, "c": 2} ], "x": inner},
            "m": "text \"quoted\" é",
        });
        let bytes = to_vec(&value).unwrap();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            r#"{"a":{"x":{"Beta":[4],"alpha":[5],"mid":[3],"zeta":[4]},"y":[{"c":2,"d":1}]},"m":"text \"quoted\" é","z":1}"#
        );
    }

    #[test]
    fn same_value_same_bytes_whatever_the_insertion_order() {
        let a: HashMap<&str, i32> = (0..50).map(|i| (["k"; 50][i], i as i32)).collect();
        let mut b = HashMap::new();
        let mut c = HashMap::new();
        for i in 0..100 {
            b.insert(format!("key{i}"), i);
        }
        for i in (0..100).rev() {
            c.insert(format!("key{i}"), i);
        }
        assert_eq!(to_vec(&b).unwrap(), to_vec(&c).unwrap());
        assert!(!to_vec(&a).unwrap().is_empty());
    }
}
