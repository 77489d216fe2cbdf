//! What the kit's server wrappers share: who runs the tests, a plain HTTP probe of a local
//! server, and stopping a server together with the processes it started.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

/// The tests run as root (servers that drop privileges need to be told whom to run as, and
/// chromium needs `--no-sandbox`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Sends `request` (a whole HTTP/1 request) to 127.0.0.1:`port` and returns what came back
/// within two seconds; empty when nothing answers.
pub fn loopback_answer(port: u16, request: &[u8]) -> String {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(request).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// Kills `child` and its whole process group (a server's workers, a driver's browser), then
/// reaps it. The child must have been started as the leader of a group of its own.
pub fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.kill();
    let _ = child.wait();
}
