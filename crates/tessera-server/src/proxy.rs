//! The client's address behind a load balancer: `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` is believed only as far as it was written by a configured
//! trusted proxy. By default no proxy is trusted and the peer address is the client.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, header};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) or single addresses.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let nets = list
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not a CIDR (e.g. 10.0.0.0/8) or an address"))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { nets })
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The client's address for a request from `peer`. When the peer is trusted,
    /// the forwarding chain is read from the right (the hop nearest to us) and the
    /// first address that is not a trusted proxy is the client: what lies left of it
    /// the client wrote itself. A hop that does not name an address ends the walk
    /// at the last address known.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut client = peer;
        for hop in chain.iter().rev() {
            let Some(ip) = hop else { break };
            client = *ip;
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// The addresses a request passed through, leftmost first: from `Forwarded` when it
/// is present, else from `X-Forwarded-For`. `None` for a hop that names no address
/// (`unknown`, an obfuscated name, garbage).
fn forwarded_chain(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all(header::FORWARDED)
        .iter()
        .map(|v| v.to_str().unwrap_or(""))
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_ip(v.trim().trim_matches('"')))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("").split(','))
        .map(|s| node_ip(s.trim()))
        .collect()
}

/// An address from a node: `192.0.2.1`, `192.0.2.1:80`, `[2001:db8::1]:80`,
/// `2001:db8::1`.
fn node_ip(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    node.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_trusted_peer_is_believed_and_only_as_far_as_trusted_hops_go() {
        let none = TrustedProxies::default();
        let lb = TrustedProxies::parse(&["10.0.0.0/8".into(), "fd00::1".into()]).unwrap();
        let spoof = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(none.client_ip(ip("10.0.0.5"), &spoof), ip("10.0.0.5"));
        assert_eq!(lb.client_ip(ip("192.0.2.9"), &spoof), ip("192.0.2.9"));
        assert_eq!(lb.client_ip(ip("10.0.0.5"), &spoof), ip("6.6.6.6"));
        // The client prepends a lie; the trusted proxy appends what it saw.
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.1.1")]);
        assert_eq!(lb.client_ip(ip("10.0.0.5"), &chain), ip("198.51.100.7"));
        let split = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_eq!(lb.client_ip(ip("10.0.0.5"), &split), ip("198.51.100.7"));
        // Forwarded wins over X-Forwarded-For, with ports, brackets and quotes.
        let fwd = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https",
            ),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(lb.client_ip(ip("fd00::1"), &fwd), ip("2001:db8::7"));
        // A hop without an address stops the walk at the last one known.
        let unknown = headers(&[("forwarded", "for=198.51.100.7, for=unknown")]);
        assert_eq!(lb.client_ip(ip("10.0.0.5"), &unknown), ip("10.0.0.5"));
        // An IPv4-mapped peer is its IPv4 address.
        assert_eq!(lb.client_ip(ip("::ffff:10.0.0.5"), &spoof), ip("6.6.6.6"));
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["lb.internal".into()]).is_err());
    }
}
