//! Folder names as the user writes them and as the IMAP server knows them.
//!
//! Users write `Processed` or `Archive/2024` in plain Unicode, whatever the server. Servers
//! differ in two ways that make such a name fail as written:
//!
//! - **Where personal folders live** (RFC 2342 NAMESPACE): many servers (Courier, older
//!   Cyrus, Dovecot set up that way) keep them under `INBOX.`, so `Processed` does not exist
//!   there but `INBOX.Processed` does; and the hierarchy delimiter is `.` on some, `/` on
//!   others.
//! - **How names travel** (RFC 3501 5.1.3): names are 7-bit, non-ASCII is sent as "modified
//!   UTF-7" (`Eingänge` is `Eing&AOQ-nge`), and `&` itself as `&-`.
//!
//! [`Namespace::resolve`] maps a written name to the server's full name, and [`encode`] /
//! [`decode`] convert between that name and its form on the wire. The rules are documented
//! for users in the `[imap]` section of `docs/configuration.md`; the two must agree.

use std::fmt;

/// The personal namespace of a server, and the prefixes of its other namespaces (other
/// users', shared), as NAMESPACE or LIST reported them. Names are decoded (Unicode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespace {
    /// Prefix of the user's own folders: `""` on most servers, `INBOX.` on some.
    pub prefix: String,
    /// Hierarchy delimiter of the user's folders; `None` for a flat namespace.
    pub delimiter: Option<char>,
    /// Prefixes of the other namespaces (`#shared/`, `Other Users.`): a name written with one
    /// of them already names a folder outside the personal namespace, and is not prefixed.
    pub others: Vec<String>,
}

/// A folder: the name the user wrote, and the full name the server knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folder {
    /// As written in the configuration.
    pub written: String,
    /// The server's full name, in Unicode (for logs and messages).
    pub name: String,
    /// The full name as sent to the server (modified UTF-7).
    pub wire: String,
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Namespace {
    /// The server's full name for a folder name the user wrote.
    ///
    /// 1. `INBOX`, in any case, is the inbox: `INBOX`.
    /// 2. `/` separates levels: it becomes the server's delimiter (unchanged on a flat server).
    /// 3. The personal prefix is put in front, unless the name already starts with it (its
    ///    `INBOX` in any case) or with the prefix of another namespace.
    pub fn resolve(&self, written: &str) -> Folder {
        let name = self.full_name(written);
        Folder {
            written: written.to_owned(),
            wire: encode(&name),
            name,
        }
    }

    fn full_name(&self, written: &str) -> String {
        if written.eq_ignore_ascii_case("INBOX") {
            return "INBOX".to_owned();
        }
        let name = match self.delimiter {
            Some(d) if d != '/' => written.replace('/', d.encode_utf8(&mut [0; 4])),
            _ => written.to_owned(),
        };
        if self.prefix.is_empty() {
            return name;
        }
        if let Some(rest) = strip_prefix_inbox_aware(&name, &self.prefix) {
            return format!("{}{rest}", self.prefix);
        }
        if self
            .others
            .iter()
            .any(|p| !p.is_empty() && name.starts_with(p.as_str()))
        {
            return name;
        }
        format!("{}{name}", self.prefix)
    }
}

/// `name` without `prefix`, when it starts with it; a prefix's leading `INBOX` matches in
/// any case, as INBOX is case-insensitive (RFC 3501 5.1).
fn strip_prefix_inbox_aware<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    if let Some(rest) = name.strip_prefix(prefix) {
        return Some(rest);
    }
    let after_inbox = prefix
        .get(..5)?
        .eq_ignore_ascii_case("INBOX")
        .then(|| &prefix[5..])?;
    let head = name.get(..5)?;
    head.eq_ignore_ascii_case("INBOX")
        .then(|| name[5..].strip_prefix(after_inbox))
        .flatten()
}

/// The modified base64 alphabet of RFC 3501 5.1.3: RFC 2152's, with `,` for `/`.
const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// A name in modified UTF-7: printable ASCII as itself (`&` as `&-`), every run of other
/// characters as `&`, the modified base64 of its UTF-16BE, `-`.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush_run(&mut out, &mut run);
            if c == '&' {
                out.push_str("&-");
            } else {
                out.push(c);
            }
        } else {
            let mut units = [0; 2];
            run.extend_from_slice(c.encode_utf16(&mut units));
        }
    }
    flush_run(&mut out, &mut run);
    out
}

fn flush_run(out: &mut String, run: &mut Vec<u16>) {
    if run.is_empty() {
        return;
    }
    out.push('&');
    let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // No padding: 1 byte needs 2 characters, 2 bytes 3, 3 bytes 4.
        for i in 0..=chunk.len() {
            out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out.push('-');
    run.clear();
}

/// Why a name from the server is not valid modified UTF-7.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a valid modified UTF-7 folder name: {0}")]
pub struct InvalidName(&'static str);

/// A name from the server (LIST, NAMESPACE) in Unicode.
///
/// Strict as RFC 3501 5.1.3 asks: only printable ASCII outside shifts, every shift closed by
/// `-`, no shift that encodes printable ASCII or follows another at once, whole UTF-16 units
/// with zero padding bits, no lone surrogates.
///
/// # Errors
/// [`InvalidName`] for anything else; callers then use the name as the server sent it.
pub fn decode(wire: &str) -> Result<String, InvalidName> {
    let mut out = String::with_capacity(wire.len());
    let mut bytes = wire.bytes().peekable();
    let mut last_was_shift = false;
    while let Some(b) = bytes.next() {
        if !(0x20..=0x7e).contains(&b) {
            return Err(InvalidName("a character outside printable ASCII"));
        }
        if b != b'&' {
            out.push(char::from(b));
            last_was_shift = false;
            continue;
        }
        if bytes.peek() == Some(&b'-') {
            bytes.next();
            out.push('&');
            last_was_shift = false;
            continue;
        }
        if last_was_shift {
            return Err(InvalidName("a shift right after another"));
        }
        let mut bits: u32 = 0;
        let mut nbits = 0;
        let mut units = Vec::new();
        loop {
            let Some(c) = bytes.next() else {
                return Err(InvalidName("a shift not closed by '-'"));
            };
            if c == b'-' {
                break;
            }
            let Some(v) = B64.iter().position(|&a| a == c) else {
                return Err(InvalidName(
                    "a character outside modified base64 in a shift",
                ));
            };
            bits = (bits << 6) | v as u32;
            nbits += 6;
            if nbits >= 16 {
                nbits -= 16;
                units.push((bits >> nbits) as u16);
                bits &= (1 << nbits) - 1;
            }
        }
        if units.is_empty() || nbits >= 6 || bits != 0 {
            return Err(InvalidName("a shift that is not whole UTF-16"));
        }
        let text =
            String::from_utf16(&units).map_err(|_| InvalidName("a lone UTF-16 surrogate"))?;
        if text.chars().any(|c| (' '..='~').contains(&c)) {
            return Err(InvalidName("printable ASCII inside a shift"));
        }
        out.push_str(&text);
        last_was_shift = true;
    }
    Ok(out)
}

/// A name from the server for people to read: decoded, or as sent when it is not valid
/// modified UTF-7 (some servers store raw 8-bit names).
pub fn decode_lossy(wire: &str) -> String {
    decode(wire).unwrap_or_else(|_| wire.to_owned())
}

/// The namespaces from the untagged `* NAMESPACE personal other shared` line (RFC 2342),
/// each NIL or a list of `(prefix delimiter extensions…)`. `None` when the line is not one,
/// or has no personal namespace, or uses literals (the caller asks LIST instead).
pub fn parse_namespace(line: &str) -> Option<Namespace> {
    let rest = line.strip_prefix("* ")?.trim_start();
    let rest = rest
        .get(..9)
        .filter(|w| w.eq_ignore_ascii_case("NAMESPACE"))
        .map(|_| &rest[9..])?;
    let mut tokens = Tokens {
        s: rest.trim_end_matches(['\r', '\n']).as_bytes(),
        i: 0,
    };
    let mut groups = Vec::with_capacity(3);
    for _ in 0..3 {
        groups.push(tokens.value()?);
    }
    let entries = |v: &Value| -> Vec<(String, Option<String>)> {
        let Value::List(items) = v else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match item {
                Value::List(fields) => match fields.as_slice() {
                    [Value::Str(prefix), delimiter, ..] => Some((
                        decode_lossy(prefix),
                        match delimiter {
                            Value::Str(d) => Some(d.clone()),
                            _ => None,
                        },
                    )),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    };
    let personal = entries(&groups[0]);
    let (prefix, delimiter) = personal.into_iter().next()?;
    let others = groups[1..]
        .iter()
        .flat_map(entries)
        .map(|(p, _)| p)
        .filter(|p| !p.is_empty())
        .collect();
    Some(Namespace {
        prefix,
        delimiter: delimiter.and_then(|d| single_char(&d)),
        others,
    })
}

/// The delimiter of a LIST answer: one character, or none for a flat server.
pub fn single_char(s: &str) -> Option<char> {
    let mut chars = s.chars();
    let c = chars.next()?;
    chars.next().is_none().then_some(c)
}

/// The tag of our own NAMESPACE command; async-imap's tags are `A` and a number, so the
/// answer cannot be mistaken for one of its commands'.
const NAMESPACE_TAG: &str = "llns";

/// The longest NAMESPACE answer read: a real one is a few hundred bytes.
const NAMESPACE_MAX: usize = 64 * 1024;

/// Sends `NAMESPACE` on a connection with no command in flight and reads the answer up to
/// its tagged line: the untagged `* NAMESPACE` line when the server gave one it could say
/// with quoted strings, and whether it answered OK.
///
/// This talks to the stream under async-imap because async-imap cannot parse the untagged
/// NAMESPACE response (its parser fails, and the session with it). It must run before a
/// mailbox is selected: nothing else is sent by the server then, so no response meant for
/// async-imap is read here.
///
/// # Errors
/// The stream's errors; `InvalidData` for an answer longer than [`NAMESPACE_MAX`], `UnexpectedEof`
/// when the server closes.
pub async fn ask_namespace<S>(stream: &mut S) -> std::io::Result<(Option<String>, bool)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use std::io::{Error, ErrorKind};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    stream
        .write_all(format!("{NAMESPACE_TAG} NAMESPACE\r\n").as_bytes())
        .await?;
    stream.flush().await?;
    let mut buf = Vec::with_capacity(512);
    let mut namespace = None;
    // Bytes of a literal still to skip, and whether the current response used one.
    let mut pos = 0;
    let mut literal_in_line = false;
    loop {
        // Complete lines in `buf[pos..]`.
        while let Some(end) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[pos..pos + end];
            let text = String::from_utf8_lossy(line).into_owned();
            pos += end + 2;
            if let Some(n) = literal_len(&text) {
                // `{n}` ends this part of the line: skip the literal, the line goes on after it.
                literal_in_line = true;
                while buf.len() < pos + n {
                    read_more(stream, &mut buf).await?;
                }
                pos += n;
                continue;
            }
            if let Some(status) = text
                .strip_prefix(NAMESPACE_TAG)
                .and_then(|r| r.strip_prefix(' '))
            {
                let ok = status
                    .get(..2)
                    .is_some_and(|s| s.eq_ignore_ascii_case("OK"));
                return Ok((namespace, ok));
            }
            if !literal_in_line && parse_namespace(&text).is_some() {
                namespace = Some(text);
            }
            literal_in_line = false;
        }
        if buf.len() > NAMESPACE_MAX {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "the answer to NAMESPACE is too long",
            ));
        }
        read_more(stream, &mut buf).await?;
    }

    async fn read_more<S: tokio::io::AsyncRead + Unpin>(
        stream: &mut S,
        buf: &mut Vec<u8>,
    ) -> std::io::Result<()> {
        let mut chunk = [0; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::UnexpectedEof,
                "closed while answering NAMESPACE",
            ));
        }
        if buf.len() + n > NAMESPACE_MAX + chunk.len() {
            return Err(Error::new(
                ErrorKind::InvalidData,
                "the answer to NAMESPACE is too long",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// `{123}` (or `{123+}`) at the end of a line announces a literal of 123 bytes.
fn literal_len(line: &str) -> Option<usize> {
    let inner = line.strip_suffix('}')?;
    let open = inner.rfind('{')?;
    inner[open + 1..].trim_end_matches('+').parse().ok()
}

#[derive(Debug, PartialEq, Eq)]
enum Value {
    Nil,
    Str(String),
    List(Vec<Value>),
}

/// Just enough of IMAP's syntax for NAMESPACE: lists, quoted strings, NIL and atoms.
struct Tokens<'a> {
    s: &'a [u8],
    i: usize,
}

impl Tokens<'_> {
    fn skip_spaces(&mut self) {
        while self.s.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Option<Value> {
        self.skip_spaces();
        match *self.s.get(self.i)? {
            b'(' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_spaces();
                    if *self.s.get(self.i)? == b')' {
                        self.i += 1;
                        return Some(Value::List(items));
                    }
                    items.push(self.value()?);
                }
            }
            b'"' => {
                self.i += 1;
                let mut bytes = Vec::new();
                loop {
                    match *self.s.get(self.i)? {
                        b'"' => break,
                        b'\\' => {
                            self.i += 1;
                            bytes.push(*self.s.get(self.i)?);
                        }
                        b => bytes.push(b),
                    }
                    self.i += 1;
                }
                self.i += 1;
                String::from_utf8(bytes).ok().map(Value::Str)
            }
            // A literal: rare in NAMESPACE answers; LIST answers the question instead.
            b'{' | b')' => None,
            _ => {
                let start = self.i;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|b| !matches!(b, b' ' | b'(' | b')'))
                {
                    self.i += 1;
                }
                let atom = std::str::from_utf8(&self.s[start..self.i]).ok()?;
                Some(if atom.eq_ignore_ascii_case("NIL") {
                    Value::Nil
                } else {
                    Value::Str(atom.to_owned())
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(prefix: &str, delimiter: Option<char>) -> Namespace {
        Namespace {
            prefix: prefix.to_owned(),
            delimiter,
            others: Vec::new(),
        }
    }

    #[test]
    fn the_rfc_3501_example_round_trips() {
        // RFC 3501 5.1.3: English, Chinese and Japanese in one name.
        let name = "~peter/mail/\u{53F0}\u{5317}/\u{65E5}\u{672C}\u{8A9E}";
        assert_eq!(encode(name), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").unwrap(), name);
        // One shift for one run of non-ASCII, not two adjacent ones.
        assert_eq!(
            encode("\u{53F0}\u{5317}\u{65E5}\u{672C}\u{8A9E}"),
            "&U,BTF2XlZyyKng-"
        );
    }

    #[test]
    fn the_rfc_3501_counter_examples_are_refused() {
        // No shift back to ASCII before "!".
        assert!(decode("&Jjo!").is_err());
        // A superfluous shift.
        assert!(decode("&U,BTFw-&ZeVnLIqe-").is_err());
        // The correct forms.
        assert_eq!(decode("&Jjo-!").unwrap(), "\u{263A}!");
        assert_eq!(
            decode("&U,BTF2XlZyyKng-").unwrap(),
            "\u{53F0}\u{5317}\u{65E5}\u{672C}\u{8A9E}"
        );
    }

    #[test]
    fn ampersand_and_umlauts_are_encoded() {
        assert_eq!(encode("INBOX.Eingänge"), "INBOX.Eing&AOQ-nge");
        assert_eq!(encode("Sales & Leads"), "Sales &- Leads");
        assert_eq!(encode("Plain-ASCII_~!"), "Plain-ASCII_~!");
        assert_eq!(decode("Sales &- Leads").unwrap(), "Sales & Leads");
        assert_eq!(decode("&-&AOQ-&-").unwrap(), "&ä&");
        // Outside the BMP: a surrogate pair in one shift.
        assert_eq!(encode("a\u{1F600}b"), "a&2D3eAA-b");
        assert_eq!(decode("a&2D3eAA-b").unwrap(), "a\u{1F600}b");
        // A control character is not sent as itself.
        assert_eq!(decode(&encode("a\tb")).unwrap(), "a\tb");
        assert!(!encode("a\tb").contains('\t'));
    }

    #[test]
    fn names_round_trip() {
        for name in [
            "",
            "&",
            "&&",
            "INBOX",
            "Отправленные",
            "théâtre",
            "Šiukšliadėžė",
            "日本語/下書き",
            "a&ä&b",
            "\u{7F}",
            "ü",
            "üü",
            "üüü",
            "x\u{10FFFF}y",
        ] {
            let wire = encode(name);
            assert!(wire.bytes().all(|b| (0x20..=0x7e).contains(&b)), "{wire}");
            assert_eq!(decode(&wire).unwrap(), name, "{wire}");
        }
    }

    #[test]
    fn malformed_names_are_refused_not_panicked_on() {
        for wire in [
            "&",
            "&AOQ",
            "&AO-",
            "&AOR-",
            "&A-",
            "&*-",
            "&AGE-",
            "&2D0-",
            "Eing\u{e4}nge",
            "a\tb",
        ] {
            assert!(decode(wire).is_err(), "{wire}");
            assert_eq!(decode_lossy(wire), wire);
        }
    }

    #[test]
    fn names_resolve_into_the_personal_namespace() {
        let dotted = ns("INBOX.", Some('.'));
        for (written, full) in [
            ("Processed", "INBOX.Processed"),
            ("Archive/2024", "INBOX.Archive.2024"),
            ("INBOX", "INBOX"),
            ("inbox", "INBOX"),
            ("INBOX.Processed", "INBOX.Processed"),
            ("INBOX/Processed", "INBOX.Processed"),
            ("inbox/Processed", "INBOX.Processed"),
            ("Eingänge", "INBOX.Eingänge"),
            ("INBOXES", "INBOX.INBOXES"),
        ] {
            assert_eq!(dotted.resolve(written).name, full, "{written}");
        }
        assert_eq!(dotted.resolve("Eingänge").wire, "INBOX.Eing&AOQ-nge");
        assert_eq!(dotted.resolve("Eingänge").written, "Eingänge");

        let plain = ns("", Some('/'));
        for (written, full) in [
            ("Processed", "Processed"),
            ("Leads/Done", "Leads/Done"),
            ("inbox", "INBOX"),
        ] {
            assert_eq!(plain.resolve(written).name, full, "{written}");
        }
        assert_eq!(ns("", Some('.')).resolve("Leads/Done").name, "Leads.Done");
        // A flat server: nothing to map.
        assert_eq!(ns("", None).resolve("Leads/Done").name, "Leads/Done");
        // A name in a shared namespace is not put under the personal prefix.
        let shared = Namespace {
            others: vec!["#shared.".to_owned()],
            ..dotted
        };
        assert_eq!(shared.resolve("#shared/Sales").name, "#shared.Sales");
        assert_eq!(shared.resolve("Sales").name, "INBOX.Sales");
    }

    /// Runs [`ask_namespace`] against a peer that checks the command, answers `reply` and then
    /// stays open (or closes, with `close`).
    async fn ask(reply: &'static [u8], close: bool) -> std::io::Result<(Option<String>, bool)> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (mut ours, mut theirs) = tokio::io::duplex(64 * 1024);
        let peer = tokio::spawn(async move {
            let mut command = [0; 16];
            theirs.read_exact(&mut command).await.unwrap();
            assert_eq!(&command, b"llns NAMESPACE\r\n");
            theirs.write_all(reply).await.unwrap();
            if close {
                drop(theirs);
                return None;
            }
            Some(theirs)
        });
        // Bounded, so a reader that waits for more than the answer fails instead of hanging.
        let answer =
            tokio::time::timeout(std::time::Duration::from_secs(5), ask_namespace(&mut ours))
                .await
                .expect("the exchange ends with its tagged line");
        drop(peer.await.unwrap());
        answer
    }

    #[tokio::test]
    async fn the_namespace_exchange_reads_up_to_its_tagged_line() {
        let (line, ok) = ask(
            b"* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\nllns OK done\r\n",
            false,
        )
        .await
        .unwrap();
        assert_eq!(
            line.as_deref(),
            Some("* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL")
        );
        assert!(ok);
        // A literal is skipped whole, even with a line break and a fake tagged line inside.
        let (line, ok) = ask(
            b"* NAMESPACE (({14}\r\nllns OK x\r\n12 \".\")) NIL NIL\r\n* OK noise\r\nllns OK done\r\n",
            false,
        )
        .await
        .unwrap();
        assert_eq!(line, None);
        assert!(ok);
        let (line, ok) = ask(b"llns BAD unknown command\r\n", false).await.unwrap();
        assert_eq!((line, ok), (None, false));
        let closed = ask(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n", true).await;
        assert_eq!(
            closed.unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn namespace_answers_are_read() {
        assert_eq!(
            parse_namespace("* NAMESPACE ((\"INBOX.\" \".\")) NIL NIL\r\n"),
            Some(ns("INBOX.", Some('.')))
        );
        assert_eq!(
            parse_namespace(
                "* NAMESPACE ((\"\" \"/\")) ((\"~\" \"/\")) ((\"#shared/\" \"/\")(\"#public/\" \"/\"))"
            ),
            Some(Namespace {
                prefix: String::new(),
                delimiter: Some('/'),
                others: vec!["~".into(), "#shared/".into(), "#public/".into()],
            })
        );
        // Extensions after the delimiter, a NIL delimiter, an escaped quote.
        assert_eq!(
            parse_namespace(
                "* namespace ((\"\" NIL \"X-PARAM\" (\"A\" \"B\"))) NIL ((\"Sh\\\"ared.\" \".\"))"
            ),
            Some(Namespace {
                prefix: String::new(),
                delimiter: None,
                others: vec!["Sh\"ared.".into()],
            })
        );
        // An encoded prefix is decoded.
        assert_eq!(
            parse_namespace("* NAMESPACE ((\"Eing&AOQ-nge/\" \"/\")) NIL NIL")
                .unwrap()
                .prefix,
            "Eingänge/"
        );
        for bad in [
            "* NAMESPACE NIL NIL NIL",
            "* NAMESPACE ((\"INBOX.\" \".\")",
            "* NAMESPACE (({6}",
            "* OK hello",
            "",
        ] {
            assert_eq!(parse_namespace(bad), None, "{bad}");
        }
    }
}
