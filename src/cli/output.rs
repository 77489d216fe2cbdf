//! One way to print rows, for every command: a table for people, JSON and CSV for scripts.
//!
//! A command builds a [`Table`] of [`Cell`]s, each holding the text a person reads and the
//! value a script reads, and [`Table::write`] prints it in the format asked for:
//!
//! - `table`: columns as wide as their widest cell (never overflowing into the next), numbers
//!   right-aligned, two spaces between columns; a column may cap its width, and a longer cell
//!   is then cut with `…`.
//! - `json`: one JSON array of objects, one object per row, keys in column order; the whole
//!   output is one document a script parses at once.
//! - `csv`: a header row of the keys, then one record per row (RFC 4180 quoting by the `csv`
//!   crate); empty for a missing value, lists in their table text.
//!
//! Output goes to a closed pipe (`leadloop … | head`) quietly: [`is_broken_pipe`] tells
//! `main` that the error is the reader having gone, which is not a failure of ours.

use std::io::{self, Write};

use serde_json::Value;

/// How a command prints its rows (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for people.
    #[default]
    Table,
    /// One JSON array, one object per row.
    Json,
    /// CSV with a header row.
    Csv,
}

/// Where a column's cells sit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A column: its key (the JSON key and CSV header), its table header, alignment and
/// optional maximum width in the table.
#[derive(Debug, Clone)]
pub struct Column {
    key: String,
    header: String,
    align: Align,
    max: Option<usize>,
}

impl Column {
    /// A text column; its table header is the key in capitals, `_` as space.
    pub fn text(key: &str) -> Column {
        Column {
            key: key.to_owned(),
            header: key.to_uppercase().replace('_', " "),
            align: Align::Left,
            max: None,
        }
    }

    /// A number column (right-aligned).
    pub fn number(key: &str) -> Column {
        Column {
            align: Align::Right,
            ..Column::text(key)
        }
    }

    /// A table header other than the key's (a shorter one for a long key).
    pub fn header(mut self, header: &str) -> Column {
        header.clone_into(&mut self.header);
        self
    }

    /// Cells wider than `width` characters are cut in the table (JSON and CSV keep them
    /// whole).
    pub fn max(mut self, width: usize) -> Column {
        self.max = Some(width.max(2));
        self
    }
}

/// One cell: what the table and CSV show, and what JSON holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    text: String,
    value: Value,
    csv: Option<String>,
}

impl Cell {
    /// Text, the same for people and scripts.
    pub fn text(s: impl Into<String>) -> Cell {
        let s = s.into();
        Cell {
            value: Value::String(s.clone()),
            text: s,
            csv: None,
        }
    }

    /// Text that may be missing: `-` in the table, `null` in JSON, empty in CSV.
    pub fn opt(s: Option<&str>) -> Cell {
        s.map_or(
            Cell {
                text: "-".to_owned(),
                value: Value::Null,
                csv: None,
            },
            Cell::text,
        )
    }

    /// A count.
    pub fn int(n: i64) -> Cell {
        Cell {
            text: n.to_string(),
            value: n.into(),
            csv: None,
        }
    }

    /// A share of 0 to 1: a percentage with one decimal in the table, the fraction (four
    /// decimals) in JSON and CSV; missing when there is nothing to divide by.
    pub fn rate(r: Option<f64>) -> Cell {
        match r {
            Some(r) => Cell {
                text: format!("{:.1}%", r * 100.0),
                value: round(r, 4),
                csv: None,
            },
            None => Cell::opt(None),
        }
    }

    /// A number with one decimal (days), missing as `-`.
    pub fn decimal(d: Option<f64>) -> Cell {
        match d {
            Some(d) => Cell {
                text: format!("{d:.1}"),
                value: round(d, 1),
                csv: None,
            },
            None => Cell::opt(None),
        }
    }

    /// A cell whose table text and JSON value differ (a list, a structured value).
    pub fn with_value(text: impl Into<String>, value: Value) -> Cell {
        Cell {
            text: text.into(),
            value,
            csv: None,
        }
    }

    /// What CSV holds instead of the table text, for a list the table shortens.
    pub fn csv_text(mut self, text: impl Into<String>) -> Cell {
        self.csv = Some(text.into());
        self
    }

    /// What CSV holds: the value for plain values, the table text for lists and objects.
    fn csv(&self) -> String {
        if let Some(text) = &self.csv {
            return text.clone();
        }
        match &self.value {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Array(_) | Value::Object(_) => self.text.clone(),
        }
    }
}

fn round(x: f64, decimals: i32) -> Value {
    let f = 10f64.powi(decimals);
    serde_json::Number::from_f64((x * f).round() / f).map_or(Value::Null, Value::Number)
}

/// Rows under columns, printed in any [`Format`].
#[derive(Debug, Clone)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
    header: bool,
    indent: usize,
}

impl Table {
    /// An empty table with these columns.
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            header: true,
            indent: 0,
        }
    }

    /// As a block inside other text (`leads show`): no header line, `indent` spaces before
    /// each row. JSON and CSV are unchanged.
    pub fn nested(mut self, indent: usize) -> Table {
        self.header = false;
        self.indent = indent;
        self
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn push(&mut self, mut row: Vec<Cell>) {
        row.resize(self.columns.len(), Cell::text(""));
        self.rows.push(row);
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Prints the rows in `format`.
    ///
    /// # Errors
    /// Writing failed (a closed pipe is [`io::ErrorKind::BrokenPipe`]).
    pub fn write(&self, out: &mut impl Write, format: Format) -> io::Result<()> {
        match format {
            Format::Table => self.write_table(out),
            Format::Json => self.write_json(out),
            Format::Csv => self.write_csv(out),
        }
    }

    fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let header = if self.header {
                    c.header.chars().count()
                } else {
                    0
                };
                let widest = self
                    .rows
                    .iter()
                    .map(|r| r[i].text.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(header);
                c.max.map_or(widest, |m| widest.min(m))
            })
            .collect();
        if self.header {
            let headers: Vec<&str> = self.columns.iter().map(|c| c.header.as_str()).collect();
            self.write_line(out, &headers, &widths)?;
        }
        for row in &self.rows {
            let texts: Vec<&str> = row.iter().map(|c| c.text.as_str()).collect();
            self.write_line(out, &texts, &widths)?;
        }
        Ok(())
    }

    fn write_line(&self, out: &mut impl Write, cells: &[&str], widths: &[usize]) -> io::Result<()> {
        let mut line = " ".repeat(self.indent);
        let last = self.columns.len().saturating_sub(1);
        for (i, (column, text)) in self.columns.iter().zip(cells).enumerate() {
            let w = widths[i];
            let text = fit(text, w);
            let pad = w.saturating_sub(text.chars().count());
            if i > 0 {
                line.push_str("  ");
            }
            match column.align {
                Align::Right => {
                    line.push_str(&" ".repeat(pad));
                    line.push_str(&text);
                }
                Align::Left => {
                    line.push_str(&text);
                    if i < last {
                        line.push_str(&" ".repeat(pad));
                    }
                }
            }
        }
        writeln!(out, "{}", line.trim_end())
    }

    fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        // Written by hand so the keys keep the columns' order.
        out.write_all(b"[")?;
        for (n, row) in self.rows.iter().enumerate() {
            out.write_all(if n == 0 { b"\n  {" } else { b",\n  {" })?;
            for (i, (column, cell)) in self.columns.iter().zip(row).enumerate() {
                if i > 0 {
                    out.write_all(b", ")?;
                }
                serde_json::to_writer(&mut *out, &column.key)?;
                out.write_all(b": ")?;
                serde_json::to_writer(&mut *out, &cell.value)?;
            }
            out.write_all(b"}")?;
        }
        out.write_all(if self.rows.is_empty() {
            b"]\n"
        } else {
            b"\n]\n"
        })
    }

    fn write_csv(&self, out: &mut impl Write) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        w.write_record(self.columns.iter().map(|c| c.key.as_str()))
            .map_err(csv_error)?;
        for row in &self.rows {
            w.write_record(row.iter().map(Cell::csv))
                .map_err(csv_error)?;
        }
        w.flush()
    }
}

/// The I/O error inside a CSV error, so a closed pipe stays one.
fn csv_error(e: csv::Error) -> io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => io::Error::other(format!("{other:?}")),
    }
}

/// `text` cut to `width` characters, the last one `…` when it was longer.
fn fit(text: &str, width: usize) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= width {
        return text.into();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s.into()
}

/// Whether an error is stdout's reader having gone away (`leadloop … | head`): the command
/// then ends quietly and successfully, as `cat` and `grep` do.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use anyhow::Context as _;

    use super::*;

    fn table() -> Table {
        let mut t = Table::new(vec![
            Column::text("email"),
            Column::text("status"),
            Column::number("leads"),
            Column::text("note"),
        ]);
        t.push(vec![
            Cell::text("a@example.com"),
            Cell::text("unsubscribed"),
            Cell::int(7),
            Cell::text("x"),
        ]);
        t.push(vec![
            Cell::text("bee@example.org"),
            Cell::text("new"),
            Cell::int(12_345),
            Cell::opt(None),
        ]);
        t
    }

    fn print(t: &Table, f: Format) -> String {
        let mut out = Vec::new();
        t.write(&mut out, f).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell_and_numbers_align_right() {
        let text = print(&table(), Format::Table);
        assert_eq!(
            text,
            "EMAIL            STATUS        LEADS  NOTE\n\
             a@example.com    unsubscribed      7  x\n\
             bee@example.org  new           12345  -\n"
        );
    }

    #[test]
    fn a_capped_column_cuts_long_cells() {
        let mut t = Table::new(vec![Column::text("name").max(6), Column::number("n")]);
        t.push(vec![Cell::text("Bartholomew"), Cell::int(1)]);
        t.push(vec![Cell::text("Ann"), Cell::int(22)]);
        assert_eq!(
            print(&t, Format::Table),
            "NAME     N\nBarth…   1\nAnn     22\n"
        );
    }

    #[test]
    fn a_nested_table_has_no_header_and_is_indented() {
        let mut t = Table::new(vec![Column::text("kind"), Column::text("subject")]).nested(4);
        t.push(vec![Cell::text("autoreply"), Cell::text("Out of office")]);
        t.push(vec![Cell::text("reply"), Cell::text("Re: hello")]);
        assert_eq!(
            print(&t, Format::Table),
            "    autoreply  Out of office\n    reply      Re: hello\n"
        );
    }

    #[test]
    fn json_is_an_array_of_objects_in_column_order() {
        let text = print(&table(), Format::Json);
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"email": "a@example.com", "status": "unsubscribed", "leads": 7, "note": "x"},
                {"email": "bee@example.org", "status": "new", "leads": 12345, "note": null},
            ])
        );
        assert!(text.find("\"email\"").unwrap() < text.find("\"note\"").unwrap());
        assert_eq!(
            print(&Table::new(vec![Column::text("a")]), Format::Json),
            "[]\n"
        );
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let mut t = Table::new(vec![
            Column::text("reason"),
            Column::number("share"),
            Column::text("list"),
        ]);
        t.push(vec![
            Cell::text("no budget, \"yet\""),
            Cell::rate(Some(0.333_333)),
            Cell::with_value("a (2), b (1)", serde_json::json!([1, 2])),
        ]);
        t.push(vec![
            Cell::text("line\nbreak"),
            Cell::rate(None),
            Cell::text(""),
        ]);
        assert_eq!(
            print(&t, Format::Csv),
            "reason,share,list\n\"no budget, \"\"yet\"\"\",0.3333,\"a (2), b (1)\"\n\"line\nbreak\",,\n"
        );
    }

    #[test]
    fn rates_read_as_percentages_in_tables_and_fractions_in_json() {
        let c = Cell::rate(Some(0.25));
        assert_eq!(c.text, "25.0%");
        assert_eq!(c.value, serde_json::json!(0.25));
        assert_eq!(Cell::decimal(Some(2.25)).text, "2.2");
        assert_eq!(Cell::decimal(None).value, Value::Null);
    }

    /// A reader that has gone: every write fails as a closed pipe does.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[test]
    fn a_closed_pipe_is_told_apart_in_every_format() {
        for f in [Format::Table, Format::Json, Format::Csv] {
            let e = table().write(&mut Closed, f).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{f:?}");
            let e = anyhow::Error::from(e).context("printing the report");
            assert!(is_broken_pipe(&e), "{f:?}");
        }
        let other: anyhow::Result<()> =
            Err(io::Error::from(io::ErrorKind::PermissionDenied)).context("x");
        assert!(!is_broken_pipe(&other.unwrap_err()));
    }
}
