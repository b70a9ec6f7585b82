//! deb822 control data (deb822(5)): paragraphs of `Field: value` lines separated by blank
//! lines, continuation lines starting with a space or a tab, `#` comment lines.
//!
//! Values are kept as written (multi-line values keep their continuation lines), so a
//! paragraph can be written back the way dpkg wrote it. Field names compare
//! case-insensitively, as the format says.

use std::io::BufRead;

use super::error::{Error, Result};

/// One paragraph: fields in the order they were written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    pub fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of a field (name case-insensitive), first line trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Set or replace a field, keeping its position when it exists.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .fields
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(field) => field.1 = value,
            None => self.fields.push((name.to_owned(), value)),
        }
    }

    /// The paragraph as text, each field on its own line(s), ending with a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.fields {
            out.push_str(k);
            out.push(':');
            if !v.is_empty() && !v.starts_with('\n') {
                out.push(' ');
            }
            out.push_str(v);
            out.push('\n');
        }
        out
    }
}

/// Parse a whole (small) text into paragraphs; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Paragraph>> {
    Reader::new(text.as_bytes(), file).collect()
}

/// Streams paragraphs out of a reader, so a large `Packages` never sits whole in memory.
pub struct Reader<R> {
    input: R,
    file: String,
    line_no: usize,
    line: String,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R, file: &str) -> Reader<R> {
        Reader {
            input,
            file: file.to_owned(),
            line_no: 0,
            line: String::new(),
        }
    }

    fn error(&self, reason: &str) -> Error {
        Error::Parse {
            file: self.file.clone(),
            line: self.line_no,
            reason: reason.to_owned(),
        }
    }

    fn next_paragraph(&mut self) -> Result<Option<Paragraph>> {
        let mut para = Paragraph::default();
        loop {
            self.line.clear();
            let n = self
                .input
                .read_line(&mut self.line)
                .map_err(|e| self.error(&format!("read failed: {e}")))?;
            if n == 0 {
                return Ok((!para.fields.is_empty()).then_some(para));
            }
            self.line_no += 1;
            let line = self.line.trim_end_matches(['\n', '\r']);
            if line.trim().is_empty() {
                if para.fields.is_empty() {
                    continue;
                }
                return Ok(Some(para));
            }
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                let Some((_, value)) = para.fields.last_mut() else {
                    return Err(self.error("continuation line before any field"));
                };
                value.push('\n');
                value.push_str(line);
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(self.error("expected `Field: value`"));
            };
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(self.error("invalid field name"));
            }
            para.fields.push((name.to_owned(), value.trim().to_owned()));
        }
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<Paragraph>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_paragraph().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_and_continuations() {
        let text = "# comment\nPackage: a\nDescription: short\n long line\n .\n\n\n\
                    package: b\nDepends: x,\n  y\n";
        let paras = parse(text, "t").unwrap();
        assert_eq!(paras.len(), 2);
        assert_eq!(paras[0].get("package"), Some("a"));
        assert_eq!(paras[0].get("Description"), Some("short\n long line\n ."));
        assert_eq!(paras[1].get("Package"), Some("b"));
        assert_eq!(paras[1].get("Depends"), Some("x,\n  y"));
        assert_eq!(
            paras[0].to_text(),
            "Package: a\nDescription: short\n long line\n .\n"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let err = parse("Package: a\nnot a field\n", "Packages").unwrap_err();
        assert!(err.to_string().contains("`Packages` at line 2"), "{err}");
        assert!(parse(" x\n", "f").is_err());
    }
}
