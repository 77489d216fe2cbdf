//! Problems in hand-written files and errors in log lines.
//!
//! `leadloop.toml`, the sequence files and the templates are all reported the same way (file,
//! line, column, key), and every long-running task logs an error with its causes on one line.
//! Both live here, below the modules that report them, so `config`, `sequence` and `ingest` can
//! share them without importing each other.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem found in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// The dotted key (`imap.tls`), when known.
    pub key: Option<String>,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
}

impl Problem {
    /// A problem with `key` at byte `span` of `text`, the contents of `file`.
    ///
    /// An empty span at the very start stands for "the file as a whole" (a missing table, a
    /// bad file name), which has no line to point at.
    pub(crate) fn at(
        file: &Path,
        text: &str,
        span: Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Problem {
        let (line, column) = if span.is_empty() && span.start == 0 {
            (None, None)
        } else {
            let (l, c) = line_col(text, span.start);
            (Some(l), Some(c))
        };
        Problem {
            file: file.to_owned(),
            line,
            column,
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// The problem for TOML that does not parse, or does not have the expected shape.
    ///
    /// The offending text becomes the key when it is short enough to be one (an unknown or
    /// misspelt key), so the message names what to fix.
    pub(crate) fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Problem {
        let span = e.span().unwrap_or(0..0);
        let key = text
            .get(span.clone())
            .filter(|s| !s.is_empty() && s.len() < 80 && !s.contains('\n'))
            .map(str::to_owned);
        let (line, column) = line_col(text, span.start);
        Problem {
            file: file.to_owned(),
            line: Some(line),
            column: Some(column),
            key,
            message: e.message().to_owned(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(key) = &self.key {
            write!(f, "{key}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// The 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// An error and its causes on one line, for logs.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    join_causes(std::iter::successors(Some(e), |c| c.source()))
}

/// An error's messages, outermost first, joined with `: `. A cause whose text the line
/// already ends with is left out: many wrappers (an `io::Error` around a TLS error, a
/// library's `Io` variant) print their cause and also return it as their source, which would
/// say everything twice.
pub fn join_causes<'a>(
    causes: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>,
) -> String {
    let mut s = String::new();
    for cause in causes {
        let text = cause.to_string();
        if text.is_empty() || s.ends_with(&text) {
            continue;
        }
        if !s.is_empty() {
            s.push_str(": ");
        }
        s.push_str(&text);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_said_is_not_said_again() {
        #[derive(Debug)]
        struct Wrap(&'static str, Option<std::io::Error>);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        impl std::error::Error for Wrap {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.1.as_ref().map(|e| e as _)
            }
        }
        let pipe = || std::io::Error::new(std::io::ErrorKind::BrokenPipe, "Broken pipe");
        // The io error's text printed by its wrapper, and returned as its source too.
        let e = Wrap("sending: Broken pipe", Some(pipe()));
        assert_eq!(error_chain(&e), "sending: Broken pipe");
        let e = Wrap("sending failed", Some(pipe()));
        assert_eq!(error_chain(&e), "sending failed: Broken pipe");
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        let text = "a = 1\nkey = \"ä\" x";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        assert_eq!(line_col(text, text.len()), (2, 12));
        assert_eq!(line_col(text, 1000), (2, 12));
    }

    #[test]
    fn a_problem_at_the_start_of_nothing_has_no_place() {
        let p = Problem::at(Path::new("f.toml"), "a = 1\n", 0..0, "seq", "bad");
        assert_eq!((p.line, p.column), (None, None));
        assert_eq!(p.to_string(), "f.toml: seq: bad");
        let p = Problem::at(Path::new("f.toml"), "a = 1\nb = 2\n", 6..7, "b", "bad");
        assert_eq!(p.to_string(), "f.toml:2:1: b: bad");
    }

    #[test]
    fn an_error_chain_names_every_cause() {
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read the cursor")]
        struct Outer(#[source] Inner);
        #[derive(Debug, thiserror::Error)]
        #[error("database is locked")]
        struct Inner;
        assert_eq!(
            error_chain(&Outer(Inner)),
            "cannot read the cursor: database is locked"
        );
    }
}
