//! The `sns` preset through a real hookguard, with the PayPal tests' local
//! certificate authority and HTTPS certificate server on loopback
//! (hookguard's `unsafe_cert_source`, which only ever names a loopback
//! origin).
//!
//! The independent signer: no AWS SDK signs SNS messages (they verify
//! them, fetching only from AWS's hosts), so the string to sign is built
//! here from AWS's documentation ("Verifying the signatures of Amazon SNS
//! messages", docs.aws.amazon.com/sns/latest/dg/sns-verify-signature-of-message.html:
//! `Name\nvalue\n` over Message, MessageId, Subject if present, Timestamp,
//! TopicArn, Type for notifications; Message, MessageId, SubscribeURL,
//! Timestamp, Token, TopicArn, Type for confirmations), separately from
//! hookguard's code, and signed with the rsa crate (SHA1withRSA for
//! SignatureVersion 1, SHA256withRSA for 2). AWS's own validator,
//! `sns-validator` 0.3.5 (npm, github.com/aws/aws-js-sns-message-validator,
//! run by `tests/all/signers/sns.js`), checks that signer: it accepts each
//! message the test sends as genuine, fetching the certificate from the
//! same server, and refuses the altered one.

use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rsa::signature::{SignatureEncoding, Signer};
use serde_json::{json, Value};

use crate::paypal::{cert_server, config_errors_of, pki, Pki};
use crate::support::{admin_get, metric, now, send, Answer, Hookguard, Upstream};

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:orders";

fn rfc3339(seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(seconds)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// Signs `message` in place as SNS does, with signature version `version`.
fn sign(pki: &Pki, message: &mut Value, version: u8) {
    let fields: &[&str] = match message["Type"].as_str().unwrap() {
        "Notification" => &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ],
        _ => &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ],
    };
    let mut text = String::new();
    for name in fields {
        if let Some(value) = message.get(*name).and_then(Value::as_str) {
            text.push_str(&format!("{name}\n{value}\n"));
        }
    }
    let signature = match version {
        1 => rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(pki.private.clone())
            .sign(text.as_bytes())
            .to_vec(),
        _ => rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(pki.private.clone())
            .sign(text.as_bytes())
            .to_vec(),
    };
    message["SignatureVersion"] = json!(version.to_string());
    message["Signature"] = json!(B64.encode(signature));
}

/// Whether AWS's validator accepts `message`, fetching its certificate
/// from `server` and trusting the test's CA; `None` when the validator is
/// not installed outside CI (`.ci/run` installs it; in CI its absence
/// fails). Runs off the test's runtime, which serves the certificates.
async fn aws_accepts(pki: &Pki, server: std::net::SocketAddr, message: &Value) -> Option<bool> {
    let (ca_file, message) = (pki.ca_file.clone(), message.to_string());
    tokio::task::spawn_blocking(move || aws_validate(&ca_file, server, &message))
        .await
        .expect("the validator's thread")
}

fn aws_validate(ca_file: &str, server: std::net::SocketAddr, message: &str) -> Option<bool> {
    let signers = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/all/signers");
    let present = Command::new("node")
        .args(["-e", "require('sns-validator')"])
        .current_dir(signers)
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var_os("CI").is_none(),
            "sns-validator (npm) is missing (.ci/run installs it)"
        );
        eprintln!("note: sns-validator is not installed; AWS's check skipped");
        return None;
    }
    let out = Command::new("node")
        .arg(format!("{signers}/sns.js"))
        .args([message.to_owned(), server.to_string()])
        .env("NODE_EXTRA_CA_CERTS", ca_file)
        .output()
        .expect("node runs");
    Some(out.status.success())
}

fn notification(id: &str, cert_url: &str, at: i64) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": id,
        "TopicArn": TOPIC,
        "Subject": "Order shipped",
        "Message": "{\"order\": 42,\n \"note\": \"caf\u{e9} \\\"quoted\\\"\"}",
        "Timestamp": rfc3339(at),
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    })
}

async fn post(hg: &Hookguard, message: &Value) -> Answer {
    let headers = [
        (
            "x-amz-sns-message-type",
            message["Type"].as_str().unwrap().to_owned(),
        ),
        (
            "x-amz-sns-message-id",
            message["MessageId"].as_str().unwrap().to_owned(),
        ),
        ("content-type", "text/plain; charset=UTF-8".to_owned()),
    ];
    send(hg.addr, "POST", "/sns", &headers, message.to_string()).await
}

/// Posts until the answer is no longer "certificate being fetched"
/// (bounded: 10 s).
async fn post_settled(hg: &Hookguard, message: &Value) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = post(hg, message).await;
        if answer.reject() != Some("key_unavailable") || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn route(origin: &str, ca_file: &str) -> String {
    format!(
        "[server]\nupstream = \"{{upstream}}\"\n\n[[routes]]\nname = \"sns\"\npath = \"/sns\"\nscheme = \"sns\"\ntopic_arns = [\"{TOPIC}\", \"arn:aws:sns:eu-west-1:123456789012:refunds\"]\nunsafe_cert_source = {{ origin = \"{origin}\", ca_file = {} }}\n",
        serde_json::to_string(ca_file).unwrap()
    )
}

#[tokio::test]
async fn sns_verifies_notifications_and_confirmations_with_a_pinned_fetched_certificate() {
    let pki = pki();
    let (server, hits) = cert_server(&pki).await;
    let origin = format!("https://{server}");
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&route(&origin, &pki.ca_file), &upstream.url()).await;
    let good = format!("{origin}/certs/good.pem");

    // First: 503 while the certificate is fetched, then forwarded.
    let mut first = notification("m-1", &good, now());
    sign(&pki, &mut first, 2);
    let answer = post(&hg, &first).await;
    assert_eq!(
        (answer.status, answer.reject()),
        (503, Some("key_unavailable"))
    );
    assert!(answer.headers.contains_key("retry-after"));
    let answer = post_settled(&hg, &first).await;
    assert_eq!((answer.status, answer.reject()), (200, None), "{answer:?}");
    let hits_before_aws = hits.load(Ordering::SeqCst);
    assert_eq!(upstream.last().body, first.to_string().as_bytes());
    assert_eq!(
        upstream.last().headers["x-verified-by"],
        "hookguard; route=sns; scheme=sns; key=sns-certificate"
    );
    assert_eq!(hits_before_aws, 1, "fetched once, then cached");

    // The same message again is a duplicate (default dedupe: MessageId).
    assert_eq!(post(&hg, &first).await.reject(), Some("duplicate"));

    // One byte of the signed message changed; an unsigned Subject added.
    let mut second = notification("m-2", &good, now());
    sign(&pki, &mut second, 2);
    let mut changed = second.clone();
    changed["Message"] = json!(second["Message"].as_str().unwrap().replacen("42", "43", 1));
    assert_eq!(post(&hg, &changed).await.reject(), Some("bad_signature"));
    let mut unsigned = notification("m-2b", &good, now());
    unsigned.as_object_mut().unwrap().remove("Subject");
    sign(&pki, &mut unsigned, 2);
    unsigned["Subject"] = json!("added after signing");
    assert_eq!(post(&hg, &unsigned).await.reject(), Some("bad_signature"));
    // A signable field added to a notification breaks it too.
    let mut smuggled = second.clone();
    smuggled["SubscribeURL"] = json!("https://attacker.example/confirm");
    assert_eq!(post(&hg, &smuggled).await.reject(), Some("bad_signature"));
    // A version-2 signature claimed as version 1.
    let mut relabelled = second.clone();
    relabelled["SignatureVersion"] = json!("1");
    assert_eq!(post(&hg, &relabelled).await.reject(), Some("bad_signature"));
    let mut unknown = second.clone();
    unknown["SignatureVersion"] = json!("3");
    assert_eq!(
        post(&hg, &unknown).await.reject(),
        Some("malformed_signature")
    );
    // The untouched one passes; so does SignatureVersion 1 (SHA1withRSA).
    assert_eq!(post(&hg, &second).await.reject(), None);
    let mut sha1 = notification("m-3", &good, now());
    sign(&pki, &mut sha1, 1);
    assert_eq!(post(&hg, &sha1).await.reject(), None);

    // A confirmation is verified over its own fields and forwarded: the
    // app confirms by visiting the verified SubscribeURL.
    let mut confirmation = json!({
        "Type": "SubscriptionConfirmation",
        "MessageId": "m-4",
        "Token": "2336412f37fb687f5d51e6e2425f004aed",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic. To confirm, visit the SubscribeURL.",
        "SubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=2336412f37fb687f5d51e6e2425f004aed",
        "Timestamp": rfc3339(now()),
        "SigningCertURL": good,
    });
    sign(&pki, &mut confirmation, 2);
    let mut forged = confirmation.clone();
    forged["SubscribeURL"] = json!("https://attacker.example/confirm");
    assert_eq!(post(&hg, &forged).await.reject(), Some("bad_signature"));
    assert_eq!(post(&hg, &confirmation).await.reject(), None);
    assert_eq!(upstream.last().body, confirmation.to_string().as_bytes());

    // AWS's validator agrees with the signer: it accepts what was signed,
    // in both versions and both types, and refuses the altered message.
    for (message, genuine) in [
        (&first, true),
        (&sha1, true),
        (&confirmation, true),
        (&changed, false),
        (&forged, false),
    ] {
        if let Some(accepted) = aws_accepts(&pki, server, message).await {
            assert_eq!(accepted, genuine, "sns-validator on {message}");
        }
    }

    // A validly signed message of a topic the route does not list.
    let mut stranger = notification("m-5", &good, now());
    stranger["TopicArn"] = json!("arn:aws:sns:us-east-1:999999999999:orders");
    sign(&pki, &mut stranger, 2);
    let answer = post(&hg, &stranger).await;
    assert_eq!(answer.reject(), Some("bad_signature"));
    assert!(answer.json()["detail"].to_string().contains("topic_arns"));

    // Certificate URLs off the pin are refused without any fetch.
    let before = hits.load(Ordering::SeqCst);
    for url in [
        format!("http://{server}/certs/good.pem"),
        format!("https://localhost:{}/certs/good.pem", server.port()),
        format!("https://127.0.0.1:{}/certs/good.pem", server.port() + 1),
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem".to_owned(),
        format!("https://user@{server}/certs/good.pem"),
    ] {
        let mut message = notification("m-6", &url, now());
        sign(&pki, &mut message, 2);
        assert_eq!(
            post(&hg, &message).await.reject(),
            Some("bad_signature"),
            "{url}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), before, "nothing fetched");
    // A file that is no certificate is refused 401 once fetched.
    let mut garbage = notification("m-7", &format!("{origin}/certs/garbage.pem"), now());
    sign(&pki, &mut garbage, 2);
    let answer = post_settled(&hg, &garbage).await;
    assert_eq!(
        (answer.status, answer.reject()),
        (401, Some("bad_signature"))
    );

    let (_, page) = admin_get(hg.admin, "/metrics").await;
    let fetched = metric(
        &page,
        "hookguard_cert_fetches_total{outcome=\"ok\",scheme=\"sns\",trigger=\"request\"}",
    );
    assert!(fetched.is_some_and(|n| n >= 1.0), "{fetched:?}");
    let refused = metric(
        &page,
        "hookguard_cert_fetches_total{outcome=\"untrusted\",scheme=\"sns\",trigger=\"request\"}",
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{refused:?}");
    assert_eq!(upstream.count(), 4);
}

#[tokio::test]
async fn sns_window_is_an_hour_of_retries_and_five_minutes_of_skew_at_both_edges() {
    let pki = pki();
    let (server, _hits) = cert_server(&pki).await;
    let origin = format!("https://{server}");
    let upstream = Upstream::start().await;
    let hg = Hookguard::start(&route(&origin, &pki.ca_file), &upstream.url()).await;
    let good = format!("{origin}/certs/good.pem");
    let mut warm = notification("w-0", &good, now());
    sign(&pki, &mut warm, 2);
    assert_eq!(post_settled(&hg, &warm).await.reject(), None);
    // 3900 s either way; 10 s of room for a slow run.
    for (n, offset, expected) in [
        (1, -3890, None),
        (2, -3910, Some("stale_timestamp")),
        (3, 3890, None),
        (4, 3910, Some("future_timestamp")),
    ] {
        let mut message = notification(&format!("w-{n}"), &good, now() + offset);
        sign(&pki, &mut message, 2);
        assert_eq!(
            post(&hg, &message).await.reject(),
            expected,
            "offset {offset}"
        );
    }
    let mut message = notification("w-5", &good, now());
    message["Timestamp"] = json!(now().to_string());
    sign(&pki, &mut message, 2);
    assert_eq!(
        post(&hg, &message).await.reject(),
        Some("malformed_timestamp")
    );
}

#[test]
fn sns_config_names_its_keys() {
    let missing = config_errors_of("sns", "scheme = \"sns\"");
    assert!(
        missing.contains("routes[0] (\"sns\").topic_arns"),
        "{missing}"
    );
    assert!(missing.contains("SNS topics"), "{missing}");
    let bad = config_errors_of(
        "sns",
        "scheme = \"sns\"\ntopic_arns = [\"orders\", \"arn:aws:sqs:us-east-1:123456789012:q\"]",
    );
    assert!(
        bad.contains(".topic_arns[0]") && bad.contains(".topic_arns[1]"),
        "{bad}"
    );
    let empty = config_errors_of("sns", "scheme = \"sns\"\ntopic_arns = []");
    assert!(
        empty.contains(".topic_arns") && empty.contains("empty"),
        "{empty}"
    );
    let keys = config_errors_of(
        "sns",
        &format!(
        "scheme = \"sns\"\ntopic_arns = [\"{TOPIC}\"]\nsecrets = [{{ id = \"a\", value = \"x\" }}]"
    ),
    );
    assert!(
        keys.contains(".secrets") && keys.contains("takes no keys"),
        "{keys}"
    );
    let elsewhere = config_errors_of("sns", &format!(
        "scheme = \"github\"\nsecrets = [{{ id = \"a\", value = \"x\" }}]\ntopic_arns = [\"{TOPIC}\"]\nunsafe_cert_source = {{ origin = \"https://127.0.0.1:8443\", ca_file = \"/nonexistent\" }}"
    ));
    assert!(
        elsewhere.contains(".topic_arns") && elsewhere.contains("only for sns"),
        "{elsewhere}"
    );
    assert!(
        elsewhere.contains(".unsafe_cert_source") && elsewhere.contains("only for paypal, sns"),
        "{elsewhere}"
    );
}
