//! Where a run points, and the guard that keeps it on this machine: a load
//! test of someone else's server by a typo is an attack, so only loopback
//! addresses are accepted unless `--allow-remote` says otherwise.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Why a target cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// The URL does not parse as `http://host:port` (or `ws://`).
    #[error("--target {url:?}: {reason}")]
    Malformed {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The host resolves to an address that is not loopback.
    #[error(
        "{what} {host} resolves to {address}, which is not a loopback address: \
         load tests stay on this machine unless --allow-remote is given"
    )]
    Remote {
        /// What the address is for (`--target`, `--brokers`).
        what: String,
        /// The host given.
        host: String,
        /// The non-loopback address it resolved to.
        address: IpAddr,
    },
    /// The host does not resolve.
    #[error("{what} {host} does not resolve: {reason}")]
    Unresolved {
        /// What the address is for.
        what: String,
        /// The host given.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
}

/// A gateway to load: its HTTP base URL and its `/ws` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub http_base: String,
    /// `ws://host:port/ws`.
    pub ws_url: String,
    /// `host:port`.
    pub authority: String,
}

impl Target {
    /// Parses `http://host:port[/…]` or `ws://host:port[/…]` (the path is ignored:
    /// the API is under `/api/v1`, live results at `/ws`).
    ///
    /// # Examples
    ///
    /// ```
    /// use pulse_loadtest::target::Target;
    ///
    /// let target = Target::parse("http://127.0.0.1:8080/").unwrap();
    /// assert_eq!(target.ws_url, "ws://127.0.0.1:8080/ws");
    /// assert!(target.ensure_loopback(false).is_ok());
    /// assert!(Target::parse("http://10.1.2.3:80").unwrap().ensure_loopback(false).is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let malformed = |reason: &str| TargetError::Malformed {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| malformed("expected a URL such as http://127.0.0.1:8080"))?;
        let (http, ws) = match scheme {
            "http" | "ws" => ("http", "ws"),
            "https" | "wss" => {
                return Err(malformed(
                    "TLS is not supported; point it at the gateway's plain HTTP port",
                ));
            }
            _ => return Err(malformed("the scheme must be http or ws")),
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(malformed("expected host:port after the scheme"));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| port.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:80")
        } else {
            return Err(malformed("the port is not a number from 0 to 65535"));
        };
        Ok(Self {
            http_base: format!("{http}://{authority}"),
            ws_url: format!("{ws}://{authority}/ws"),
            authority,
        })
    }

    /// Refuses a host that resolves to anything but loopback, unless `allow_remote`.
    pub fn ensure_loopback(&self, allow_remote: bool) -> Result<(), TargetError> {
        ensure_loopback("--target", &self.authority, allow_remote)
    }
}

/// Refuses `host:port` (for `what`) when any address it resolves to is not loopback, unless `allow_remote`.
pub fn ensure_loopback(what: &str, authority: &str, allow_remote: bool) -> Result<(), TargetError> {
    if allow_remote {
        return Ok(());
    }
    let host = authority.rsplit_once(':').map_or(authority, |(host, _)| host);
    let addresses: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map_err(|error| TargetError::Unresolved {
            what: what.to_owned(),
            host: host.to_owned(),
            reason: error.to_string(),
        })?
        .collect();
    match addresses.iter().find(|address| !address.ip().is_loopback()) {
        Some(remote) => Err(TargetError::Remote {
            what: what.to_owned(),
            host: host.to_owned(),
            address: remote.ip(),
        }),
        None => Ok(()),
    }
}

/// Parses a duration such as `30s`, `2m`, `1h`, `500ms`, or a plain number of seconds.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pulse_loadtest::target::parse_duration;
///
/// assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
/// assert!(parse_duration("soon").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    let fail = || format!("{text:?} is not a duration such as 30s, 2m, 1h or 500ms");
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(fail)?;
        let amount: u64 = rest[..digits].parse().map_err(|_| fail())?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(amount),
            "s" => Duration::from_secs(amount),
            "m" => Duration::from_secs(amount.checked_mul(60).ok_or_else(fail)?),
            "h" => Duration::from_secs(amount.checked_mul(3600).ok_or_else(fail)?),
            _ => return Err(fail()),
        };
        total = total.checked_add(part).ok_or_else(fail)?;
        rest = &rest[unit..];
    }
    if total.is_zero() {
        return Err(format!("{text:?}: the duration must be more than zero"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_with_their_defaults_and_bad_ones_named() {
        let target = Target::parse("ws://localhost:9000/ws").unwrap();
        assert_eq!(
            (target.http_base.as_str(), target.authority.as_str()),
            ("http://localhost:9000", "localhost:9000")
        );
        assert_eq!(Target::parse("http://[::1]").unwrap().authority, "[::1]:80");
        for bad in [
            "127.0.0.1:8080",
            "ftp://x",
            "https://127.0.0.1",
            "http://",
            "http://h:99999",
        ] {
            let error = Target::parse(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn only_loopback_passes_without_allow_remote() {
        for local in ["127.0.0.1:1", "[::1]:1", "localhost:1"] {
            assert_eq!(ensure_loopback("--target", local, false), Ok(()), "{local}");
        }
        let refused = ensure_loopback("--brokers", "192.0.2.7:9092", false).unwrap_err();
        assert!(refused.to_string().contains("--allow-remote"), "{refused}");
        assert_eq!(ensure_loopback("--brokers", "192.0.2.7:9092", true), Ok(()));
    }

    #[test]
    fn durations_reject_zero_overflow_and_unknown_units() {
        for bad in ["0s", "", "5x", "s", "99999999999999999999h", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
