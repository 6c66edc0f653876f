//! gRPC over HTTP/2 (h2), what this client needs of it: unary and client-streaming calls, the length-prefixed
//! framing, deadlines (`grpc-timeout` and a local timer), metadata (`authorization: Bearer`), and the status
//! with its `google.rpc.Status` details read into `Error`. TLS (and mutual TLS) with rustls, ALPN h2.

use std::collections::HashMap;
use std::convert::TryFrom;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use http::{HeaderMap, Request};
use prost::Message;
use tokio::net::TcpStream;

use crate::error::{Details, Error, Result};

/// The most one response message may hold (the store's default message bound).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// `google.rpc.Status`, as the service sends it in `grpc-status-details-bin`.
#[derive(Clone, PartialEq, Message)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

/// `google.rpc.ErrorInfo`.
#[derive(Clone, PartialEq, Message)]
pub struct ErrorInfo {
    #[prost(string, tag = "1")]
    pub reason: String,
    #[prost(string, tag = "2")]
    pub domain: String,
    #[prost(map = "string, string", tag = "3")]
    pub metadata: HashMap<String, String>,
}

/// TLS for `grpcs://`: the CA certificates that sign the server's (PEM), and optionally the client's own
/// certificate chain and key (PEM) for mutual TLS.
#[derive(Clone, Default)]
pub struct TlsOptions {
    pub ca_pem: Vec<u8>,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    /// The DNS name the server's certificate must carry; by default the host of the URI (which must then be a
    /// name: rustls 0.20 does not check IP addresses in certificates).
    pub server_name: Option<String>,
}

/// One HTTP/2 connection to a service, shared by every call (h2 multiplexes them).
#[derive(Clone)]
pub struct Channel {
    send: SendRequest<Bytes>,
    scheme: &'static str,
    authority: String,
    api_key: Option<String>,
    timeout: Option<Duration>,
}

impl Channel {
    pub async fn connect(authority: &str, tls: Option<TlsOptions>, api_key: Option<String>,
                         timeout: Option<Duration>) -> Result<Channel> {
        let tcp = TcpStream::connect(authority).await
            .map_err(|e| Error::Transport(format!("cannot connect to {}: {}", authority, e)))?;
        tcp.set_nodelay(true).map_err(|e| Error::Transport(e.to_string()))?;
        let (send, scheme) = match tls {
            None => {
                let (send, connection) = h2::client::handshake(tcp).await.map_err(transport)?;
                tokio::spawn(async move { let _ = connection.await; });
                (send, "http")
            }
            Some(options) => {
                let host = authority.rsplit_once(':').map(|(h, _)| h).unwrap_or(authority);
                let host = host.trim_matches(|c| c == '[' || c == ']');
                let name = match &options.server_name {
                    Some(name) => name.clone(),
                    None if host.parse::<std::net::IpAddr>().is_ok() => return Err(Error::Usage(format!(
                        "{} is an IP address: rustls 0.20 (Debian's) checks a certificate's DNS names only, so give \
                         TlsOptions.server_name (a DNS name the store's certificate carries)", host))),
                    None => host.to_string(),
                };
                let connector = tokio_rustls::TlsConnector::from(Arc::new(tls_config(&options)?));
                let server_name = rustls::ServerName::try_from(name.as_str())
                    .map_err(|_| Error::Usage(format!("{:?} is not a server name TLS can check", name)))?;
                let stream = connector.connect(server_name, tcp).await
                    .map_err(|e| Error::Transport(format!("TLS with {}: {}", authority, e)))?;
                let (send, connection) = h2::client::handshake(stream).await.map_err(transport)?;
                tokio::spawn(async move { let _ = connection.await; });
                (send, "https")
            }
        };
        Ok(Channel { send, scheme, authority: authority.to_string(), api_key, timeout })
    }

    /// One request message, one response message.
    pub async fn unary<Req: Message, Resp: Message + Default>(&self, method: &str, request: &Req) -> Result<Resp> {
        self.streaming(method, std::slice::from_ref(request)).await
    }

    /// Several request messages (a client stream), one response message.
    pub async fn streaming<Req: Message, Resp: Message + Default>(&self, method: &str, requests: &[Req]) -> Result<Resp> {
        let call = self.call(method, requests.iter().map(frame).collect());
        let body = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, call).await.map_err(|_| {
                Error::DeadlineExceeded(Details { message: format!("{} took longer than {:?}", method, limit),
                                                  reason: "DEADLINE_EXCEEDED".into(), metadata: HashMap::new() })
            })??,
            None => call.await?,
        };
        Resp::decode(body).map_err(|e| Error::Transport(format!("{}: undecodable response: {}", method, e)))
    }

    async fn call(&self, method: &str, frames: Vec<Bytes>) -> Result<Bytes> {
        let mut request = Request::builder().method("POST")
            .uri(format!("{}://{}{}", self.scheme, self.authority, method))
            .header("content-type", "application/grpc").header("te", "trailers")
            .header("user-agent", concat!("vectorlane-rust/", env!("CARGO_PKG_VERSION")));
        if let Some(limit) = self.timeout {
            request = request.header("grpc-timeout", format!("{}m", limit.as_millis().max(1)));
        }
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {}", key));
        }
        let request = request.body(()).map_err(|e| Error::Usage(e.to_string()))?;
        let mut send = self.send.clone().ready().await.map_err(transport)?;
        let (response, mut stream) = send.send_request(request, false).map_err(transport)?;
        let count = frames.len();
        for (i, data) in frames.into_iter().enumerate() {
            stream.send_data(data, i + 1 == count).map_err(transport)?;
        }
        if count == 0 {
            stream.send_data(Bytes::new(), true).map_err(transport)?;
        }
        let response = response.await.map_err(transport)?;
        let (parts, mut body) = response.into_parts();
        if parts.headers.contains_key("grpc-status") { // a trailers-only response: the status alone
            check_status(&parts.headers)?;
        }
        if parts.status != http::StatusCode::OK {
            return Err(Error::Transport(format!("HTTP status {} from {}", parts.status, self.authority)));
        }
        let mut received = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(transport)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            if received.len() + chunk.len() > MAX_MESSAGE_BYTES + 5 {
                return Err(Error::ResourceExhausted(Details {
                    message: format!("{}: the response is over {} bytes", method, MAX_MESSAGE_BYTES),
                    reason: "RESPONSE_TOO_LARGE".into(), metadata: HashMap::new() }));
            }
            received.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.map_err(transport)?.unwrap_or_default();
        check_status(&trailers)?;
        unframe(received.freeze())
    }
}

fn transport(error: h2::Error) -> Error {
    Error::Transport(error.to_string())
}

fn frame<M: Message>(message: &M) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.encoded_len());
    out.put_u8(0); // not compressed
    out.put_u32(message.encoded_len() as u32);
    message.encode(&mut out).expect("a BytesMut grows as needed");
    out.freeze()
}

fn unframe(mut data: Bytes) -> Result<Bytes> {
    if data.len() < 5 {
        return Err(Error::Transport("the response holds no message".into()));
    }
    let compressed = data.get_u8();
    let length = data.get_u32() as usize;
    if compressed != 0 {
        return Err(Error::Transport("the response is compressed, which was not asked for".into()));
    }
    if data.len() < length {
        return Err(Error::Transport("the response message is cut short".into()));
    }
    Ok(data.slice(..length))
}

/// The call's status from its trailers (or a trailers-only response's headers): Ok for 0.
fn check_status(headers: &HeaderMap) -> Result<()> {
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i32>().ok());
    let code = match code {
        Some(0) => return Ok(()),
        Some(code) => code,
        None => return Err(Error::Transport("the call ended without a gRPC status".into())),
    };
    let mut details = Details {
        message: headers.get("grpc-message").and_then(|v| v.to_str().ok()).map(percent_decode).unwrap_or_default(),
        ..Details::default()
    };
    if let Some(status) = headers.get("grpc-status-details-bin").and_then(|v| v.to_str().ok())
        .and_then(|v| base64::decode_config(v.trim_end_matches('='), base64::STANDARD_NO_PAD).ok())
        .and_then(|raw| RpcStatus::decode(raw.as_slice()).ok()) {
        if details.message.is_empty() {
            details.message = status.message.clone();
        }
        for any in status.details {
            if any.type_url.ends_with("/google.rpc.ErrorInfo") {
                if let Ok(info) = ErrorInfo::decode(any.value.as_slice()) {
                    details.reason = info.reason;
                    details.metadata = info.metadata;
                    break;
                }
            }
        }
    }
    Err(Error::from_status(code, details))
}

/// grpc-message is percent-encoded UTF-8.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(value) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn tls_config(options: &TlsOptions) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let mut reader = options.ca_pem.as_slice();
    for cert in rustls_pemfile::certs(&mut reader).map_err(|e| Error::Usage(format!("CA certificates: {}", e)))? {
        roots.add(&rustls::Certificate(cert)).map_err(|e| Error::Usage(format!("CA certificate: {}", e)))?;
    }
    if roots.is_empty() {
        return Err(Error::Usage("grpcs:// needs the CA certificates (PEM) that sign the server's".into()));
    }
    let builder = rustls::ClientConfig::builder().with_safe_defaults().with_root_certificates(roots);
    let mut config = match (&options.client_cert_pem, &options.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain = rustls_pemfile::certs(&mut cert.as_slice())
                .map_err(|e| Error::Usage(format!("client certificate: {}", e)))?
                .into_iter().map(rustls::Certificate).collect();
            let key = private_key(key)?;
            builder.with_single_cert(chain, key).map_err(|e| Error::Usage(format!("client certificate: {}", e)))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(Error::Usage("mutual TLS needs both the client certificate and its key".into())),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

fn private_key(pem: &[u8]) -> Result<rustls::PrivateKey> {
    let mut reader = pem;
    loop {
        match rustls_pemfile::read_one(&mut reader).map_err(|e| Error::Usage(format!("client key: {}", e)))? {
            Some(rustls_pemfile::Item::PKCS8Key(key)) | Some(rustls_pemfile::Item::RSAKey(key))
            | Some(rustls_pemfile::Item::ECKey(key)) => return Ok(rustls::PrivateKey(key)),
            Some(_) => continue,
            None => return Err(Error::Usage("no private key in the client key PEM".into())),
        }
    }
}
