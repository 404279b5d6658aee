//! Positions and diagnostics: every error about a file names `file:line:col` and, when known, the address of
//! the resource it is about.

use std::fmt;

/// A place in a source file (1-based line and column, the column counted in characters).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Pos {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// One error found while loading or validating monitor files.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diag {
    pub pos: Option<Pos>,
    pub address: Option<String>,
    pub message: String,
}

impl Diag {
    pub fn new(pos: Option<Pos>, address: Option<&str>, message: impl Into<String>) -> Diag {
        Diag {
            pos,
            address: address.map(str::to_string),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.pos {
            write!(f, "{p}: ")?;
        }
        if let Some(a) = &self.address {
            write!(f, "{a}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The text of one file with its line starts, to turn byte offsets into positions.
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
    /// For text written from another file (a `.tf.json` read as native syntax): each line's (line, column)
    /// in that file, which positions name instead.
    origin: Vec<(usize, usize)>,
}

impl Source {
    pub fn new(name: String, mut text: String) -> Source {
        // A UTF-8 byte order mark (Windows editors write one) is ignored, as Terraform ignores it.
        if text.starts_with('\u{feff}') {
            text.drain(..'\u{feff}'.len_utf8());
        }
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            name,
            text,
            line_starts,
            origin: Vec::new(),
        }
    }

    /// Text written from file `name`, line `i` of it coming from `origin[i]` (line, column) of that file.
    pub fn mapped(name: String, text: String, origin: Vec<(usize, usize)>) -> Source {
        Source {
            origin,
            ..Source::new(name, text)
        }
    }

    /// The position of byte `offset`.
    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        if !self.origin.is_empty() {
            let (line, col) = self.origin[line.min(self.origin.len() - 1)];
            return Pos {
                file: self.name.clone(),
                line,
                col,
            };
        }
        let start = self.line_starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map(|s| s.chars().count())
            .unwrap_or(0)
            + 1;
        Pos {
            file: self.name.clone(),
            line: line + 1,
            col,
        }
    }

    /// The position of 1-based `line` and `col` of the text (of the file it was written from, if it was).
    pub fn at(&self, line: usize, col: usize) -> Pos {
        match self
            .origin
            .get(line.saturating_sub(1))
            .or(self.origin.last())
        {
            Some(&(line, col)) => Pos {
                file: self.name.clone(),
                line,
                col,
            },
            None => Pos {
                file: self.name.clone(),
                line,
                col,
            },
        }
    }

    /// The position of the start of a span, or of the file when the span is unknown.
    pub fn span_pos(&self, span: Option<std::ops::Range<usize>>) -> Pos {
        self.pos(span.map(|s| s.start).unwrap_or(0))
    }

    /// The source text of a span, trimmed.
    pub fn slice(&self, span: Option<std::ops::Range<usize>>) -> Option<&str> {
        span.and_then(|s| self.text.get(s)).map(str::trim)
    }
}

/// `; did you mean "x"?` when one candidate is close to `word` (edit distance at most a third of its
/// length, and at least 1), else empty.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let limit = (word.chars().count() / 3).max(1);
    let best = candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min();
    match best {
        Some((_, c)) => format!("; did you mean \"{c}\"?"),
        None => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let s = Source::new("f.tf".into(), "ab\ncdé\nx".into());
        assert_eq!(s.pos(0).to_string(), "f.tf:1:1");
        assert_eq!(s.pos(4).to_string(), "f.tf:2:2");
        assert_eq!(s.pos(8).to_string(), "f.tf:3:1");
        assert_eq!(s.pos(7).to_string(), "f.tf:2:4");
        assert_eq!(s.pos(999).line, 3);
        // A byte order mark is not part of the text (nor of the first line's columns).
        let s = Source::new("f.tf".into(), "\u{feff}ab\ncd".into());
        assert_eq!(s.text, "ab\ncd");
        assert_eq!(s.pos(1).to_string(), "f.tf:1:2");
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("mesage", ["message", "name"]),
            "; did you mean \"message\"?"
        );
        assert_eq!(did_you_mean("zzz", ["message", "name"]), "");
    }
}
