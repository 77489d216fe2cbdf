//! The module layers of `src/`, and the check that dependencies point down them.
//!
//! leadloop's modules stand in layers (see "Layout" in `src/lib.rs`). A module may use modules
//! of lower layers only, never one of its own layer or above, so there is no import cycle and
//! each part can be read and tested with only what is below it. This test reads the sources,
//! collects every `crate::` path (in `use` lines, `use crate::{…}` groups and inline paths;
//! comments and string literals do not count) and names the file and line of each one that
//! points up or sideways.
//!
//! It is its own test binary rather than a module of `tests/it`: it reads source files and
//! needs no server, so it builds and runs in moments (`cargo test --test layers`), which is why
//! `.ci/run` runs it before the whole suite.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// leadloop's top-level modules, lowest layer first. This is the one place the order is
/// declared; `src/lib.rs` describes it and `the_layout_in_lib_rs_is_this_list` keeps the two
/// the same.
const LAYERS: &[&[&str]] = &[
    &["domain"],
    &["diagnostics", "metrics", "classify", "render", "store"],
    &["sequence", "actions"],
    &["config"],
    &["send", "ingest", "http"],
    &["daemon"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// `text` with comments and the contents of string and character literals blanked out, line
/// breaks kept, so what is left is code and positions still give line numbers.
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    // Blanks `chars[from..to]`, keeping line breaks.
    let blank = |out: &mut String, from: usize, to: usize| {
        for &c in &chars[from..to.min(chars.len())] {
            out.push(if c == '\n' { '\n' } else { ' ' });
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let after_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let mut j = i;
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c == 'r'
            && (!after_ident || (i > 0 && chars[i - 1] == 'b'))
            && matches!(next, Some('"' | '#'))
        {
            // A raw string: r"…", r#"…"#, br"…".
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: String = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let body = i + 2 + hashes;
            let rest: String = chars[body..].iter().collect();
            let end = rest.find(&close).map_or(chars.len(), |b| {
                body + rest[..b].chars().count() + close.len()
            });
            blank(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c == '\'' && !after_ident {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime or label.
            let end = if next == Some('\\') {
                chars[i + 2..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| i + 2 + p + 1)
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 3)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The top-level modules a source file's code names through `crate::` (or `$crate::`), each
/// with the 1-based line it is named on.
fn references(text: &str) -> Vec<(usize, String)> {
    let code = code_only(text);
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let line_of = |offset: usize| code[..offset].matches('\n').count() + 1;
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each item at the top level.
            let group_at = at + "crate::{".len();
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_alphanumeric() || c == '_') => {
                        let name = ident_at(&group[i..]);
                        found.push((line_of(group_at + i), name.to_owned()));
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident_at(rest);
            if !name.is_empty() {
                found.push((line_of(at), name.to_owned()));
            }
        }
    }
    found
}

fn ident_at(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// One line per path in `source` (a file of `module`) that names a module of the same layer
/// or above, or a module in no layer.
fn violations(file: &str, module: &str, source: &str) -> Vec<String> {
    let Some(own) = layer_of(module) else {
        return vec![format!("{file}: module `{module}` is in no layer")];
    };
    let mut out = Vec::new();
    for (line, used) in references(source) {
        if used == module {
            continue;
        }
        match layer_of(&used) {
            Some(layer) if layer < own => {}
            Some(layer) => out.push(format!(
                "{file}:{line}: `{module}` (layer {}) uses `{used}` (layer {})",
                own + 1,
                layer + 1
            )),
            None => out.push(format!(
                "{file}:{line}: `{module}` uses `{used}`, which is in no layer"
            )),
        }
    }
    out
}

/// The library's source files under `src/` (not the binaries), each with its top-level module.
fn library_sources(src: &Path) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("src/ is readable").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files.sort();
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(src).expect("under src/");
            let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
            let module = first.strip_suffix(".rs").unwrap_or(&first).to_owned();
            // The crate root and the binaries (`main.rs`, `bin/`) are not layers.
            (!matches!(module.as_str(), "lib" | "main" | "bin")).then_some((path, module))
        })
        .collect()
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn modules_use_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut found = Vec::new();
    for (path, module) in library_sources(&src_dir()) {
        let text = fs::read_to_string(&path).expect("a readable source file");
        let file = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        found.extend(violations(&file, &module, &text));
    }
    assert!(
        found.is_empty(),
        "dependencies must point to lower layers (tests/layers.rs, src/lib.rs \"Layout\"):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_module_of_the_crate_is_in_one_layer() {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).expect("src/lib.rs");
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .chain(lib.lines().filter_map(|l| l.trim().strip_prefix("mod ")))
        .map(|m| m.trim_end_matches(';'))
        .collect();
    let layered: Vec<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    let unique: BTreeSet<&str> = layered.iter().copied().collect();
    assert_eq!(unique.len(), layered.len(), "a module is in two layers");
    assert_eq!(
        declared, unique,
        "the modules of src/lib.rs and LAYERS differ"
    );
}

/// "Layout" in `src/lib.rs` is a numbered list, one number per layer, naming each module as a
/// link at the start of the item or of a bullet under it.
#[test]
fn the_layout_in_lib_rs_is_this_list() {
    let lib = fs::read_to_string(src_dir().join("lib.rs")).expect("src/lib.rs");
    let mut documented: Vec<BTreeSet<String>> = Vec::new();
    let section = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .skip_while(|l| l.trim() != "# Layout")
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with("# "));
    for line in section {
        let item = line.trim_start();
        let numbered = item
            .split_once(". ")
            .filter(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        let text = if let Some((_, text)) = numbered {
            documented.push(BTreeSet::new());
            text
        } else if let Some(text) = item.strip_prefix("- ") {
            text
        } else {
            continue;
        };
        if let Some(rest) = text.strip_prefix("[`") {
            let module = ident_at(rest).to_owned();
            documented
                .last_mut()
                .expect("a bullet under a numbered layer")
                .insert(module);
        }
    }
    let declared: Vec<BTreeSet<String>> = LAYERS
        .iter()
        .map(|l| l.iter().map(|m| (*m).to_owned()).collect())
        .collect();
    assert_eq!(
        documented, declared,
        "src/lib.rs \"Layout\" and LAYERS differ"
    );
}

#[test]
fn the_check_finds_every_kind_of_path() {
    let source = r##"
use std::fmt;
use crate::domain::EmailAddress;
use crate::{
    render::{self, Templates},
    store,
};
// use crate::cli;
/* crate::daemon::run() */
const URL: &str = "crate::daemon"; const RAW: &str = r#"crate::cli "#;
fn f<'a>(x: &'a str) -> char { let _ = crate::classify::decide; '"' }
fn g() { crate::config::Config::load(); }
macro_rules! m { () => { $crate::cli::run() }; }
"##;
    assert_eq!(
        references(source),
        [
            (3, "domain"),
            (5, "render"),
            (6, "store"),
            (11, "classify"),
            (12, "config"),
            (13, "cli"),
        ]
        .map(|(l, m)| (l, m.to_owned()))
    );
    assert_eq!(
        violations("src/render.rs", "render", source),
        [
            "src/render.rs:6: `render` (layer 2) uses `store` (layer 2)",
            "src/render.rs:11: `render` (layer 2) uses `classify` (layer 2)",
            "src/render.rs:12: `render` (layer 2) uses `config` (layer 4)",
            "src/render.rs:13: `render` (layer 2) uses `cli` (layer 7)",
        ]
    );
    assert!(violations("src/cli.rs", "cli", source).is_empty());
    assert_eq!(
        violations("src/insight.rs", "insight", ""),
        ["src/insight.rs: module `insight` is in no layer"]
    );
    assert_eq!(
        violations("src/cli.rs", "cli", "use crate::insight;"),
        ["src/cli.rs:1: `cli` uses `insight`, which is in no layer"]
    );
}
