//! `/metrics` of the processes other than 0, which serve no gateway: each on
//! the gateway's host at its port plus the process index (8080 → 8081 for
//! process 1), so that Prometheus can scrape every process of a cluster.
//!
//! A plain HTTP/1.1 responder on a thread of its own: `GET /metrics` (the
//! Prometheus text format), `GET /health/live`, 404 for anything else; one
//! request per connection, two seconds to send it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Where process `process` serves its metrics, given the gateway's address.
pub fn address_of(gateway: SocketAddr, process: usize) -> Option<SocketAddr> {
    let port = usize::from(gateway.port()) + process;
    u16::try_from(port).ok().map(|port| SocketAddr::new(gateway.ip(), port))
}

/// Serves `/metrics` on `address` until the process ends.
pub fn serve(address: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(address)?;
    tracing::info!(%address, "serving /metrics of this process");
    std::thread::Builder::new()
        .name("pulse-metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(error) = answer(stream) {
                    tracing::debug!(%error, "a metrics request failed");
                }
            }
        })?;
    Ok(())
}

fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let target = line.split_whitespace().take(2).collect::<Vec<_>>();
    let (status, kind, body) = match target.as_slice() {
        ["GET", "/metrics"] => (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            pulse_gateway::ops::prometheus_handle().render(),
        ),
        ["GET", "/health/live"] => ("200 OK", "application/json", r#"{"status":"ok"}"#.to_owned()),
        _ => (
            "404 Not Found",
            "text/plain",
            "only /metrics and /health/live here\n".to_owned(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
