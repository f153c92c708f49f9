//! A minimal WebSocket client for `ops_stack.rs`: enough of RFC 6455 to open
//! `/ws`, subscribe and read what the server sends, without a client crate.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A minimal WebSocket client of `/ws`: the upgrade, masked text frames out,
/// frames in (the server sends them unmasked).
pub struct WsClient(TcpStream);

impl WsClient {
    /// Opens `/ws` with `token`; panics unless the server switches protocols.
    pub fn connect(address: SocketAddr, token: &str) -> Self {
        let mut stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        write!(
            stream,
            "GET /ws?token={token} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        assert!(text(&head).starts_with("HTTP/1.1 101"), "{}", text(&head));
        Self(stream)
    }

    /// Sends `message` in one text frame.
    pub fn send(&mut self, message: &str) {
        let payload = message.as_bytes();
        assert!(payload.len() < 126, "a short message");
        let mask = [0x5a, 0x17, 0xc3, 0x2e];
        let mut frame = vec![0x81, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    /// The next frame's payload as text.
    pub fn receive(&mut self) -> String {
        let mut header = [0u8; 2];
        self.0.read_exact(&mut header).unwrap();
        let length = match header[1] & 0x7f {
            126 => {
                let mut bytes = [0u8; 2];
                self.0.read_exact(&mut bytes).unwrap();
                u64::from(u16::from_be_bytes(bytes))
            }
            127 => {
                let mut bytes = [0u8; 8];
                self.0.read_exact(&mut bytes).unwrap();
                u64::from_be_bytes(bytes)
            }
            short => u64::from(short),
        };
        let mut payload = vec![0u8; usize::try_from(length).unwrap()];
        self.0.read_exact(&mut payload).unwrap();
        text(&payload)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
