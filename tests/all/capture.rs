//! Captures of refused requests (`capture_rejected`): a refusal on a
//! capturing route leaves a file, named by its request id, that
//! `hookguard verify --request` reads and explains with the same refusal;
//! the bounds delete the oldest and count it; the config refuses a capture
//! without a directory, or into one it cannot write.

use crate::support;

use std::process::Command;

use support::{admin_get, metric, send, Hookguard, TempDir, Upstream};

const SECRET: &str = "capture-secret-9c1d";

/// A capturing route; `{dir}` and `{bounds}` are filled in.
const CONFIG: &str = r#"
[server]
upstream = "{upstream}"
capture_dir = "{dir}"
{bounds}

[[routes]]
name = "vendor"
path = "/vendor"
scheme = "hmac"
secrets = [{ value = "capture-secret-9c1d" }]
capture_rejected = true

[routes.hmac]
header = "X-Signature"
"#;

fn config(dir: &TempDir, bounds: &str) -> String {
    CONFIG
        .replace("{dir}", &dir.0.display().to_string())
        .replace("{bounds}", bounds)
}

/// Sends a request with a wrong signature and the request id `id`.
async fn forged(hg: &Hookguard, id: &str, body: &str) -> support::Answer {
    let headers = [
        ("x-signature", "0".repeat(64)),
        ("x-request-id", id.to_owned()),
        ("content-type", "application/json".to_owned()),
    ];
    send(hg.addr, "POST", "/vendor", &headers, body.to_owned()).await
}

/// The capture files in `dir`, sorted.
fn captures(dir: &TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_refused_request_is_captured_and_verify_explains_it_with_the_same_refusal() {
    let dir = TempDir::new("capture");
    let upstream = Upstream::start().await;
    let text = config(&dir, "");
    let hg = Hookguard::start(&text, &upstream.url()).await;
    let body = r#"{"id":"evt_1","url":"https:\/\/a.example\/x"}"#;
    let answer = forged(&hg, "cap-1", body).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert_eq!(captures(&dir), ["cap-1.http"]);
    let file = dir.0.join("cap-1.http");
    let captured = std::fs::read_to_string(&file).unwrap();
    assert!(
        captured.starts_with("POST /vendor HTTP/1.1\r\n"),
        "{captured}"
    );
    assert!(captured.contains(&format!("x-signature: {}\r\n", "0".repeat(64))));
    assert!(captured.ends_with(&format!("\r\n\r\n{body}")), "{captured}");
    assert!(
        !captured.contains(SECRET),
        "hookguard's secret is never captured"
    );

    // verify reads the capture and refuses it for the same reason.
    let config_path = dir.0.join("config.toml");
    std::fs::write(&config_path, text.replace("{upstream}", &upstream.url())).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookguard"))
        .args(["verify", "--config"])
        .arg(&config_path)
        .args(["--route", "vendor", "--request"])
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("bad_signature"), "{report}");
    assert!(!report.contains(SECRET));

    // Refused on its head (405): captured head only.
    let headers = [("x-request-id", "cap-2".to_owned())];
    let answer = send(hg.addr, "PUT", "/vendor", &headers, "unread body").await;
    assert_eq!(answer.reject(), Some("method_not_allowed"));
    let head_only = std::fs::read_to_string(dir.0.join("cap-2.http")).unwrap();
    assert!(
        head_only.starts_with("PUT /vendor HTTP/1.1\r\n"),
        "{head_only}"
    );
    assert!(head_only.ends_with("\r\n\r\n"), "{head_only}");
    assert!(!head_only.contains("unread body"));
    assert_eq!(upstream.count(), 0);
}

#[tokio::test]
async fn captures_stay_within_their_bounds_oldest_dropped_first_and_counted() {
    let dir = TempDir::new("capture-bounds");
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&config(&dir, "capture_max_files = 2"), &upstream.url()).await;
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    assert_eq!(metric(&page, "hookguard_captures_dropped_total"), Some(0.0));
    for id in ["b-1", "b-2", "b-3"] {
        forged(&hg, id, "{}").await;
        // Modification times order the files a restart reads back.
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(captures(&dir), ["b-2.http", "b-3.http"]);
    let (_, page) = admin_get(hg.admin, "/metrics").await;
    assert_eq!(metric(&page, "hookguard_captures_dropped_total"), Some(1.0));

    // A byte bound: each capture here is about 200 bytes.
    let dir = TempDir::new("capture-bytes");
    let hg = Hookguard::start(&config(&dir, "capture_max_bytes = 500"), &upstream.url()).await;
    for id in ["c-1", "c-2", "c-3", "c-4"] {
        forged(&hg, id, "{}").await;
    }
    let kept = captures(&dir);
    let total: u64 = kept
        .iter()
        .map(|n| std::fs::metadata(dir.0.join(n)).unwrap().len())
        .sum();
    assert!(total <= 500, "{kept:?} take {total} bytes");
    assert_eq!(kept.last().map(String::as_str), Some("c-4.http"));
    // Too large to keep at all: not written, counted.
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(600));
    forged(&hg, "c-big", &big).await;
    assert!(!captures(&dir).contains(&"c-big.http".to_owned()));
}

#[test]
fn capture_needs_a_directory_that_exists_and_is_writable() {
    let no_env = |_: &str| None::<String>;
    let without = CONFIG
        .replace("capture_dir = \"{dir}\"\n", "")
        .replace("{bounds}", "")
        .replace("{upstream}", "http://127.0.0.1:9");
    let errors = hookguard::config::Config::from_toml(&without, &no_env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        errors,
        "routes[0] (\"vendor\").capture_rejected: needs server.capture_dir, the directory refused requests are written to"
    );
    let missing = CONFIG
        .replace("{dir}", "/nonexistent/hookguard-captures")
        .replace("{bounds}", "")
        .replace("{upstream}", "http://127.0.0.1:9");
    let errors = hookguard::config::Config::from_toml(&missing, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.starts_with(
            "server.capture_dir: cannot use /nonexistent/hookguard-captures: No such file or directory"
        ),
        "{errors}"
    );
    let gitlab = CONFIG
        .replace("capture_dir = \"{dir}\"\n", "capture_dir = \"/tmp\"\n")
        .replace("{bounds}", "")
        .replace("{upstream}", "http://127.0.0.1:9")
        .replace("scheme = \"hmac\"", "scheme = \"gitlab\"")
        .replace("[routes.hmac]\nheader = \"X-Signature\"\n", "");
    let errors = hookguard::config::Config::from_toml(&gitlab, &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("sends the shared secret itself in the request"),
        "{errors}"
    );
}
