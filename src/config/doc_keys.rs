//! The references in `docs/` name every key the parsers accept, in the right table.
//!
//! The keys are not listed by hand: [`keys_of`] walks the parser's own serde structs with a
//! deserializer that answers every `deserialize_struct` with all of that struct's fields and
//! records them, so a key added to `config.rs` or `sequence/file.rs` fails these tests until
//! it is documented.
//!
//! A table is documented in a section whose heading names it in backticks (`` `[imap]` ``,
//! `` `[[channel]]` ``); keys of the file itself sit under a heading that says "top-level
//! keys". A key is documented by a table row that starts with it (`` | `host` | … ``) in its
//! table's section, up to the next heading. Rows in those sections that name a key the parser
//! does not accept fail too, so the reference cannot drift the other way.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde::de::value::{BorrowedStrDeserializer, Error, StrDeserializer};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

/// The name `serde_spanned` gives `Spanned<T>`: a wrapper, not a table of the file.
const SPANNED: &str = "$__serde_spanned_private_Spanned";

/// Every table a file may hold, as it is written in the file (`[imap]`, `[[channel]]`, or ""
/// for the file itself), with the keys the parser accepts in it, in declaration order.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    tables: BTreeMap<String, Vec<&'static str>>,
}

impl Keys {
    /// Keys of the file itself that are values, not tables.
    fn top_level(&self) -> Vec<&'static str> {
        let root = self.tables.get("").cloned().unwrap_or_default();
        root.into_iter()
            .filter(|k| {
                !self.tables.contains_key(&format!("[{k}]"))
                    && !self.tables.contains_key(&format!("[[{k}]]"))
            })
            .collect()
    }
}

/// The keys `T` accepts, found by deserializing it from a recorder.
pub(crate) fn keys_of<T: for<'de> Deserialize<'de>>() -> Keys {
    let mut keys = Keys::default();
    T::deserialize(Recorder {
        keys: &mut keys,
        path: String::new(),
        in_array: false,
        depth: 0,
    })
    .expect("the recorder can build every parser struct");
    keys
}

/// A deserializer that hands out a placeholder for every value and records every struct.
struct Recorder<'k> {
    keys: &'k mut Keys,
    /// Dotted key of the value being deserialized.
    path: String,
    /// Whether the value is an element of an array (so its table is `[[path]]`).
    in_array: bool,
    depth: usize,
}

impl<'k> Recorder<'k> {
    fn same(&mut self) -> Recorder<'_> {
        Recorder {
            keys: self.keys,
            path: self.path.clone(),
            in_array: self.in_array,
            depth: self.depth + 1,
        }
    }
}

macro_rules! placeholder {
    ($($method:ident => $visit:ident($($value:expr)?)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.$visit($($value)?)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::custom(format!(
            "{}: a self-describing value cannot be traced",
            self.path
        )))
    }

    placeholder! {
        deserialize_bool => visit_bool(false),
        deserialize_i8 => visit_i64(0),
        deserialize_i16 => visit_i64(0),
        deserialize_i32 => visit_i64(0),
        deserialize_i64 => visit_i64(0),
        deserialize_u8 => visit_u64(0),
        deserialize_u16 => visit_u64(0),
        deserialize_u32 => visit_u64(0),
        deserialize_u64 => visit_u64(0),
        deserialize_f32 => visit_f64(0.0),
        deserialize_f64 => visit_f64(0.0),
        deserialize_char => visit_char('x'),
        deserialize_str => visit_str(""),
        deserialize_string => visit_str(""),
        deserialize_bytes => visit_bytes(b""),
        deserialize_byte_buf => visit_bytes(b""),
        deserialize_unit => visit_unit(),
        deserialize_ignored_any => visit_unit(),
    }

    fn deserialize_option<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Error> {
        visitor.visit_some(self.same())
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        mut self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self.same())
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // One element is enough to see what the elements hold.
        visitor.visit_seq(OneElement(Some(Recorder {
            keys: self.keys,
            path: self.path,
            in_array: true,
            depth: self.depth + 1,
        })))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // A map's keys are the user's, not the parser's: nothing to record.
        visitor.visit_map(Fields {
            recorder: self,
            fields: &[],
            spanned: false,
            next: 0,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        assert!(
            self.depth < 32,
            "{}: too deep to be a file's shape",
            self.path
        );
        let spanned = name == SPANNED;
        if !spanned {
            let table = match (self.path.as_str(), self.in_array) {
                ("", _) => String::new(),
                (p, false) => format!("[{p}]"),
                (p, true) => format!("[[{p}]]"),
            };
            self.keys.tables.insert(table, fields.to_vec());
        }
        visitor.visit_map(Fields {
            recorder: self,
            fields,
            spanned,
            next: 0,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let first: StrDeserializer<'_, Error> = variants[0].into_deserializer();
        visitor.visit_enum(first)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }
}

/// A sequence of exactly one element.
struct OneElement<'k>(Option<Recorder<'k>>);

impl<'de> de::SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Error> {
        self.0.take().map(|r| seed.deserialize(r)).transpose()
    }
}

/// A struct's fields, each with a placeholder value.
struct Fields<'k> {
    recorder: Recorder<'k>,
    fields: &'static [&'static str],
    /// `Spanned<T>`'s own fields: the value keeps the wrapper's key.
    spanned: bool,
    next: usize,
}

impl<'de> de::MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Error> {
        let Some(field) = self.fields.get(self.next) else {
            return Ok(None);
        };
        seed.deserialize(BorrowedStrDeserializer::<Error>::new(field))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let field = self.fields[self.next];
        self.next += 1;
        let r = &mut self.recorder;
        let (path, in_array) = if self.spanned {
            (r.path.clone(), r.in_array)
        } else if r.path.is_empty() {
            (field.to_owned(), false)
        } else {
            (format!("{}.{field}", r.path), false)
        };
        seed.deserialize(Recorder {
            keys: r.keys,
            path,
            in_array,
            depth: r.depth + 1,
        })
    }
}

/// What a reference documents: per table heading, the keys of its table rows.
fn documented(doc: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if line.starts_with('#') {
            current = if line.to_lowercase().contains("top-level keys") {
                Some(String::new())
            } else {
                table_in_heading(line)
            };
            if let Some(t) = &current {
                out.entry(t.clone()).or_default();
            }
            continue;
        }
        let Some(table) = &current else { continue };
        if let Some(key) = line
            .strip_prefix("| `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(key, _)| key)
        {
            out.entry(table.clone()).or_default().push(key.to_owned());
        }
    }
    out
}

/// The table a heading names in backticks: `` ## `[[channel]]`: … `` gives `[[channel]]`.
fn table_in_heading(line: &str) -> Option<String> {
    for (open, close) in [("`[[", "]]`"), ("`[", "]`")] {
        if let Some(start) = line.find(open) {
            let rest = &line[start + open.len()..];
            let name = &rest[..rest.find(close)?];
            return Some(format!("{}{name}{}", &open[1..], &close[..close.len() - 1]));
        }
    }
    None
}

/// Problems with `doc` as the reference of the keys in `keys`, one line each.
fn check(doc_name: &str, doc: &str, keys: &Keys) -> Vec<String> {
    let documented = documented(doc);
    let mut problems = Vec::new();
    let mut expected: BTreeMap<String, Vec<&'static str>> = keys
        .tables
        .iter()
        .filter(|(t, _)| !t.is_empty())
        .map(|(t, k)| (t.clone(), k.clone()))
        .collect();
    let top = keys.top_level();
    if !top.is_empty() {
        expected.insert(String::new(), top);
    }
    for (table, fields) in &expected {
        let shown = if table.is_empty() {
            "the top-level keys"
        } else {
            table
        };
        let Some(rows) = documented.get(table) else {
            problems.push(format!(
                "{doc_name}: no section for {shown} (a heading naming `{table}`)"
            ));
            continue;
        };
        for field in fields {
            match rows.iter().filter(|r| r == field).count() {
                0 => problems.push(format!(
                    "{doc_name}: `{field}` of {shown} is not documented (a row | `{field}` | … in its section)"
                )),
                1 => {}
                n => problems.push(format!(
                    "{doc_name}: `{field}` of {shown} is documented {n} times"
                )),
            }
        }
    }
    for (table, rows) in &documented {
        let Some(fields) = expected.get(table) else {
            problems.push(format!(
                "{doc_name}: the section for `{table}` names a table the parser does not accept"
            ));
            continue;
        };
        for row in rows {
            if !fields.contains(&row.as_str()) {
                problems.push(format!(
                    "{doc_name}: `{row}` is documented under `{table}` but the parser does not accept it there"
                ));
            }
        }
    }
    problems
}

fn read_doc(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_recorder_sees_tables_arrays_and_spanned_keys() {
    let keys = keys_of::<super::RawConfig>();
    assert!(keys.tables["[imap]"].contains(&"password_credential"));
    assert!(keys.tables["[[channel]]"].contains(&"utm_sources"));
    assert!(keys.tables["[[sender]]"].contains(&"per_minute"));
    assert!(keys.top_level().is_empty(), "{keys:?}");
    let keys = keys_of::<crate::sequence::file::RawSequence>();
    assert_eq!(keys.top_level(), ["description"]);
    assert!(keys.tables["[[step]]"].contains(&"when"));
    assert!(keys.tables["[exit]"].contains(&"on_enter"));
}

#[test]
fn a_missing_or_misplaced_key_is_reported() {
    let keys = keys_of::<crate::sequence::file::RawSequence>();
    let doc = "## Top-level keys\n| `description` | none | x |\n\
               ## `[enroll]`\n| `manual` | | |\n| `kinds` | | |\n| `channels` | | |\n| `forms` | | |\n| `min_score` | | |\n| `reenter` | | |\n| `on_status` | | |\n\
               ## `[[step]]`\n| `id` | | |\n| `delay` | | |\n| `template` | | |\n| `subject` | | |\n| `when` | | |\n| `from` | | |\n\
               ## `[exit]`\n| `on_reply` | | |\n| `on_status` | | |\n| `on_enter` | | |\n";
    assert_eq!(check("t.md", doc, &keys), Vec::<String>::new());
    let moved = doc.replace("| `on_enter` | | |\n", "").replace(
        "| `reenter` | | |\n",
        "| `reenter` | | |\n| `on_enter` | | |\n",
    );
    assert_eq!(
        check("t.md", &moved, &keys),
        [
            "t.md: `on_enter` of [exit] is not documented (a row | `on_enter` | … in its section)",
            "t.md: `on_enter` is documented under `[enroll]` but the parser does not accept it there",
        ]
    );
    let wrong_brackets = doc.replace("## `[[step]]`", "## `[step]`");
    assert_eq!(check("t.md", &wrong_brackets, &keys).len(), 2);
}

#[test]
fn configuration_reference_documents_every_key() {
    let keys = keys_of::<super::RawConfig>();
    let problems = check(
        "docs/configuration.md",
        &read_doc("configuration.md"),
        &keys,
    );
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn sequences_reference_documents_every_key() {
    let keys = keys_of::<crate::sequence::file::RawSequence>();
    let problems = check("docs/sequences.md", &read_doc("sequences.md"), &keys);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
