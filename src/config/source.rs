//! Where each key of the file was written: the parser's spans turned into lines and key paths,
//! so that every error names both.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{ConfigError, ConfigErrors};

/// Parses the document (syntax only) and indexes where every key and value was written.
///
/// # Errors
/// Every syntax error, each with its line.
pub(super) fn parse_document<'i>(
    text: &'i str,
    file: &str,
) -> Result<(Spanned<DeTable<'i>>, SpanIndex), ConfigErrors> {
    let (doc, syntax_errors) = DeTable::parse_recoverable(text);
    let mut index = SpanIndex {
        file: file.to_owned(),
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        entries: Vec::new(),
        by_path: HashMap::new(),
    };
    // The recovered document names the key of a syntax error that points at one (a duplicate
    // key); other syntax errors have only a line.
    index.add_table(doc.get_ref(), "");
    if !syntax_errors.is_empty() {
        let errors = syntax_errors
            .iter()
            .map(|e| {
                let span = e.span();
                let line = span.as_ref().map(|s| index.line_at(s.start));
                let mut message = e.message().trim_end().to_owned();
                let mut path = String::new();
                if let Some((first, first_line)) = span.and_then(|s| index.earlier_key(text, &s)) {
                    path = first;
                    message = format!("{message} (first written at line {first_line})");
                }
                index.error_at_line(line, path, message)
            })
            .collect();
        return Err(ConfigErrors(errors));
    }
    Ok((doc, index))
}

/// Every key path of the document with the spans of its key and value.
#[derive(Debug)]
pub(super) struct SpanIndex {
    file: String,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    entries: Vec<Entry>,
    by_path: HashMap<String, usize>,
}

#[derive(Debug)]
struct Entry {
    path: String,
    /// The key as written, unquoted (array elements have none).
    name: Option<String>,
    /// Array elements have no key.
    key: Option<Range<usize>>,
    /// For a `[table]` or `[[array]]` element: its header.
    value: Range<usize>,
}

impl SpanIndex {
    fn add_table(&mut self, table: &DeTable<'_>, prefix: &str) {
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            self.add(path, Some((key.get_ref().to_string(), key.span())), value);
        }
    }

    fn add(
        &mut self,
        path: String,
        key: Option<(String, Range<usize>)>,
        value: &Spanned<DeValue<'_>>,
    ) {
        let (name, key) = key.unzip();
        self.by_path.insert(path.clone(), self.entries.len());
        self.entries.push(Entry {
            path: path.clone(),
            name,
            key,
            value: value.span(),
        });
        match value.get_ref() {
            DeValue::Table(t) => self.add_table(t, &path),
            DeValue::Array(a) => {
                for (i, element) in a.iter().enumerate() {
                    self.add(format!("{path}[{i}]"), None, element);
                }
            }
            _ => {}
        }
    }

    /// For a syntax error at the key `text[span]` (a duplicate key): the path and line of the
    /// same key written last before it, which is the first definition in all but contrived files.
    fn earlier_key(&self, text: &str, span: &Range<usize>) -> Option<(String, usize)> {
        let key = text.get(span.clone())?.trim_matches(['"', '\'']);
        self.entries
            .iter()
            .filter(|e| e.name.as_deref() == Some(key))
            .filter_map(|e| Some((e.key.as_ref()?.start, e)))
            .filter(|(start, _)| *start < span.start)
            .max_by_key(|(start, _)| *start)
            .map(|(start, e)| (e.path.clone(), self.line_at(start)))
    }

    /// 1-based line of a byte offset.
    fn line_at(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset)
    }

    /// The line where `path` was written: its key's line, or for an array element its header's.
    /// A key that was not written (a missing key) has the line of the nearest enclosing one.
    pub(super) fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some(&i) = self.by_path.get(path) {
                let e = &self.entries[i];
                let span = e.key.as_ref().unwrap_or(&e.value);
                return Some(self.line_at(span.start));
            }
            path = parent(path)?;
        }
    }

    /// An error at `path`, with the line where that key was written.
    pub(super) fn error(&self, path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        let path = path.into();
        self.error_at_line(self.line_of(&path), path, message)
    }

    fn error_at_line(
        &self,
        line: Option<usize>,
        path: String,
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.clone(),
            line,
            path,
            message: message.into(),
        }
    }

    /// A deserialization error (unknown key, wrong type, missing key) of the value at `at`,
    /// placed by its span: the innermost key or value it points at. Without a span it is
    /// placed at `at`.
    pub(super) fn de_error(&self, e: &toml::de::Error, at: &str) -> ConfigError {
        let message = e.message().trim_end().to_owned();
        let Some(span) = e.span() else {
            return self.error(at, message);
        };
        let innermost = self
            .entries
            .iter()
            .filter_map(|entry| {
                let hit = |r: &Range<usize>| r.start <= span.start && span.end <= r.end;
                [entry.key.as_ref(), Some(&entry.value)]
                    .into_iter()
                    .flatten()
                    .filter(|r| hit(r))
                    .map(|r| (r.len(), std::cmp::Reverse(entry.path.len()), &entry.path))
                    .min()
            })
            .min();
        match innermost {
            Some((_, _, path)) => {
                self.error_at_line(Some(self.line_at(span.start)), path.clone(), message)
            }
            None => self.error_at_line(Some(self.line_at(span.start)), at.to_owned(), message),
        }
    }
}

/// `prefix.key`, quoting a key that is not a bare TOML key.
pub(super) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → none. Quoted keys containing `.` or `[` are rare enough
/// in this schema (none is valid) that a plain split is good enough for finding a line.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}
