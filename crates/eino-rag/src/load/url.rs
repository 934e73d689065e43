//! HTTP(S) documents with size and time limits and SSRF protection on by default: a host
//! that resolves to a loopback, private, link-local (cloud metadata), carrier-grade NAT,
//! multicast or unspecified address is refused unless explicitly allowed. The checked
//! address is the one connected to (no second DNS lookup to rebind), and every redirect
//! is checked the same way.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use eino::component::{LoadOptions, Loader, Source};
use eino::schema::Document;
use eino::{Error, ErrorKind, Result};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use super::file::parse_file_bytes;

/// Whether `ip` is reachable only inside the machine or its network (or is the metadata
/// service): the addresses an SSRF attack aims at.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return internal_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (seg0 == 0x64 && v6.segments()[1] == 0xff9b) // NAT64 64:ff9b::/96
                || v6 == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) // AWS IPv6 metadata
        }
    }
}

fn internal_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local() // 169.254/16, incl. 169.254.169.254 metadata
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (18..20).contains(&o[1])) // benchmarking
        || o[0] >= 240 // reserved
}

/// Loads `http(s)://` sources, parsing by the path's extension or the content type.
///
/// ```
/// use eino_rag::load::UrlLoader;
/// let loader = UrlLoader::new(); // 10 MiB, 30 s, internal addresses refused
/// # let _ = loader;
/// ```
#[derive(Debug, Clone)]
pub struct UrlLoader {
    max_bytes: usize,
    timeout: Duration,
    max_redirects: usize,
    allow_internal: bool,
    allowed: Vec<IpAddr>,
}

impl Default for UrlLoader {
    fn default() -> Self {
        Self {
            max_bytes: 10 << 20,
            timeout: Duration::from_secs(30),
            max_redirects: 5,
            allow_internal: false,
            allowed: Vec::new(),
        }
    }
}

fn refused(url: &str, why: impl std::fmt::Display) -> Error {
    Error::invalid_input(format!("{url}: refused: {why}"))
}

impl UrlLoader {
    /// 10 MiB, 30 s, 5 redirects, internal addresses refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuse bodies larger than `bytes`.
    pub fn with_max_bytes(mut self, bytes: usize) -> Self {
        self.max_bytes = bytes;
        self
    }

    /// Deadline of the whole fetch, redirects included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Allow loopback/private/link-local targets (an intranet wiki, tests). Off by default.
    pub fn allow_internal(mut self, allow: bool) -> Self {
        self.allow_internal = allow;
        self
    }

    /// Allow this one internal address (an intranet server) while refusing the others.
    pub fn allow_address(mut self, ip: IpAddr) -> Self {
        self.allowed.push(ip);
        self
    }

    /// Resolve `url`'s host and pick an address that passes the SSRF check.
    async fn target(&self, url: &reqwest::Url) -> Result<SocketAddr> {
        let shown = url.as_str();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused(
                shown,
                format!("scheme {:?} (only http and https)", url.scheme()),
            ));
        }
        let host = url.host_str().ok_or_else(|| refused(shown, "no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Transient,
                    format!("{shown}: cannot resolve {host}: {e}"),
                )
            })?
            .collect();
        if addrs.is_empty() {
            return Err(Error::new(
                ErrorKind::Transient,
                format!("{shown}: {host} has no address"),
            ));
        }
        if !self.allow_internal {
            if let Some(bad) = addrs
                .iter()
                .find(|a| is_internal(a.ip()) && !self.allowed.contains(&a.ip()))
            {
                return Err(refused(
                    shown,
                    format!(
                        "{host} resolves to the internal address {} (allow_internal is off)",
                        bad.ip()
                    ),
                ));
            }
        }
        Ok(addrs[0])
    }

    /// Fetch and parse `url`; the documents' `source` is the URL asked for.
    pub async fn load_url(&self, url: &str) -> Result<Vec<Document>> {
        match tokio::time::timeout(self.timeout, self.fetch(url)).await {
            Ok(r) => r,
            Err(_) => Err(Error::new(
                ErrorKind::Timeout,
                format!("{url}: no complete answer within {:?}", self.timeout),
            )),
        }
    }

    async fn fetch(&self, start: &str) -> Result<Vec<Document>> {
        let mut url = reqwest::Url::parse(start)
            .map_err(|e| Error::invalid_input(format!("{start}: bad URL: {e}")))?;
        for _ in 0..=self.max_redirects {
            let addr = self.target(&url).await?;
            let host = url
                .host_str()
                .unwrap_or("")
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            // A client per hop, pinned to the checked address: DNS cannot rebind it.
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .resolve(&host, addr)
                .build()
                .map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
            let resp = client.get(url.clone()).send().await.map_err(|e| {
                Error::new(ErrorKind::Transient, format!("{url}: {e}")).with_source(e)
            })?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Error::invalid_input(format!("{url}: {status} without Location"))
                    })?;
                url = url.join(loc).map_err(|e| {
                    Error::invalid_input(format!("{url}: bad redirect {loc:?}: {e}"))
                })?;
                continue;
            }
            if !status.is_success() {
                let kind = if status.is_server_error() || status.as_u16() == 429 {
                    ErrorKind::Transient
                } else {
                    ErrorKind::InvalidInput
                };
                return Err(Error::new(kind, format!("{url}: answered {status}")));
            }
            if resp
                .content_length()
                .is_some_and(|n| n > self.max_bytes as u64)
            {
                return Err(Error::invalid_input(format!(
                    "{url}: body over the {} byte limit",
                    self.max_bytes
                )));
            }
            let ctype = resp
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            let mut body = Vec::new();
            let mut stream = resp.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk =
                    chunk.map_err(|e| Error::new(ErrorKind::Transient, format!("{url}: {e}")))?;
                if body.len() + chunk.len() > self.max_bytes {
                    return Err(Error::invalid_input(format!(
                        "{url}: body over the {} byte limit",
                        self.max_bytes
                    )));
                }
                body.extend_from_slice(&chunk);
            }
            let ext = extension_for(&url, &ctype);
            return parse_file_bytes(&body, ext, start);
        }
        Err(Error::invalid_input(format!(
            "{start}: more than {} redirects",
            self.max_redirects
        )))
    }
}

/// The parser to use: the content type first, else the path's extension.
fn extension_for<'a>(url: &'a reqwest::Url, ctype: &str) -> &'a str {
    let by_type = match ctype.split(';').next().unwrap_or("").trim() {
        "text/html" | "application/xhtml+xml" => Some("html"),
        "text/markdown" | "text/x-markdown" => Some("md"),
        "text/plain" => Some("txt"),
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => Some("docx"),
        "application/pdf" => Some("pdf"),
        _ => None,
    };
    by_type.unwrap_or_else(|| {
        url.path_segments()
            .and_then(|mut s| s.next_back())
            .and_then(|name| name.rsplit_once('.').map(|(_, e)| e))
            .unwrap_or("")
    })
}

impl Loader for UrlLoader {
    fn load<'a>(
        &'a self,
        source: &'a Source,
        _: &'a LoadOptions,
    ) -> BoxFuture<'a, Result<Vec<Document>>> {
        Box::pin(self.load_url(&source.uri))
    }

    fn type_name(&self) -> Cow<'static, str> {
        Cow::Borrowed("UrlLoader")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "fd00:ec2::254",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "172.32.0.1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }
}
