//! The `kassa serve` process itself: what it refuses to start with, and how it stops.

use crate::helpers::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for `child` to exit, at most `bound`; its exit status, or `None` if it still runs.
fn exit_within(child: &mut std::process::Child, bound: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A release build has no failpoints; told to use some, it refuses to start (a crash test run
/// against it would otherwise pass without crashing anything). Debug builds (and builds with
/// the `failpoints` feature) have them, which the crash tests rely on: there this test cannot
/// run and shows as ignored.
#[tokio::test]
#[cfg_attr(
    any(debug_assertions, feature = "failpoints"),
    ignore = "this build has failpoints; run with `cargo test --release` to test a build without"
)]
async fn a_build_without_failpoints_refuses_to_start_with_kassa_failpoints_set() {
    let (_db, url) = TestDb::fresh().await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_kassa"))
        .arg("serve")
        .env("DATABASE_URL", &url)
        .env("KASSA_SERVER__PORT", "0")
        .env("KASSA_FAILPOINTS", "pay.after_processor_confirm")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the kassa binary starts");
    let status = exit_within(&mut child, Duration::from_secs(30)).expect("it stops at once");
    let mut stdout = String::new();
    let mut stderr = String::new();
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(!status.success(), "it refused: {stdout}");
    assert!(stderr.contains("KASSA_FAILPOINTS") && stderr.contains("no failpoints"), "{stderr}");
    assert!(!stdout.contains("Kassa listening"), "it never served: {stdout}");
}

/// SIGTERM (what a container runtime or systemd sends): the server lets the request it is
/// reading finish and answer, then exits, promptly and with status 0 — well within the grace
/// period (10 s), so an idle keep-alive connection does not hold it either.
#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_exits_promptly_with_status_0() {
    let (_db, url) = TestDb::fresh().await;
    let mut server = start_binary(&url, &[]);
    let (sk, pk) = server.keys();
    let api = remote(&server.address, &sk, &pk);
    // A kept-alive idle connection.
    api.get("/admin/products", As::Admin).await.ok();
    // A request in flight: headers and half its body sent.
    let body = br#"{"name": "Sencha sent across a shutdown"}"#;
    let mut conn = TcpStream::connect(server.address.trim_start_matches("http://")).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "POST /admin/products HTTP/1.1\r\nHost: kassa\r\nAuthorization: Bearer {sk}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).unwrap();
    conn.write_all(&body[..10]).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let sent = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.write_all(&body[10..]).unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "the request in flight was answered: {answer}");
    assert!(answer.contains("Sencha sent across a shutdown"), "{answer}");

    let status = exit_within(&mut server.child, Duration::from_secs(5)).expect("exits within 5 s of SIGTERM");
    assert!(status.success(), "exit status 0: {status:?}");
    assert!(sent.elapsed() < Duration::from_secs(5));
}
