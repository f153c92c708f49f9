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
        self.send_frame(0x1, message.as_bytes());
    }

    /// Sends one masked frame of `opcode` carrying `payload` (under 126 bytes).
    fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        assert!(payload.len() < 126, "a short message");
        let mask = [0x5a, 0x17, 0xc3, 0x2e];
        let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&frame).unwrap();
    }

    /// The next data frame's payload as text. Pings are answered as a client
    /// must (the server closes a socket that misses three heartbeats); a close
    /// frame fails the test with its code.
    pub fn receive(&mut self) -> String {
        loop {
            let (opcode, payload) = self.frame();
            match opcode {
                0x9 => self.send_frame(0xA, &payload),
                0xA => {}
                0x8 => panic!(
                    "the server closed the socket: {:?}",
                    payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]))
                ),
                _ => return text(&payload),
            }
        }
    }

    /// The next frame: its opcode and payload.
    fn frame(&mut self) -> (u8, Vec<u8>) {
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
        (header[0] & 0x0f, payload)
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
