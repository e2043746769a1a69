//! The message template: parsing any text, and feeding any request through
//! a template that parsed.
#![no_main]

use hookguard::schemes::template::{Template, Values};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &[u8], &str)| {
    let (text, body, header) = input;
    let Ok(template) = Template::parse(text) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(header) {
        headers.insert("x-any", value);
    }
    let values = Values {
        method: "POST",
        path: "/p",
        body,
        timestamp: Some(header),
        id: Some(header),
        headers: &headers,
        url: Some("https://example.com/hook"),
        json: None,
    };
    let mut length = 0usize;
    let _ = template.feed(&values, &mut |bytes| length += bytes.len());
});
