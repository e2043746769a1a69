//! Configuration validation, end to end through `Config::from_toml`: every
//! problem is reported at once, each error names its key and says what is
//! wrong in exact words, secrets never appear in a message, and the defaults
//! and the shipped example are what the documentation promises.

use std::sync::Mutex;
use std::time::Duration;

use hookguard::config::{Config, PathPattern, Unmatched};
use hookguard::dedupe::DedupeSource;
use http::Method;

/// An environment in which nothing is set.
fn no_env(_: &str) -> Option<String> {
    None
}

/// `[server]` with only the required key.
const SERVER: &str = r#"
[server]
upstream = "http://127.0.0.1:8080"
"#;

/// One valid route named `name` on `path`, with a literal secret.
fn route(name: &str, path: &str) -> String {
    format!(
        r#"
[[routes]]
name = "{name}"
path = "{path}"
scheme = "hmac"
secrets = [{{ value = "s" }}]

[routes.hmac]
header = "X-Signature"
"#
    )
}

/// The error lines of a config that must not validate.
fn errors_with(text: &str, env: &dyn hookguard::config::Env) -> Vec<String> {
    match Config::from_toml(text, env) {
        Ok(config) => panic!("expected errors, got a valid config: {config:?}\n{text}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// The error lines of a config that must not validate, with no env set.
fn errors(text: &str) -> Vec<String> {
    errors_with(text, &no_env)
}

/// A config that must validate.
fn valid(text: &str) -> Config {
    match Config::from_toml(text, &no_env) {
        Ok(config) => config,
        Err(errors) => panic!("expected a valid config, got:\n{errors}\n---\n{text}"),
    }
}

/// Asserts that the config fails with exactly these errors (in any order).
#[track_caller]
fn assert_errors(text: &str, expected: &[&str]) {
    let mut found = errors(text);
    found.sort();
    let mut expected: Vec<String> = expected.iter().map(|e| (*e).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected, "config was:\n{text}");
}

#[test]
fn several_problems_at_once_are_all_reported_each_naming_its_key() {
    let text = r#"
[server]
upstream = "http://127.0.0.1:8080"
listne = "0.0.0.0:8000"
max_body = "1mb"

[[routes]]
name = "cartelcrm"
path = "/cartelcrm/callback"
scheme = "hmac"
secrets = [{ env = "CARTELCRM_CALLBACK_SECRET" }]

[routes.hmac]
header = "X-Signature"
algorithm = "crc32"
"#;
    assert_errors(
        text,
        &[
            r#"server.max_body: "1mb" has unknown size unit "mb": use one of B, KiB, MiB, GiB, KB, MB, GB"#,
            "server.listne: unknown key; did you mean `listen`?",
            r#"routes[0] ("cartelcrm").hmac.algorithm: "crc32" is not one of sha1, sha256, sha512, md5"#,
            "routes[0] (\"cartelcrm\").secrets[0]: environment variable CARTELCRM_CALLBACK_SECRET is not set",
        ],
    );
}

#[test]
fn errors_display_as_one_key_message_line_each() {
    let text = format!("{SERVER}listne = 1\nmax_body = 0\n{}", route("a", "/a"));
    let errors = Config::from_toml(&text, &no_env).unwrap_err();
    assert_eq!(
        errors.to_string(),
        "server.max_body: must be greater than 0\nserver.listne: unknown key; did you mean `listen`?"
    );
}

#[test]
fn a_zero_max_body_is_reported_once_under_the_key_that_set_it() {
    // The server's zero is not repeated for the route that inherits it.
    let text = format!("{SERVER}max_body = \"0KiB\"\n{}", route("a", "/a"));
    assert_errors(&text, &["server.max_body: must be greater than 0"]);
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace("scheme = ", "max_body = 0\nscheme = ")
    );
    assert_errors(
        &text,
        &["routes[0] (\"a\").max_body: must be greater than 0"],
    );
}

#[test]
fn the_set_env_secret_validates_and_is_looked_up_by_name() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"{ value = "s" }"#, r#"{ env = "X" }"#)
    );
    let env = |name: &str| (name == "X").then(|| "s".to_owned());
    let config = Config::from_toml(&text, &env).expect("X is set");
    assert_eq!(config.routes[0].scheme.key_ids(), ["0"]);
}

#[test]
fn an_empty_env_secret_is_refused() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"{ value = "s" }"#, r#"{ env = "X" }"#)
    );
    let env = |name: &str| (name == "X").then(String::new);
    assert_eq!(
        errors_with(&text, &env),
        ["routes[0] (\"a\").secrets[0]: environment variable X is empty"]
    );
}

#[test]
fn a_missing_secret_file_is_named_by_its_path() {
    let path = "/nonexistent/hookguard-tests/webhook-secret";
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"{ value = "s" }"#, &format!(r#"{{ file = "{path}" }}"#))
    );
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "routes[0] (\"a\").secrets[0]: cannot read secret file {path}: "
        )),
        "{found:#?}"
    );
}

#[test]
fn a_secret_file_is_read_with_its_trailing_newline_trimmed() {
    let path = std::env::temp_dir().join(format!(
        "hookguard-config-errors-secret-{}",
        std::process::id()
    ));
    std::fs::write(&path, "from-a-file\n").unwrap();
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(
            r#"{ value = "s" }"#,
            &format!(
                r#"{{ file = {:?}, id = "mounted" }}"#,
                path.display().to_string()
            )
        )
    );
    let config = valid(&text);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        config.routes[0].verified_values[0],
        "hookguard; route=a; scheme=hmac; key=mounted"
    );
}

#[test]
fn literal_secret_values_never_appear_in_errors() {
    // Wrong type for `value`, next to a literal secret that is fine.
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(
            r#"secrets = [{ value = "s" }]"#,
            r#"secrets = [{ value = 123 }, { value = "hunter2-secret", id = "bad id" }]"#
        )
    );
    let found = errors(&text);
    assert!(
        found.contains(
            &"routes[0] (\"a\").secrets[0].value: expected a string, found an integer".to_owned()
        ),
        "{found:#?}"
    );
    assert!(
        found.contains(&r#"routes[0] ("a").secrets[0]: give exactly one of env = "VAR", file = "/path" or value = "...""#.to_owned()),
        "{found:#?}"
    );
    assert!(found.contains(&r#"routes[0] ("a").secrets[1].id: "bad id" must be 1 to 64 characters of letters, digits, '-', '_' or '.'"#.to_owned()), "{found:#?}");
    assert!(!found.join("\n").contains("hunter2"), "{found:#?}");

    // Two sources, one of them a literal.
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(
            r#"{ value = "s" }"#,
            r#"{ env = "X", value = "hunter2-secret" }"#
        )
    );
    let found = errors(&text).join("\n");
    assert!(!found.contains("hunter2"), "{found}");

    // A literal pasted into a key that expects something else.
    let text = format!(
        "{SERVER}verified_header = 7\n{}",
        route("a", "/a").replace(
            r#"header = "X-Signature""#,
            "header = \"X-Signature\"\nsecret = \"hunter2-secret\"\nalgorithm = [\"hunter2-secret\"]"
        )
    );
    let found = errors(&text).join("\n");
    assert!(
        found.contains("routes[0] (\"a\").hmac.secret: unknown key"),
        "{found}"
    );
    assert!(!found.contains("hunter2"), "{found}");
}

#[test]
fn a_syntax_error_on_a_secret_line_names_the_line_but_not_the_secret() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(
            r#"secrets = [{ value = "s" }]"#,
            "secrets = [\n  { value = \"hunter2-secret },\n]"
        )
    );
    let line = text
        .lines()
        .position(|l| l.contains("hunter2"))
        .expect("the secret is in the text")
        + 1;
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!("TOML syntax error at line {line}, column ")),
        "{found:#?}"
    );
    assert!(!found[0].contains("hunter2"), "{found:#?}");
}

#[test]
fn a_syntax_error_after_non_ascii_text_is_reported_not_a_panic() {
    let text = format!("{SERVER}# café ✓\nlisten = «0.0.0.0:8000»\n");
    let found = errors(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("TOML syntax error at line 5, column "),
        "{found:#?}"
    );
}

#[test]
fn a_timestamp_placeholder_needs_timestamp_header() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a") + "message = \"{body}.{timestamp}\"\n"
    );
    assert_errors(
        &text,
        &["routes[0] (\"a\").hmac.message: uses {timestamp} but timestamp_header is not set"],
    );
    valid(&format!("{text}timestamp_header = \"X-Timestamp\"\n"));
}

#[test]
fn an_id_placeholder_needs_id_header() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a") + "message = \"{id}.{body}\"\n"
    );
    assert_errors(
        &text,
        &["routes[0] (\"a\").hmac.message: uses {id} but id_header is not set"],
    );
    valid(&format!("{text}id_header = \"X-Id\"\n"));
}

#[test]
fn an_unknown_placeholder_is_named_with_the_allowed_ones() {
    let text = format!("{SERVER}{}", route("a", "/a") + "message = \"{bdy}\"\n");
    assert_errors(
        &text,
        &[
            r#"routes[0] ("a").hmac.message: "{bdy}": unknown placeholder {bdy}; use {body}, {timestamp}, {id}, {method}, {path}, {header:Name}"#,
        ],
    );
}

#[test]
fn duplicate_route_names_are_refused() {
    let text = format!("{SERVER}{}{}", route("a", "/a"), route("a", "/b"));
    assert_errors(
        &text,
        &[r#"routes[1] ("a").name: "a" is used by an earlier route"#],
    );
}

#[test]
fn duplicate_route_paths_are_refused() {
    let text = format!("{SERVER}{}{}", route("a", "/a/*"), route("b", "/a/*"));
    assert_errors(
        &text,
        &[r#"routes[1] ("b").path: "/a/*" is used by an earlier route"#],
    );
}

#[test]
fn duplicate_route_errors_name_the_route_by_its_position_in_the_file() {
    // routes[0] is invalid on its own, so the duplicate is still routes[2] (\"a\").
    let text = format!(
        "{SERVER}{}{}{}",
        route("broken", "no-slash"),
        route("a", "/a"),
        route("a", "/a")
    );
    assert_errors(
        &text,
        &[
            r#"routes[0] ("broken").path: "no-slash" must start with "/""#,
            r#"routes[2] ("a").name: "a" is used by an earlier route"#,
            r#"routes[2] ("a").path: "/a" is used by an earlier route"#,
        ],
    );
}

#[test]
fn a_path_must_start_with_a_slash() {
    let text = format!("{SERVER}{}", route("a", "hooks/a"));
    assert_errors(
        &text,
        &[r#"routes[0] ("a").path: "hooks/a" must start with "/""#],
    );
}

#[test]
fn a_star_is_only_allowed_at_the_end_of_a_path() {
    let text = format!("{SERVER}{}", route("a", "/hooks/*/a"));
    assert_errors(
        &text,
        &[
            r#"routes[0] ("a").path: "/hooks/*/a": '*' is only allowed as a final "/*" (prefix match)"#,
        ],
    );
    let config = valid(&format!("{SERVER}{}", route("a", "/hooks/*")));
    assert_eq!(
        config.routes[0].path,
        PathPattern::Prefix("/hooks/".to_owned())
    );
}

#[test]
fn the_unmatched_route_name_is_reserved() {
    let text = format!("{SERVER}{}", route("_unmatched", "/a"));
    assert_errors(
        &text,
        &[r#"routes[0].name: "_unmatched" is reserved for requests no route matches"#],
    );
}

#[test]
fn an_empty_methods_list_is_refused() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace("scheme = ", "methods = []\nscheme = ")
    );
    assert_errors(
        &text,
        &[r#"routes[0] ("a").methods: must list at least one method, e.g. ["POST"]"#],
    );
}

#[test]
fn an_invalid_method_is_named_by_its_index() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace("scheme = ", "methods = [\"post\", \"PO ST\"]\nscheme = ")
    );
    assert_errors(
        &text,
        &[r#"routes[0] ("a").methods[1]: "PO ST" is not an HTTP method"#],
    );
}

#[test]
fn scheme_hmac_without_an_hmac_table_is_refused() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace("[routes.hmac]\nheader = \"X-Signature\"\n", "")
    );
    assert_errors(
        &text,
        &[r#"routes[0] ("a").hmac: missing: scheme = "hmac" needs a [routes.hmac] table"#],
    );
}

#[test]
fn an_unknown_scheme_lists_the_known_ones() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"scheme = "hmac""#, r#"scheme = "strype""#)
    );
    assert_errors(
        &text,
        &[&format!(
            r#"routes[0] ("a").scheme: "strype" is not one of the {} schemes hookguard knows; did you mean "stripe"?"#,
            hookguard::schemes::registry::SCHEMES.len()
        )],
    );
}

#[test]
fn ngrok_ids_without_a_signature_say_why_there_is_no_preset() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"scheme = "hmac""#, r#"scheme = "vmware""#)
    );
    assert_errors(
        &text,
        &[
            r#"routes[0] ("a").scheme: "vmware" cannot be verified by a signature: VMware Workspace ONE signs nothing; it sends HTTP basic auth (ngrok's secret for it is "username::password"), which hookguard does not check"#,
        ],
    );
}

#[test]
fn errors_under_a_route_name_it_and_a_typo_gets_the_closest_key() {
    let text = format!(
        "{SERVER}{}",
        route("vendor", "/v").replace("scheme = ", "tolerence = \"5m\"\nscheme = ")
    );
    assert_errors(
        &text,
        &["routes[0] (\"vendor\").tolerence: unknown key; did you mean `tolerance`?"],
    );
    // Nothing near enough: no guess.
    let text = format!(
        "{SERVER}{}",
        route("vendor", "/v").replace("scheme = ", "colour = 1\nscheme = ")
    );
    assert_errors(&text, &["routes[0] (\"vendor\").colour: unknown key"]);
    // Keys in a route's tables are named under the route too.
    let text = format!(
        "{SERVER}{}",
        route("vendor", "/v").replace("header = ", "algoritm = \"sha1\"\nheader = ")
    );
    assert_errors(
        &text,
        &["routes[0] (\"vendor\").hmac.algoritm: unknown key; did you mean `algorithm`?"],
    );
}

#[test]
fn a_route_without_a_valid_name_keeps_its_index() {
    let text = format!(
        "{SERVER}{}",
        route("has space", "/v").replace("scheme = ", "tolerence = \"5m\"\nscheme = ")
    );
    assert_errors(
        &text,
        &[
            r#"routes[0].name: "has space" must be 1 to 64 characters of letters, digits, '-', '_' or '.'"#,
            "routes[0].tolerence: unknown key; did you mean `tolerance`?",
        ],
    );
}

#[test]
fn a_scheme_typo_gets_the_closest_scheme_and_a_far_one_none() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"scheme = "hmac""#, r#"scheme = "standard-webhook""#)
    );
    let found = errors(&text);
    assert!(
        found[0].ends_with(r#"; did you mean "standard-webhooks"?"#),
        "{found:?}"
    );
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"scheme = "hmac""#, r#"scheme = "salesforce""#)
    );
    let found = errors(&text);
    assert!(
        found[0].ends_with(r#"none is close; the README's "Provider presets" lists them all, or use "hmac" with a [routes.hmac] table to describe the sender"#),
        "{found:?}"
    );
    // ngrok's spellings and the names without punctuation find the preset,
    // and a name close to several offers them all, nearest first.
    for (typed, expected) in [
        (
            "launch-darkly",
            r#"did you mean "launchdarkly" or "launch_darkly"?"#,
        ),
        ("lemonsqueezy", r#"did you mean "lemon-squeezy"?"#),
        ("checkout", r#"did you mean "checkout-com"?"#),
        ("facebok", r#"did you mean "facebook""#),
        ("coinbase_commerce", r#"did you mean "coinbase-commerce""#),
    ] {
        let text = format!(
            "{SERVER}{}",
            route("a", "/a").replace(r#"scheme = "hmac""#, &format!("scheme = \"{typed}\""))
        );
        let found = errors(&text);
        assert!(found[0].contains(expected), "{typed}: {found:?}");
    }
}

#[test]
fn a_tolerance_under_one_second_is_refused_by_name() {
    for zero in ["0s", "500ms"] {
        let text = format!(
            "{SERVER}{}",
            route("a", "/a").replace("scheme = ", &format!("tolerance = \"{zero}\"\nscheme = "))
        );
        assert_errors(
            &text,
            &["routes[0] (\"a\").tolerance: must be at least 1s: timestamps are compared in whole seconds, so a shorter window would refuse every timestamped request as stale or future"],
        );
    }
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace("scheme = ", "tolerance = \"1s\"\nscheme = ")
    );
    assert_eq!(valid(&text).routes[0].tolerance, Duration::from_secs(1));
}

#[test]
fn a_missing_public_key_list_suggests_a_public_key() {
    let text = format!("{SERVER}[[routes]]\nname = \"d\"\npath = \"/d\"\nscheme = \"discord\"\n");
    assert_errors(
        &text,
        &[
            r#"routes[0] ("d").public_keys: missing: list the sender's public key as the provider publishes it, e.g. [{ env = "DISCORD_PUBLIC_KEY" }] or [{ file = "/run/keys/sender.pem" }]"#,
        ],
    );
}

#[test]
fn a_secret_with_both_env_and_value_is_refused() {
    let text = format!(
        "{SERVER}{}",
        route("a", "/a").replace(r#"{ value = "s" }"#, r#"{ env = "X", value = "s" }"#)
    );
    let env = |name: &str| (name == "X").then(|| "s".to_owned());
    assert_eq!(
        errors_with(&text, &env),
        [
            r#"routes[0] ("a").secrets[0]: give exactly one of env = "VAR", file = "/path" or value = "...""#
        ]
    );
}

#[test]
fn an_https_upstream_is_refused() {
    let text = format!(
        "{}{}",
        SERVER.replace("http://127.0.0.1:8080", "https://127.0.0.1:8443"),
        route("a", "/a")
    );
    assert_errors(
        &text,
        &[
            r#"server.upstream: "https://127.0.0.1:8443": only http:// upstreams are supported (the app runs in the same pod)"#,
        ],
    );
}

#[test]
fn an_upstream_without_a_port_is_refused() {
    let text = format!(
        "{}{}",
        SERVER.replace("http://127.0.0.1:8080", "http://app"),
        route("a", "/a")
    );
    assert_errors(
        &text,
        &[r#"server.upstream: "http://app" has no port: write it as http://HOST:PORT"#],
    );
}

#[test]
fn listen_addresses_must_be_ip_and_port() {
    let text = format!(
        "{SERVER}listen = \"localhost:8000\"\nadmin_listen = \"9901\"\n{}",
        route("a", "/a")
    );
    assert_errors(
        &text,
        &[
            r#"server.listen: "localhost:8000" is not an address: use IP:PORT, e.g. "0.0.0.0:8000""#,
            r#"server.admin_listen: "9901" is not an address: use IP:PORT, e.g. "0.0.0.0:8000""#,
        ],
    );
}

#[test]
fn durations_without_a_unit_are_refused() {
    let text = format!(
        "{SERVER}header_timeout = \"10\"\n{}",
        route("a", "/a").replace("scheme = ", "tolerance = \"300\"\nscheme = ")
    );
    assert_errors(
        &text,
        &[
            r#"server.header_timeout: "10" has no unit: write it as 250ms, 10s, 5m or 24h"#,
            r#"routes[0] ("a").tolerance: "300" has no unit: write it as 250ms, 10s, 5m or 24h"#,
        ],
    );
}

#[test]
fn zero_timeouts_are_refused() {
    let text = format!(
        "{SERVER}header_timeout = \"0s\"\nbody_timeout = \"0ms\"\nupstream_timeout = \"0m\"\n{}",
        route("a", "/a").replace("scheme = ", "dedupe_ttl = \"0h\"\nscheme = ")
    );
    assert_errors(
        &text,
        &[
            "server.header_timeout: must be greater than 0",
            "server.body_timeout: must be greater than 0",
            "server.upstream_timeout: must be greater than 0",
            "routes[0] (\"a\").dedupe_ttl: must be greater than 0",
        ],
    );
}

#[test]
fn workers_must_be_between_one_and_256() {
    let text = format!("{SERVER}workers = 0\n{}", route("a", "/a"));
    assert_errors(&text, &["server.workers: 0 is out of range: use 1 to 256"]);
    let config = valid(&format!("{SERVER}workers = 4\n{}", route("a", "/a")));
    assert_eq!(config.server.workers, 4);
}

#[test]
fn unmatched_must_be_reject_or_forward() {
    let text = format!("{SERVER}unmatched = \"maybe\"\n{}", route("a", "/a"));
    assert_errors(
        &text,
        &[r#"server.unmatched: "maybe" is not one of reject, forward"#],
    );
    let config = valid(&format!(
        "{SERVER}unmatched = \"forward\"\n{}",
        route("a", "/a")
    ));
    assert_eq!(config.server.unmatched, Unmatched::Forward);
}

/// One route with `dedupe = <list>`.
fn with_dedupe(list: &str) -> String {
    format!(
        "{SERVER}{}",
        route("a", "/a").replace("scheme = ", &format!("dedupe = {list}\nscheme = "))
    )
}

#[test]
fn an_unknown_dedupe_entry_lists_the_allowed_forms() {
    assert_errors(
        &with_dedupe(r#"["signature", "body"]"#),
        &[
            r#"routes[0] ("a").dedupe[1]: "body" is not one of "signature", "header:Name", "json:/pointer", "json:(/a,/b)""#,
        ],
    );
}

#[test]
fn a_dedupe_json_pointer_must_start_with_a_slash() {
    assert_errors(
        &with_dedupe(r#"["json:id"]"#),
        &[
            r#"routes[0] ("a").dedupe[0]: "json:id": a JSON pointer starts with "/", e.g. "json:/id""#,
        ],
    );
}

#[test]
fn a_dedupe_entry_listed_twice_is_refused() {
    assert_errors(
        &with_dedupe(r#"["signature", "signature"]"#),
        &[r#"routes[0] ("a").dedupe[1]: "signature" is listed twice"#],
    );
    // Header names are case-insensitive, so these are the same entry.
    assert_errors(
        &with_dedupe(r#"["header:X-Id", "header:x-id"]"#),
        &[r#"routes[0] ("a").dedupe[1]: "header:x-id" is listed twice"#],
    );
}

#[test]
fn an_empty_dedupe_list_turns_replay_protection_off() {
    let config = valid(&with_dedupe("[]"));
    assert!(config.routes[0].dedupe.is_empty());
}

#[test]
fn dedupe_defaults_to_the_signature() {
    let config = valid(&format!("{SERVER}{}", route("a", "/a")));
    assert_eq!(config.routes[0].dedupe, [DedupeSource::Signature]);
}

#[test]
fn a_minimal_config_gets_the_documented_defaults() {
    let config = valid(&format!("{SERVER}{}", route("hook", "/hook")));
    let server = &config.server;
    assert_eq!(server.listen, "0.0.0.0:8000".parse().unwrap());
    assert_eq!(server.admin_listen, "127.0.0.1:9901".parse().unwrap());
    assert_eq!(server.upstream.authority, "127.0.0.1:8080");
    assert_eq!(server.upstream.base_path, "");
    assert_eq!(server.verified_header, "x-verified-by");
    assert_eq!(server.max_body, 1024 * 1024);
    assert_eq!(server.unmatched, Unmatched::Reject);
    assert_eq!(server.workers, 1);

    assert_eq!(config.routes.len(), 1);
    let route = &config.routes[0];
    assert_eq!(route.name, "hook");
    assert_eq!(route.path, PathPattern::Exact("/hook".to_owned()));
    assert_eq!(route.methods, [Method::POST]);
    assert_eq!(route.allow, "POST");
    assert_eq!(route.tolerance, Duration::from_secs(300));
    assert_eq!(route.dedupe_ttl, Duration::from_secs(24 * 3600));
    assert_eq!(route.max_body, 1024 * 1024);
    assert_eq!(route.scheme.name(), "hmac");
    assert_eq!(route.scheme.key_ids(), ["0"]);
    assert_eq!(
        route.verified_values[0],
        "hookguard; route=hook; scheme=hmac; key=0"
    );
}

#[test]
fn the_verified_value_names_the_key_by_id_or_by_index() {
    let text = format!(
        "{SERVER}{}",
        route("hook", "/hook").replace(
            r#"{ value = "s" }"#,
            r#"{ value = "s1", id = "current" }, { value = "s2" }"#
        )
    );
    let config = valid(&text);
    let route = &config.routes[0];
    assert_eq!(route.scheme.key_ids(), ["current", "1"]);
    assert_eq!(
        route.verified_values[0],
        "hookguard; route=hook; scheme=hmac; key=current"
    );
    assert_eq!(
        route.verified_values[1],
        "hookguard; route=hook; scheme=hmac; key=1"
    );
}

#[test]
fn the_server_max_body_is_the_default_for_routes() {
    let text = format!(
        "{SERVER}max_body = \"64KiB\"\n{}{}",
        route("a", "/a"),
        route("b", "/b").replace("scheme = ", "max_body = 1000\nscheme = ")
    );
    let config = valid(&text);
    assert_eq!(config.server.max_body, 64 * 1024);
    assert_eq!(config.routes[0].max_body, 64 * 1024);
    assert_eq!(config.routes[1].max_body, 1000);
}

const EXAMPLE_SECRETS: [(&str, &str); 4] = [
    ("CARTELCRM_CALLBACK_SECRET", "example-crm-secret"),
    ("ZORIO_WEBHOOK_SECRET", "example-zorio-secret"),
    ("VENDOR_SECRET_CURRENT", "example-vendor-current"),
    ("VENDOR_SECRET_PREVIOUS", "example-vendor-previous"),
];

fn example_text() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml");
    std::fs::read_to_string(path).expect("config.example.toml is in the repository")
}

#[test]
fn the_example_config_validates_with_its_env_variables_set() {
    let asked = Mutex::new(Vec::new());
    let env = |name: &str| {
        asked.lock().unwrap().push(name.to_owned());
        EXAMPLE_SECRETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    };
    let config = match Config::from_toml(&example_text(), &env) {
        Ok(config) => config,
        Err(errors) => panic!("config.example.toml does not validate:\n{errors}"),
    };
    let mut asked = asked.into_inner().unwrap();
    asked.sort();
    asked.dedup();
    let mut expected: Vec<&str> = EXAMPLE_SECRETS.iter().map(|(n, _)| *n).collect();
    expected.sort();
    assert_eq!(asked, expected);

    let names: Vec<&str> = config.routes.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["cartelcrm", "cartelcrm-status", "zorio", "vendor"]);
    let ids: Vec<&[String]> = config.routes.iter().map(|r| r.scheme.key_ids()).collect();
    assert_eq!(
        ids,
        [
            &["current".to_owned()][..],
            &["current".to_owned()],
            &["0".to_owned()],
            &["current".to_owned(), "previous".to_owned()],
        ]
    );
    assert_eq!(config.routes[1].methods, [Method::GET]);
    assert!(config.routes[1].dedupe.is_empty());
    assert_eq!(
        config.routes[2].dedupe,
        [
            DedupeSource::Signature,
            DedupeSource::Header("x-zorio-delivery".parse().unwrap())
        ]
    );
    assert_eq!(
        config.routes[3].path,
        PathPattern::Prefix("/vendor/webhooks/".to_owned())
    );
    assert_eq!(
        config.routes[3].verified_values[1],
        "hookguard; route=vendor; scheme=hmac; key=previous"
    );
}

#[test]
fn the_example_config_without_its_env_variables_names_each_missing_one() {
    let found = errors(&example_text());
    assert_eq!(
        found,
        [
            "routes[0] (\"cartelcrm\").secrets[0]: environment variable CARTELCRM_CALLBACK_SECRET is not set",
            "routes[1] (\"cartelcrm-status\").secrets[0]: environment variable CARTELCRM_CALLBACK_SECRET is not set",
            "routes[2] (\"zorio\").secrets[0]: environment variable ZORIO_WEBHOOK_SECRET is not set",
            "routes[3] (\"vendor\").secrets[0]: environment variable VENDOR_SECRET_CURRENT is not set",
            "routes[3] (\"vendor\").secrets[1]: environment variable VENDOR_SECRET_PREVIOUS is not set",
        ]
    );
}

#[test]
fn every_file_a_key_source_reads_is_watched_once_and_routes_are_found_by_name() {
    let dir = std::env::temp_dir().join(format!("hookguard-watched-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let [secret, token, password] = ["secret", "token", "password"].map(|name| dir.join(name));
    for file in [&secret, &token, &password] {
        std::fs::write(file, "contents").unwrap();
    }
    let text = format!(
        r#"{SERVER}
[replay]
store = "redis"
redis_url = "redis://127.0.0.1:6379/0"
redis_password = {{ file = "{password}" }}

[[routes]]
name = "meta"
path = "/meta"
scheme = "meta"
secrets = [{{ file = "{secret}" }}, {{ value = "literal" }}]
verify_token = {{ file = "{token}" }}
{again}"#,
        password = password.display(),
        secret = secret.display(),
        token = token.display(),
        again = route("again", "/again").replace(
            "{ value = \"s\" }",
            &format!("{{ file = \"{}\" }}", secret.display())
        ),
    );
    let config = valid(&text);
    assert_eq!(config.watched_files(), [password, secret, token]);
    assert_eq!(
        config.route("again").map(|r| r.path.to_string()),
        Some("/again".to_owned())
    );
    assert!(config.route("missing").is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn complete_on_in_flight_status_and_settle_timeout_are_validated_by_name() {
    assert_errors(
        r#"
[server]
upstream = "http://127.0.0.1:8080"
upstream_timeout = "30s"
settle_timeout = "10s"

[[routes]]
name = "vendor"
path = "/hook"
scheme = "hmac"
secrets = [{ value = "s" }]
complete_on = ["2xx", "2xy", "700"]
in_flight_status = 418

[routes.hmac]
header = "X-Sig"
"#,
        &[
            "server.settle_timeout: must be at least upstream_timeout (30 s): it is how long a late answer is still waited for",
            "routes[0] (\"vendor\").complete_on[1]: \"2xy\" is neither a status class (1xx to 5xx) nor a code (100 to 599)",
            "routes[0] (\"vendor\").complete_on[2]: \"700\" is neither a status class (1xx to 5xx) nor a code (100 to 599)",
            "routes[0] (\"vendor\").in_flight_status: 418 is not one of 409, 425, 429, 503",
        ],
    );
}

#[test]
fn rates_are_per_second_or_per_minute_possibly_fractional_and_validated_by_name() {
    let text = |rate: &str| {
        format!(
            "[server]\nupstream = \"http://127.0.0.1:8080\"\n[[routes]]\nname = \"r\"\npath = \"/r\"\nscheme = \"hmac\"\nsecrets = [{{ value = \"s\" }}]\n{rate}\n[routes.hmac]\nheader = \"X-Sig\"\n"
        )
    };
    let config = valid(&text(
        "rate_limit = { requests_per_second = 0.5 }\nclient_rate_limit = { requests_per_minute = 60, burst = 5 }",
    ));
    let route = &config.routes[0];
    let rate = &route.rate_limit.as_ref().unwrap().rate;
    assert_eq!((rate.per_second, rate.burst.get()), (0.5, 1));
    let client = &route.client_rate_limit.as_ref().unwrap().rate;
    assert_eq!((client.per_second, client.burst.get()), (1.0, 5));
    assert_errors(
        &text("rate_limit = { requests_per_second = 0 }"),
        &["routes[0] (\"r\").rate_limit.requests_per_second: must be greater than 0 and at most 1000000 per second"],
    );
    assert_errors(
        &text("client_rate_limit = { requests_per_second = 1, requests_per_minute = 60 }"),
        &["routes[0] (\"r\").client_rate_limit.requests_per_minute: give requests_per_second or requests_per_minute, not both"],
    );
    assert_errors(
        &text("rate_limit = { burst = 3 }"),
        &["routes[0] (\"r\").rate_limit.requests_per_second: missing: e.g. requests_per_second = 50, or requests_per_minute = 60"],
    );
}

#[test]
fn scheme_none_needs_allow_ips_takes_no_keys_cannot_dedupe_on_a_signature_and_check_warns() {
    let text = |extra: &str| {
        format!(
            "[server]\nupstream = \"http://127.0.0.1:8080\"\n[[routes]]\nname = \"bank\"\npath = \"/bank\"\nscheme = \"none\"\n{extra}\n"
        )
    };
    assert_errors(
        &text(""),
        &["routes[0] (\"bank\").allow_ips: missing: scheme = \"none\" accepts requests by allow_ips alone, so it needs at least one network, e.g. [\"203.0.113.0/24\"]"],
    );
    assert_errors(
        &text("allow_ips = [\"10.0.0.0/8\"]\nsecrets = [{ value = \"s\" }]"),
        &["routes[0] (\"bank\").secrets: scheme none verifies nothing, so it takes no keys; remove secrets"],
    );
    assert_errors(
        &text("allow_ips = [\"10.0.0.0/8\"]\ndedupe = [\"signature\"]"),
        &["routes[0] (\"bank\").dedupe[0]: scheme = \"none\" has no signature to dedupe on; use header:NAME or json:/pointer"],
    );
    let config = valid(&text("allow_ips = [\"10.0.0.0/8\"]\nenforce = false"));
    assert!(
        config.routes[0].dedupe.is_empty(),
        "nothing to dedupe on by default"
    );
    let summary = config.summary();
    assert!(summary.contains("NOTHING IS AUTHENTICATED"), "{summary}");
    assert!(summary.contains("SHADOW MODE"), "{summary}");
    assert!(summary.contains("allow_ips=[10.0.0.0/8]"), "{summary}");
}

#[test]
fn an_optional_secret_that_is_not_set_is_skipped_and_shown_but_one_must_be_set() {
    let text = |secrets: &str| {
        format!(
            "[server]\nupstream = \"http://127.0.0.1:8080\"\n[[routes]]\nname = \"r\"\npath = \"/r\"\nscheme = \"hmac\"\nsecrets = [{secrets}]\n[routes.hmac]\nheader = \"X-Sig\"\n"
        )
    };
    let env = |name: &str| match name {
        "CURRENT" => Some("s".to_owned()),
        "PREVIOUS" => Some(String::new()),
        _ => None,
    };
    let config = Config::from_toml(
        &text(r#"{ env = "CURRENT", id = "current" }, { env = "PREVIOUS", id = "previous", optional = true }, { env = "UNSET", id = "next", optional = true }"#),
        &env,
    )
    .unwrap();
    let route = &config.routes[0];
    assert_eq!(route.scheme.key_ids(), ["current"]);
    assert_eq!(route.skipped_secrets, ["previous", "next"]);
    assert!(config
        .summary()
        .contains("optional secrets not set, skipped: previous, next"));
    assert_eq!(
        errors_with(
            &text(r#"{ env = "PREVIOUS", id = "previous", optional = true }"#),
            &env
        ),
        ["routes[0] (\"r\").secrets: every secret is optional and none is set (previous): a route needs at least one"]
    );
    assert_eq!(
        errors_with(&text(r#"{ env = "PREVIOUS", id = "previous" }"#), &env),
        ["routes[0] (\"r\").secrets[0]: environment variable PREVIOUS is empty"],
        "without optional, an empty secret is still an error"
    );
}

#[test]
fn only_secrets_can_be_optional() {
    let text = "[server]\nupstream = \"http://127.0.0.1:8080\"\n[[routes]]\nname = \"d\"\npath = \"/d\"\nscheme = \"discord\"\npublic_keys = [{ value = \"00\", optional = true }]\n";
    let found = errors(text);
    assert!(
        found.contains(&"routes[0] (\"d\").public_keys[0].optional: only secrets can be optional; a missing entry of public_keys is always an error".to_owned()),
        "{found:?}"
    );
}

/// A config with `[egress]` holding `routes`, each naming itself.
fn with_egress(egress: &str) -> String {
    format!("{SERVER}{}\n{egress}", route("in", "/in"))
}

#[test]
fn egress_errors_name_the_key_and_the_route() {
    let text = with_egress(
        r#"
[egress]
listen = "0.0.0.0:8001"

[[egress.routes]]
name = "crm"
prefix = "/crm"
upstream = "http://crm.example/api"
timeout = "10s"
[egress.routes.retry]
on = ["429", "4xx", "5xx", "connect", "tiemout"]
max_elapsed = "5s"

[[egress.routes]]
name = "crm-v2"
prefix = "/crm/v2"
upstream = "https://crm.example"
[egress.routes.sign]
header = "X-Signature"
message = "{timestamp}.{body}"
secrets = [{ value = "s" }]

[[egress.routes]]
name = "mail"
prefix = "/mail"
upstream = "https://mail.example"
[egress.routes.sign]
scheme = "mailgun"
secrets = [{ value = "s" }]
"#,
    );
    assert_errors(
        &text,
        &[
            "egress.listen: 0.0.0.0:8001 is not a loopback address: whatever reaches the egress listener calls partners with hookguard's credentials; use 127.0.0.1, or set allow_non_loopback = true if a network policy guards it",
            "egress.routes[0] (\"crm\").upstream: \"http://crm.example/api\" is plain http://: the partner would receive the credentials and signatures unencrypted; use https://, or set allow_http = true for a test or a partner inside the cluster",
            "egress.routes[0] (\"crm\").retry.on[1]: \"4xx\" is not retried: use \"connect\", \"timeout\", \"429\", \"409\", \"5xx\" or a 5xx code such as \"503\"; other 4xx answers are final (the partner refused this request, sending it again changes nothing)",
            "egress.routes[0] (\"crm\").retry.on[4]: \"tiemout\" is not retried: use \"connect\", \"timeout\", \"429\", \"409\", \"5xx\" or a 5xx code such as \"503\"; other 4xx answers are final (the partner refused this request, sending it again changes nothing)",
            "egress.routes[0] (\"crm\").retry.max_elapsed: 5s is shorter than the route's timeout (10s): the first attempt alone may take longer",
            "egress.routes[1] (\"crm-v2\").sign.message: uses {timestamp} but timestamp_header is not set",
            "egress.routes[1] (\"crm-v2\").prefix: \"/crm/v2\" overlaps egress.routes[0] (\"crm\")'s prefix \"/crm\": every path must belong to one route",
            "egress.routes[2] (\"mail\").sign.scheme: hookguard cannot sign as mailgun for a partner (it signs inside the body, signs a URL, or verifies with a public key); use \"hmac\" with a description, or a preset that signs in headers, such as stripe, github, slack, shopify, standard-webhooks, paddle",
        ],
    );
}

#[test]
fn an_egress_route_reads_every_key_the_issue_shows() {
    let env = |name: &str| (name == "CRM_KEY").then(|| "k".to_owned());
    let text = with_egress(
        r#"
[egress]
listen = "127.0.0.1:8001"
max_body = "1MiB"

[[egress.routes]]
name = "cartelcrm"
prefix = "/cartelcrm/"
upstream = "https://cartelcrm.example/api"
timeout = "10s"
auth = { basic = { username = "u", password = { env = "CRM_KEY" } } }
[egress.routes.sign]
header = "X-Signature"
prefix = "sha256="
message = "{body}"
timestamp_header = "X-Timestamp"
secrets = [{ env = "CRM_KEY" }]
[egress.routes.idempotency]
header = "Idempotency-Key"
source = "header:X-Request-Id"
[egress.routes.retry]
on = ["429", "5xx", "connect", "timeout"]
backoff = ["200ms", "1s", "3s"]
max_attempts = 4
max_elapsed = "20s"
"#,
    );
    let config = Config::from_toml(&text, &env).unwrap_or_else(|e| panic!("{e}"));
    let egress = config.egress.clone().expect("[egress]");
    let route = &egress.routes[0];
    assert_eq!(route.prefix, "/cartelcrm");
    assert_eq!(route.upstream.base_path, "/api");
    assert_eq!(route.retry.max_attempts, 4);
    assert!(route.retry.on_timeout && route.retry.on_connect);
    assert!(route.retry.statuses.contains(503) && !route.retry.statuses.contains(404));
    let (name, value) = route.auth.as_ref().expect("auth");
    assert_eq!(name, "authorization");
    assert!(value.is_sensitive());
    // The app may not send what hookguard sets: the credential and every
    // header the signer writes.
    let owned: Vec<&str> = route.owned_headers.iter().map(|h| h.as_str()).collect();
    assert_eq!(owned, ["authorization", "x-timestamp", "x-signature"]);
    assert!(!format!("{config:?}").contains("\"k\""));
    let summary = config.summary();
    assert!(
        summary.contains("egress route \"cartelcrm\": /cartelcrm/* -> https://cartelcrm.example/api/*  timeout=10000ms  auth=authorization  sign=hmac keys=[0]  idempotency=idempotency-key from header:x-request-id  retry on [connect, timeout, 429, 5xx] max_attempts=4 max_elapsed=20000ms"),
        "{summary}"
    );
}

#[test]
fn a_signing_description_verifying_could_not_check_is_refused() {
    let text = with_egress(
        r#"
[egress]
[[egress.routes]]
name = "p"
prefix = "/p"
upstream = "https://p.example"
[egress.routes.sign]
header = "X-Signature"
message = "{id}.{body}"
secrets = [{ value = "s" }]
"#,
    );
    assert_errors(
        &text,
        &["egress.routes[0] (\"p\").sign.message: uses {id} but id_header is not set"],
    );
}

#[test]
fn a_secret_of_the_wrong_form_names_the_key_and_what_the_dashboard_shows() {
    let with = |scheme: &str, secret: &str| {
        format!(
            "{SERVER}[[routes]]\nname = \"a\"\npath = \"/a\"\nscheme = \"{scheme}\"\nsecrets = [{{ value = \"{secret}\" }}]\n"
        )
    };
    assert_errors(
        &with("airtable", "not base64!"),
        &[
            r#"routes[0] ("a").secrets[0]: expected base64 text (the macSecretBase64 returned when the webhook is created); this does not decode"#,
        ],
    );
    assert_errors(
        &with("squarespace", "xyz"),
        &[
            r#"routes[0] ("a").secrets[0]: expected hex text (the secret returned when the webhook subscription is created); this does not decode"#,
        ],
    );
    assert_errors(
        &with("polar", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        &[
            r#"routes[0] ("a").secrets[0]: this secret starts with whsec_, which is another provider's form; use the polar_whs_... secret shown in Polar's webhook settings"#,
        ],
    );
    assert_errors(
        &with("clerk", "polar_whs_abc"),
        &[
            r#"routes[0] ("a").secrets[0]: a Standard Webhooks secret is whsec_ followed by base64; this one does not decode"#,
        ],
    );
    // The right forms load.
    for (scheme, secret) in [
        ("airtable", "c2VjcmV0"),
        ("squarespace", "736563726574"),
        ("polar", "polar_whs_abc"),
        ("brex", "c2VjcmV0"),
    ] {
        assert!(
            Config::from_toml(&with(scheme, secret), &no_env).is_ok(),
            "{scheme}"
        );
    }
}

#[test]
fn the_hmac_tables_extensions_are_checked_by_name() {
    let with = |table: &str| {
        format!(
            "{SERVER}[[routes]]\nname = \"a\"\npath = \"/a\"\nscheme = \"hmac\"\nsecrets = [{{ value = \"s\" }}]\n[routes.hmac]\n{table}\n"
        )
    };
    for (table, expected) in [
        (
            "header = \"X-Sig\"\nquery = \"signature\"",
            r#"routes[0] ("a").hmac.query: the signature is already read from header; set one of header, headers, query"#,
        ),
        (
            "algorithm = \"sha256\"",
            r#"routes[0] ("a").hmac.header: missing: the header carrying the signature, e.g. "X-Signature" (or headers = [..] when each key's signature has its own header, or query = "signature")"#,
        ),
        (
            "header = \"X-Sig\"\nlist = \"kv\"",
            r#"routes[0] ("a").hmac.signature_key: missing: the key of the signature entries, e.g. "v1" for t=..,v1=.."#,
        ),
        (
            "header = \"X-Sig\"\nsignature_key = \"v1\"",
            r#"routes[0] ("a").hmac.signature_key: only with list = "kv""#,
        ),
        (
            "header = \"X-Sig\"\nlist = \"positional\"\nseparator = \"ab\"",
            r#"routes[0] ("a").hmac.separator: "ab" must be one punctuation character, e.g. "," or ";""#,
        ),
        (
            "query = \"signature\"\nprefix = \"sha256=\"",
            r#"routes[0] ("a").hmac.prefix: not with query; a list is read from header"#,
        ),
        (
            "header = \"X-Sig\"\nlist = \"positional\"\ntimestamp_header = \"X-Ts\"",
            r#"routes[0] ("a").hmac.timestamp_header: the list already carries the timestamp; remove timestamp_header"#,
        ),
        (
            "header = \"X-Sig\"\nwindow = false",
            r#"routes[0] ("a").hmac.window: only with a timestamp (timestamp_header, or a list's timestamp_key)"#,
        ),
        (
            "header = \"X-Sig\"\nalgorithm_header = \"X-Alg\"",
            r#"routes[0] ("a").hmac.algorithms: missing: each value of algorithm_header and its hash, e.g. { HMAC_SHA256_HEX = "sha256" }"#,
        ),
        (
            "header = \"X-Sig\"\nalgorithm_header = \"X-Alg\"\nalgorithms = { A = \"crc32\" }",
            r#"routes[0] ("a").hmac.algorithms.A: "crc32" is not one of sha1, sha256, sha512, md5"#,
        ),
        (
            "header = \"X-Sig\"\nalgorithm = \"sha1\"\nalgorithm_header = \"X-Alg\"\nalgorithms = { A = \"sha256\" }",
            r#"routes[0] ("a").hmac.algorithm: sha1 is not among algorithms"#,
        ),
        (
            "header = \"X-Sig\"\nkey_encoding = \"base32\"",
            r#"routes[0] ("a").hmac.key_encoding: "base32" is not one of raw, hex, base64; did you mean "base64"?"#,
        ),
        (
            "header = \"X-Sig\"\ntimestamp_header = \"X-Ts\"\ntimestamp_unit = \"iso\"",
            r#"routes[0] ("a").hmac.timestamp_unit: "iso" is not one of s, ms, rfc3339"#,
        ),
    ] {
        assert_errors(&with(table), &[expected]);
    }
    // A key that does not decode in its key_encoding names the secret.
    let text = with("header = \"X-Sig\"\nkey_encoding = \"hex\"");
    assert_errors(
        &text,
        &[
            r#"routes[0] ("a").secrets[0]: expected hex text (hex text, as key_encoding = "hex" says); this does not decode"#,
        ],
    );
}
/// `[queue]` in `dir`, then one route with `delivery` as its
/// `[routes.delivery]` body.
fn durable(queue: &str, delivery: &str) -> String {
    format!(
        "{SERVER}\n[queue]\n{queue}\n{}\n[routes.delivery]\n{delivery}\n",
        route("vendor", "/vendor")
    )
}

#[test]
fn durable_delivery_settings_are_validated_with_each_key_and_route_named() {
    let dir = crate::support::TempDir::new("config-queue");
    let path = format!("path = \"{}/queue.db\"", dir.0.display());
    let found = errors(&durable(
        &format!("{path}\nmax_bytes = \"64KiB\""),
        "mode = \"durable\"\nbackoff = [\"30s\", \"10s\"]\nmax_age = \"5s\"\nconcurrency = 0\ndead_on = [\"2xx\", \"429\"]",
    ));
    let expected = [
        "queue.max_bytes: 65536 bytes is too small: the queue needs at least 1MiB (1048576 bytes)",
        "routes[0] (\"vendor\").delivery.backoff[1]: \"10s\" is shorter than the step before it (30000 ms): steps must not decrease",
        "routes[0] (\"vendor\").delivery.max_age: 5 s is shorter than the first backoff step (30 s): an item would be dead before its first retry",
        "routes[0] (\"vendor\").delivery.concurrency: 0 is out of range: use 1 to 1024",
        "routes[0] (\"vendor\").delivery.dead_on[0]: \"2xx\" is not a 4xx or 5xx status or class: only refusals can make an item dead",
        "routes[0] (\"vendor\").delivery.dead_on[1]: 429 says \"not now\": it is retried (408, 409, 425) or pauses the route (429, 502, 503, 504)",
    ];
    for line in expected {
        assert!(
            found.iter().any(|f| f == line),
            "missing {line:?} in {found:#?}"
        );
    }
    let empty = errors(&durable(&path, "mode = \"durable\"\nbackoff = []"));
    assert!(
        empty[0].starts_with("routes[0] (\"vendor\").delivery.backoff: must not be empty"),
        "{empty:?}"
    );
}

#[test]
fn a_durable_route_needs_a_queue_it_can_write_and_sync_routes_take_no_durable_keys() {
    let no_queue = format!(
        "{SERVER}{}\n[routes.delivery]\nmode = \"durable\"\n",
        route("vendor", "/vendor")
    );
    let found = errors(&no_queue);
    assert!(
        found[0].starts_with(
            "routes[0] (\"vendor\").delivery.mode: durable delivery needs a [queue] table"
        ),
        "{found:?}"
    );
    let unwritable = errors(&durable(
        "path = \"/proc/hookguard-no/queue.db\"",
        "mode = \"durable\"",
    ));
    assert!(
        unwritable[0].starts_with("queue.path: cannot use /proc/hookguard-no:"),
        "{unwritable:?}"
    );
    let missing = errors(&durable("", "mode = \"durable\""));
    assert!(
        missing[0].starts_with("queue.path: missing:"),
        "{missing:?}"
    );
    let dir = crate::support::TempDir::new("config-queue-sync");
    let sync = errors(&durable(
        &format!("path = \"{}/q.db\"", dir.0.display()),
        "mode = \"sync\"\nbackoff = [\"1s\"]\nmax_attempts = 3\nbakoff = 1",
    ));
    assert!(
        sync.contains(
            &"routes[0] (\"vendor\").delivery.backoff: applies only to mode = \"durable\""
                .to_owned()
        ),
        "{sync:?}"
    );
    assert!(
        sync.contains(
            &"routes[0] (\"vendor\").delivery.max_attempts: applies only to mode = \"durable\""
                .to_owned()
        ),
        "{sync:?}"
    );
    assert!(
        sync.iter()
            .any(|e| e.starts_with("routes[0] (\"vendor\").delivery.bakoff: unknown key")),
        "{sync:?}"
    );
    let redis = errors(&durable(
        "store = \"redis\"\npath = \"/tmp/q.db\"\nstore_timeout = \"0s\"\naccept_redis_risk = \"yes\"",
        "mode = \"durable\"",
    ));
    for line in [
        "queue.store_timeout: must be greater than 0",
        "queue.accept_redis_risk: expected true or false, found a string",
        "queue.path: applies only to store = \"embedded\"; a Redis queue is kept by Redis",
        "queue.redis_url: missing: store = \"redis\" needs the server's address, e.g. \"redis://redis.default.svc:6379/0\" (it may be the replay store's)",
    ] {
        assert!(redis.iter().any(|f| f == line), "missing {line:?} in {redis:#?}");
    }
    let bad_url = errors(&durable(
        "store = \"redis\"\nredis_url = \"http://x\"",
        "mode = \"durable\"",
    ));
    assert!(
        bad_url[0].starts_with("queue.redis_url: is not a redis:// or rediss:// URL"),
        "{bad_url:?}"
    );
    let dir = crate::support::TempDir::new("config-queue-redis-keys");
    let path = format!("path = \"{}/queue.db\"", dir.0.display());
    let embedded_with_redis_keys = errors(&durable(
        &format!("{path}\nredis_url = \"redis://x\"\nkey_prefix = \"q:\""),
        "mode = \"durable\"",
    ));
    for key in ["redis_url", "key_prefix"] {
        let line = format!("queue.{key}: applies only to store = \"redis\"");
        assert!(
            embedded_with_redis_keys.contains(&line),
            "missing {line:?} in {embedded_with_redis_keys:#?}"
        );
    }
    let config = valid(&durable(
        "store = \"redis\"\nredis_url = \"redis://redis:6379/0\"",
        "mode = \"durable\"",
    ));
    let Some(hookguard::config::QueueStoreKind::Redis(redis)) =
        config.queue.as_ref().map(|q| &q.store)
    else {
        panic!("not a redis queue: {:?}", config.queue);
    };
    assert_eq!(redis.key_prefix, "hookguard:queue:");
    assert_eq!(redis.store_timeout, Duration::from_secs(2));
    assert!(!redis.accept_redis_risk);
}

#[test]
fn durable_delivery_defaults_are_the_documented_ones() {
    let dir = crate::support::TempDir::new("config-queue-defaults");
    let config = valid(&durable(
        &format!("path = \"{}/q.db\"", dir.0.display()),
        "mode = \"durable\"",
    ));
    let queue = config.queue.as_ref().unwrap();
    assert_eq!(queue.max_bytes, 2 << 30);
    assert_eq!(queue.retain_dead, Duration::from_secs(30 * 86_400));
    assert_eq!(queue.retain_delivered, Duration::from_secs(86_400));
    let delivery = config.routes[0].delivery.as_ref().unwrap();
    assert_eq!(
        delivery.backoff,
        [10, 30, 60, 120].map(Duration::from_secs).to_vec()
    );
    assert_eq!(delivery.max_age, Duration::from_secs(72 * 3600));
    assert_eq!((delivery.max_attempts, delivery.concurrency), (0, 8));
    assert_eq!(delivery.timeout, Duration::from_secs(30));
    for (status, dead) in [
        (400, true),
        (401, true),
        (404, true),
        (408, false),
        (409, false),
        (425, false),
        (429, false),
        (500, false),
    ] {
        assert_eq!(delivery.dead_on.contains(status), dead, "{status}");
    }
    // An unset dedupe_ttl follows max_age: a late retry of a queued
    // delivery is still a duplicate.
    assert_eq!(config.routes[0].dedupe_ttl, Duration::from_secs(72 * 3600));
}
