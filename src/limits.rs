//! Admission: the checks applied before any work is spent on a request.
//!
//! Method, client address, rate and content type are judged on the
//! request head alone. The body's limits (refused on its declared
//! `Content-Length` before a byte is read, counted while a chunked body
//! streams, under a deadline) are applied where it is read, by
//! [`crate::http1::Body::read_to_end`] with the route's limits.

use std::net::{IpAddr, SocketAddr};

use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method};

use crate::config::{Route, Server, Underscores};
use crate::reject::{Reason, Reject};

/// The route accepts this method.
pub fn check_method(route: &Route, method: &Method) -> Result<(), Reject> {
    if route.methods.contains(method) {
        Ok(())
    } else {
        Err(Reject::with(
            Reason::MethodNotAllowed,
            format!(
                "this route accepts {}",
                route.allow.to_str().unwrap_or_default()
            ),
        ))
    }
}

/// The client's address: the socket peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left were written by the client and can
/// be forged).
pub fn client_ip(server: &Server, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    let peer_ip = canonical(peer.ip());
    let trusted = |ip: &IpAddr| server.trusted_proxies.iter().any(|net| net.contains(ip));
    if !trusted(&peer_ip) {
        return peer_ip;
    }
    let mut client = peer_ip;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = canonical(ip);
                if !trusted(&client) {
                    break;
                }
            }
            // An unparsable entry ends what can be believed.
            Err(_) => break,
        }
    }
    client
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) match IPv4 CIDRs.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address is in the route's `allow_ips` (when it has one).
pub fn check_client(route: &Route, client: IpAddr) -> Result<(), Reject> {
    if route.allow_ips.is_empty() || route.allow_ips.iter().any(|net| net.contains(&client)) {
        Ok(())
    } else {
        Err(Reject::with(
            Reason::IpDenied,
            format!("client address {client} is not in this route's allow_ips"),
        ))
    }
}

/// Clients remembered by one route's `client_rate_limit`. Past this,
/// buckets at rest are dropped; if that is not enough (a flood from many
/// addresses), new clients share one bucket until room is made, so memory
/// stays bounded and a flood is still limited.
pub const MAX_CLIENTS: usize = 100_000;

/// The one bucket clients beyond [`MAX_CLIENTS`] share.
const OVERFLOW: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

/// The client has room in the route's `client_rate_limit` (judged on the
/// head, before any verification work).
pub fn check_client_rate(route: &Route, client: IpAddr) -> Result<(), Reject> {
    let Some(limit) = &route.client_rate_limit else {
        return Ok(());
    };
    // One host usually holds a whole IPv6 /64; keying by the address would
    // let it spend a fresh bucket per address.
    let mut key = match client {
        IpAddr::V6(v6) => {
            let mut octets = v6.octets();
            octets[8..].fill(0);
            IpAddr::from(octets)
        }
        v4 => v4,
    };
    if limit.limiter.len() >= MAX_CLIENTS {
        limit.limiter.retain_recent();
        if limit.limiter.len() >= MAX_CLIENTS {
            key = OVERFLOW;
        }
    }
    limit.limiter.check_key(&key).map_err(|not_until| {
        limited(
            not_until,
            format!(
                "this route accepts {} (burst {}) from one client address",
                limit.rate.text, limit.rate.burst
            ),
        )
    })
}

/// The route's rate limit has room for one more verified request; the
/// answer says when to retry. Counted after verification, so forged
/// requests cannot spend the real sender's budget.
pub fn check_rate(route: &Route) -> Result<(), Reject> {
    let Some(limit) = &route.rate_limit else {
        return Ok(());
    };
    limit.limiter.check().map_err(|not_until| {
        limited(
            not_until,
            format!(
                "this route accepts {} (burst {})",
                limit.rate.text, limit.rate.burst
            ),
        )
    })
}

/// A 429 with the wait governor computed, in whole seconds.
fn limited(
    not_until: governor::NotUntil<governor::clock::QuantaInstant>,
    detail: String,
) -> Reject {
    let wait = not_until.wait_time_from(governor::clock::Clock::now(
        &governor::clock::DefaultClock::default(),
    ));
    Reject::with(Reason::RateLimited, detail)
        .retry_after(wait.as_millis().div_ceil(1000).max(1) as u64)
}

/// Longest header name quoted in a refusal's detail.
const MAX_QUOTED_NAME: usize = 64;

/// With `underscores_in_headers = "reject"`, refuses a request with an
/// underscore in a header name (CGI-style apps read `_` as `-`, so such a
/// header can pass for another).
pub fn check_header_names(server: &Server, headers: &HeaderMap) -> Result<(), Reject> {
    if server.underscores_in_headers != Underscores::Reject {
        return Ok(());
    }
    match headers.keys().find(|name| name.as_str().contains('_')) {
        None => Ok(()),
        Some(name) => {
            let quoted: String = name.as_str().chars().take(MAX_QUOTED_NAME).collect();
            Err(Reject::with(
                Reason::MalformedRequest,
                format!(
                    "the header name {quoted} has an underscore, which CGI-style apps read as a dash; this server refuses such names (server.underscores_in_headers = \"reject\")"
                ),
            ))
        }
    }
}

/// The `Content-Type` is one the route accepts (parameters such as
/// `; charset=utf-8` are ignored).
pub fn check_content_type(route: &Route, headers: &HeaderMap) -> Result<(), Reject> {
    if route.content_types.is_empty() {
        return Ok(());
    }
    let media = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    let accepted = media.is_some_and(|media| {
        route
            .content_types
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(media))
    });
    if accepted {
        Ok(())
    } else {
        Err(Reject::with(
            Reason::UnsupportedMediaType,
            format!(
                "this route accepts Content-Type {}",
                route.content_types.join(", ")
            ),
        ))
    }
}
