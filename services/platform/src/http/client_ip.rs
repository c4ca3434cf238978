//! The client's address for rate limits. `X-Forwarded-For` is believed only when the
//! socket peer is one of the configured trusted proxies, and then only as far as the
//! chain of trusted proxies goes: the client is the rightmost entry that is not itself a
//! trusted proxy. Entries left of it were written by the client and may be anything.
//! IPv6 clients are keyed by their /64, since one subscriber usually holds a whole /64.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;

/// An address range such as `10.0.0.0/8` or `fd00::/8` (a bare address is a /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let network = addr.parse::<IpAddr>().map_err(|_| format!("`{raw}` is not an IP address or CIDR range"))?;
        let network = canonical(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("`{raw}`: bad prefix length"))?
            }
            None => max,
        };
        Ok(Cidr { network, prefix })
    }
}

/// Which peers may tell us the client's address in `X-Forwarded-For`. There is no
/// default: a deployment states it (`none` when clients connect directly).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardedPolicy {
    trusted: Vec<Cidr>,
}

impl ForwardedPolicy {
    /// Trust no proxy: the socket peer is the client.
    pub fn none() -> Self {
        Self::default()
    }

    pub fn trusting(trusted: Vec<Cidr>) -> Self {
        Self { trusted }
    }

    /// Parses `none` or a comma-separated list of CIDR ranges.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        let trusted = raw
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(Cidr::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        if trusted.is_empty() {
            return Err("give `none` or a comma-separated list of CIDR ranges, e.g. 10.0.0.0/8".to_owned());
        }
        Ok(Self { trusted })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// The client address of a request from `peer` carrying `headers`.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let mut client = canonical(peer?);
        if !self.trusts(client) {
            return Some(client);
        }
        // Walk from the nearest hop outwards: every hop a trusted proxy appended is
        // believed; the first untrusted one is the client. Several headers form one list.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        break;
                    }
                }
                // Garbage where a trusted proxy should have written an address: stop at
                // the last address we could believe.
                Err(_) => break,
            }
        }
        Some(client)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, dual-stack sockets) as plain IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The caller's IP address, or `None` when the transport did not tell (in-memory tests).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// The rate-limit key: the IPv4 address, or the /64 of an IPv6 address.
    pub fn key(&self) -> String {
        match self.0 {
            None => "unknown".to_owned(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => {
                let network = Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
                format!("{network}/64")
            }
        }
    }
}

impl<S> FromRequestParts<S> for ClientIp
where
    Arc<ForwardedPolicy>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let policy = Arc::<ForwardedPolicy>::from_ref(state);
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientIp(policy.client(peer, &parts.headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", v.parse().unwrap());
        }
        headers
    }

    fn ingress() -> ForwardedPolicy {
        ForwardedPolicy::parse("10.0.0.0/8, 192.168.1.7, fd00::/8").unwrap()
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client_and_spoofed_leftmost_entries_are_ignored() {
        let headers = xff(&["6.6.6.6, 203.0.113.9, 10.1.2.3"]);
        assert_eq!(ingress().client(Some(ip("10.0.0.1")), &headers), Some(ip("203.0.113.9")));
        // A client that sends its own header only adds entries on the left.
        let headers = xff(&["1.1.1.1", "203.0.113.9"]);
        assert_eq!(ingress().client(Some(ip("192.168.1.7")), &headers), Some(ip("203.0.113.9")));
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
        let headers = xff(&["203.0.113.9"]);
        assert_eq!(ingress().client(Some(ip("198.51.100.4")), &headers), Some(ip("198.51.100.4")));
        assert_eq!(ForwardedPolicy::none().client(Some(ip("10.0.0.1")), &headers), Some(ip("10.0.0.1")));
    }

    #[test]
    fn a_chain_of_only_trusted_hops_or_garbage_stops_at_the_last_believable_address() {
        assert_eq!(ingress().client(Some(ip("10.0.0.1")), &xff(&["10.9.9.9"])), Some(ip("10.9.9.9")));
        assert_eq!(ingress().client(Some(ip("10.0.0.1")), &xff(&["203.0.113.9, nonsense"])), Some(ip("10.0.0.1")));
        assert_eq!(ingress().client(Some(ip("10.0.0.1")), &HeaderMap::new()), Some(ip("10.0.0.1")));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let a = ClientIp(Some(ip("2001:db8:1:2:aaaa::1")));
        let b = ClientIp(Some(ip("2001:db8:1:2:bbbb:cccc:dddd:eeee")));
        let c = ClientIp(Some(ip("2001:db8:1:3::1")));
        assert_eq!(a.key(), "2001:db8:1:2::/64");
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_eq!(ClientIp(Some(ip("203.0.113.9"))).key(), "203.0.113.9");
        let mapped = ForwardedPolicy::none().client(Some(ip("::ffff:203.0.113.9")), &HeaderMap::new());
        assert_eq!(mapped, Some(ip("203.0.113.9")), "dual-stack sockets report IPv4 as mapped IPv6");
    }

    #[test]
    fn proxy_policies_parse_from_none_or_cidr_lists() {
        assert_eq!(ForwardedPolicy::parse("none").unwrap(), ForwardedPolicy::none());
        assert!(ForwardedPolicy::parse("10.0.0.0/33").is_err());
        assert!(ForwardedPolicy::parse("").is_err());
        assert!(ForwardedPolicy::parse("ingress.local").is_err());
        let p = ForwardedPolicy::parse("0.0.0.0/0").unwrap();
        assert!(p.trusts(ip("8.8.8.8")));
        assert!(!p.trusts(ip("::1")));
    }
}
