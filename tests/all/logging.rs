//! The log never holds requests up: a destination that stops reading
//! costs log lines (dropped and counted), never requests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{admin_get, metric, send, TempDir};

/// Requests sent while nobody reads stderr: each is logged (a 404 for an
/// unknown path, one line of ~250 bytes), so far more than a pipe's
/// 64 KiB plus a 32-line queue.
const REQUESTS: usize = 3_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_log_pipe_drops_counted_lines_and_never_stalls_requests() {
    let dir = TempDir::new("log-stall");
    let config = dir.0.join("hookguard.toml");
    std::fs::write(
        &config,
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
upstream = "http://127.0.0.1:9"

[[routes]]
name = "r"
path = "/r"
scheme = "none"
allow_ips = ["127.0.0.1/32"]
"#,
    )
    .unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_hookguard"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .env("HOOKGUARD_LOG_BUFFER_LINES", "32")
            .stderr(Stdio::piped())
            .spawn()
            .expect("the hookguard binary starts"),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let ready = loop {
        let line = lines.next().expect("a ready line").unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap();
        if parsed["message"] == "hookguard is ready" {
            break parsed;
        }
    };
    let listen = ready["listen"].as_str().unwrap().parse().unwrap();
    let admin = ready["admin"].as_str().unwrap().parse().unwrap();

    // From here on nobody reads stderr (the pipe stays open: `lines` is
    // alive), so the log writer blocks once the pipe is full. Before the
    // log had its own writer thread, a request's thread wrote its line
    // itself, and every request after the first few hundred hung here.
    for n in 0..REQUESTS {
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            send(listen, "POST", "/nowhere", &[], "{}"),
        )
        .await
        .unwrap_or_else(|_| panic!("request {n} waited for the log"));
        assert_eq!(answer.status, 404);
    }
    let (status, page) = tokio::time::timeout(Duration::from_secs(5), admin_get(admin, "/metrics"))
        .await
        .expect("the admin listener answers while the log is stalled");
    assert_eq!(status, 200);
    let dropped = metric(&page, "hookguard_log_lines_dropped_total").expect("the counter");
    // Of 3,000 lines at most ~260 fit the pipe and 32 the queue.
    assert!(
        dropped >= (REQUESTS - 600) as f64,
        "dropped {dropped} of {REQUESTS}"
    );

    // Reading again drains the queue: a request sent once it has drained
    // is logged (its own X-Request-Id is the proof), and a SIGTERM ends
    // the process cleanly with its last line written.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let logged_again = 'probe: {
        for _ in 0..50 {
            let id = format!("after-the-stall-{}", std::process::id());
            let answer = send(
                listen,
                "POST",
                "/nowhere",
                &[("x-request-id", id.clone())],
                "{}",
            )
            .await;
            assert_eq!(answer.status, 404);
            let deadline = std::time::Instant::now() + Duration::from_millis(200);
            while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
                match rx.recv_timeout(left) {
                    Ok(line) if line.contains(&id) => break 'probe true,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        false
    };
    assert!(logged_again, "a request after the stall is logged");
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
    reader.join().unwrap();
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|line| line.contains("hookguard stopped")),
        "the last line is written at exit"
    );
}

/// The server process, killed if the test fails before it is stopped.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
