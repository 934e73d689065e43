//! Opening connections to the model server: TCP, TLS (rustls on ring, HTTP/2 offered by
//! ALPN) and proxies from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`,
//! `NO_PROXY`, in either case).
//!
//! A client talks to one server, so the route is chosen once: straight there, through an
//! HTTP proxy's `CONNECT` tunnel (for `https://` servers), or through an HTTP proxy that
//! forwards plain `http://` requests (sent in absolute form, with `Proxy-Authorization`
//! when the proxy URL carries credentials).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use eino::{Error, Result};
use hyper::header::HeaderValue;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::errors::BoxError;
use crate::config::OpenAiConfig;

/// A TCP stream, with TLS on it for `https://` servers.
type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// How connections reach the server.
#[derive(Clone, Debug)]
enum Route {
    Direct(HttpsConnector<HttpConnector>),
    Tunnel(HttpsConnector<Tunnel<HttpConnector>>),
    /// To the proxy itself, which forwards each plain-HTTP request.
    Forward {
        tcp: HttpConnector,
        proxy: Uri,
    },
}

/// The connector of one model server's clients.
#[derive(Clone, Debug)]
pub(crate) struct Connector {
    route: Route,
}

/// What the requests must carry for the route: `Proxy-Authorization` for a forwarding
/// proxy with credentials.
pub(crate) struct Connecting {
    pub(crate) connector: Connector,
    pub(crate) proxy_authorization: Option<HeaderValue>,
}

fn tcp(cfg: &OpenAiConfig) -> HttpConnector {
    let mut tcp = HttpConnector::new();
    tcp.set_connect_timeout(Some(cfg.connect_timeout));
    // Small request bodies and SSE events must not wait for ACKs (Nagle).
    tcp.set_nodelay(true);
    // TLS is layered above; the TCP connector must accept `https://` destinations.
    tcp.enforce_http(false);
    tcp
}

fn tls<C>(inner: C) -> Result<HttpsConnector<C>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(provider)
        .map_err(|e| Error::invalid_input("cannot set up TLS").with_source(e))?
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(inner))
}

/// The proxy `matcher` names for `server`, if any; only `http://` proxies are spoken to.
fn proxy_for(matcher: &Matcher, server: &Uri) -> Result<Option<Intercept>> {
    let Some(proxy) = matcher.intercept(server) else {
        return Ok(None);
    };
    match proxy.uri().scheme_str() {
        Some("http") => Ok(Some(proxy)),
        other => Err(Error::invalid_input(format!(
            "the proxy for {server} is {}://…; only http:// proxies are supported",
            other.unwrap_or("?")
        ))),
    }
}

impl Connecting {
    /// The route to `server` given the proxy rules in `matcher`.
    pub(crate) fn new(cfg: &OpenAiConfig, server: &Uri, matcher: &Matcher) -> Result<Self> {
        let Some(proxy) = proxy_for(matcher, server)? else {
            return Ok(Self {
                connector: Connector {
                    route: Route::Direct(tls(tcp(cfg))?),
                },
                proxy_authorization: None,
            });
        };
        let auth = proxy.basic_auth().cloned();
        if server.scheme_str() == Some("https") {
            let mut tunnel = Tunnel::new(proxy.uri().clone(), tcp(cfg));
            if let Some(a) = auth {
                tunnel = tunnel.with_auth(a);
            }
            return Ok(Self {
                connector: Connector {
                    route: Route::Tunnel(tls(tunnel)?),
                },
                proxy_authorization: None,
            });
        }
        Ok(Self {
            connector: Connector {
                route: Route::Forward {
                    tcp: tcp(cfg),
                    proxy: proxy.uri().clone(),
                },
            },
            proxy_authorization: auth.map(|mut a| {
                a.set_sensitive(true);
                a
            }),
        })
    }
}

/// A connection, which tells the client whether it leads to a forwarding proxy (then
/// requests are written in absolute form).
pub(crate) struct Conn {
    io: Stream,
    forwarded: bool,
}

type Connect = Pin<Box<dyn Future<Output = std::result::Result<Conn, BoxError>> + Send>>;

impl tower_service::Service<Uri> for Connector {
    type Response = Conn;
    type Error = BoxError;
    type Future = Connect;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), BoxError>> {
        // Both connectors beneath are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Connect {
        fn wrap<F, E>(f: F, forwarded: bool) -> Connect
        where
            F: Future<Output = std::result::Result<Stream, E>> + Send + 'static,
            E: Into<BoxError>,
        {
            Box::pin(async move {
                let io = f.await.map_err(Into::into)?;
                Ok(Conn { io, forwarded })
            })
        }
        match &mut self.route {
            Route::Direct(c) => wrap(c.call(dst), false),
            Route::Tunnel(c) => wrap(c.call(dst), false),
            Route::Forward { tcp, proxy } => {
                let open = tcp.call(proxy.clone());
                wrap(async move { open.await.map(MaybeHttpsStream::Http) }, true)
            }
        }
    }
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.forwarded)
    }
}

// The stream's reads and writes, unchanged (`Stream` is `Unpin`).
impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
