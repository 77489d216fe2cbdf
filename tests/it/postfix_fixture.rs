//! The private Postfix of the test kit proves itself: a real MTA's replies, as the refusal
//! tests rely on them, a failed start that explains itself, and a stop that leaves no process.

use std::fs;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::postfix::{PrivatePostfix, StartError, group_members};

/// A hand-driven SMTP client, so the test sees Postfix's replies exactly as sent.
struct Smtp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Smtp {
    /// Connects and reads the greeting.
    fn connect(port: u16) -> io::Result<(Smtp, String)> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut smtp = Smtp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = smtp.reply()?;
        Ok((smtp, greeting))
    }

    /// One reply; the lines of a multi-line reply are joined with `\n`, without CRLFs.
    fn reply(&mut self) -> io::Result<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed",
                ));
            }
            let line = line.trim_end_matches(['\r', '\n']).to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                return Ok(lines.join("\n"));
            }
        }
    }

    /// Sends one command line and returns the reply.
    fn cmd(&mut self, line: &str) -> io::Result<String> {
        self.writer.write_all(format!("{line}\r\n").as_bytes())?;
        self.reply()
    }
}

/// The message the smoke test sends, with a marker to find it in the Maildir.
fn test_message(marker: &str) -> String {
    format!(
        "From: Lead <lead@company.test>\r\n\
         To: Ana <ana@example.org>\r\n\
         Subject: fixture check {marker}\r\n\
         Message-ID: <{marker}@company.test>\r\n\
         \r\n\
         Hello Ana.\r\n\
         .leading dot, stuffed on the wire\r\n"
    )
}

/// Dot-stuffs and terminates a message for DATA.
fn dot_stuffed(message: &str) -> String {
    let mut out = String::new();
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    out.push_str(".\r\n");
    out
}

/// `pgrep -g`'s listing of a process group: empty when nothing is left, zombies included.
fn pgrep_group(pgid: u32) -> String {
    let out = Command::new("pgrep")
        .args(["-a", "-g", &pgid.to_string()])
        .output()
        .expect("running pgrep");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn replies_of_a_real_postfix() {
    let t0 = Instant::now();
    let pf = PrivatePostfix::start(
        &["ana@example.org"],
        &[
            &[],
            &["smtpd_sender_restrictions=reject"],
            &["smtpd_recipient_restrictions=permit_sasl_authenticated,reject"],
        ],
    )
    .unwrap();
    let started = t0.elapsed();
    let ctx = |what: &str| format!("{what}\n--- Postfix log ---\n{}", pf.log());

    // Listener 0: defaults. Unknown user refused, known user accepted and delivered.
    let (mut s, greeting) = Smtp::connect(pf.port(0)).unwrap();
    assert_eq!(
        greeting,
        "220 mx.test.invalid ESMTP Postfix",
        "{}",
        ctx("greeting")
    );
    let ehlo = s.cmd("EHLO client.test").unwrap();
    assert!(ehlo.starts_with("250-mx.test.invalid"), "{}", ctx(&ehlo));
    assert_eq!(
        s.cmd("MAIL FROM:<lead@company.test>").unwrap(),
        "250 2.1.0 Ok"
    );
    assert_eq!(
        s.cmd("RCPT TO:<nobody@example.org>").unwrap(),
        "550 5.1.1 <nobody@example.org>: Recipient address rejected: \
         User unknown in virtual mailbox table",
        "{}",
        ctx("unknown user")
    );
    assert_eq!(
        s.cmd("RCPT TO:<ana@example.org>").unwrap(),
        "250 2.1.5 Ok",
        "{}",
        ctx("known user")
    );
    assert_eq!(
        s.cmd("DATA").unwrap(),
        "354 End data with <CR><LF>.<CR><LF>"
    );
    let marker = format!("pf-{}-{}", std::process::id(), pf.port(0));
    let message = test_message(&marker);
    let queued = s
        .cmd(dot_stuffed(&message).trim_end_matches("\r\n"))
        .unwrap();
    assert!(
        queued.starts_with("250 2.0.0 Ok: queued as "),
        "{}",
        ctx(&queued)
    );
    assert_eq!(s.cmd("QUIT").unwrap(), "221 2.0.0 Bye");

    let delivered = pf.wait_delivered(1, Duration::from_secs(20));
    assert_eq!(delivered.len(), 1, "{}", ctx("delivery"));
    assert_eq!(pf.delivered_to("Ana@Example.org"), delivered);
    let text = String::from_utf8_lossy(&delivered[0]);
    // virtual(8) writes LF line endings and prepends the envelope headers.
    assert!(
        text.starts_with("Return-Path: <lead@company.test>\n"),
        "{text}"
    );
    assert!(text.contains("\nDelivered-To: ana@example.org\n"), "{text}");
    assert!(
        text.contains(&format!("\nSubject: fixture check {marker}\n")),
        "{text}"
    );
    assert!(
        text.ends_with("\n\nHello Ana.\n.leading dot, stuffed on the wire\n"),
        "{text}"
    );

    // Listener 1: every sender refused, reported at RCPT TO (smtpd_delay_reject = yes).
    let (mut s, _) = Smtp::connect(pf.port(1)).unwrap();
    s.cmd("EHLO client.test").unwrap();
    assert_eq!(
        s.cmd("MAIL FROM:<lead@company.test>").unwrap(),
        "250 2.1.0 Ok"
    );
    assert_eq!(
        s.cmd("RCPT TO:<ana@example.org>").unwrap(),
        "554 5.7.1 <lead@company.test>: Sender address rejected: Access denied",
        "{}",
        ctx("sender restriction")
    );
    assert_eq!(
        s.cmd("DATA").unwrap(),
        "554 5.5.1 Error: no valid recipients"
    );
    s.cmd("QUIT").unwrap();

    // Listener 2: recipients refused unless authenticated (no SASL here, so always).
    let (mut s, _) = Smtp::connect(pf.port(2)).unwrap();
    s.cmd("EHLO client.test").unwrap();
    assert_eq!(
        s.cmd("MAIL FROM:<lead@company.test>").unwrap(),
        "250 2.1.0 Ok"
    );
    assert_eq!(
        s.cmd("RCPT TO:<ana@example.org>").unwrap(),
        "554 5.7.1 <ana@example.org>: Recipient address rejected: Access denied",
        "{}",
        ctx("recipient restriction")
    );
    s.cmd("QUIT").unwrap();

    assert_eq!(pf.delivered().len(), 1, "{}", ctx("refused mail stays out"));
    let pgid = pf.master_pid().unwrap();
    let t1 = Instant::now();
    drop(pf);
    let stopped = t1.elapsed();
    assert_eq!(
        group_members(pgid),
        Vec::<u32>::new(),
        "processes left behind"
    );
    assert_eq!(pgrep_group(pgid), "");
    eprintln!("private Postfix: start {started:?}, stop {stopped:?}");
}

#[test]
fn a_failed_start_names_the_log_and_leaves_nothing_running() {
    let t0 = Instant::now();
    // smtpd refuses to start with a non-boolean value for a boolean parameter; the master
    // then throttles it, so the listener accepts connections but never greets.
    let err = PrivatePostfix::start(&["ana@example.org"], &[&["smtpd_helo_required=maybe"]])
        .err()
        .expect("start must fail");
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let start_error = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<StartError>())
        .expect("a StartError");
    let msg = err.to_string();
    assert!(
        msg.contains(&start_error.log.display().to_string()),
        "{msg}"
    );
    assert!(msg.contains("smtpd_helo_required"), "{msg}");
    assert_eq!(pgrep_group(start_error.master_pid.unwrap()), "");
    fs::remove_dir_all(&start_error.dir).unwrap();
}

#[test]
fn bad_arguments_are_refused_before_starting() {
    let e = PrivatePostfix::start(&["no-at-sign"], &[&[]])
        .err()
        .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    let e = PrivatePostfix::start(&[], &[&["smtpd_banner=two words"]])
        .err()
        .unwrap();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
}
