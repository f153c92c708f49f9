//! Timely's connections, counted: the bytes this process sends to and
//! receives from each peer, as `pulse_cluster_sent_bytes_total{peer}` and
//! `pulse_cluster_received_bytes_total{peer}` (what the exchange between
//! processes costs, per event, is read from these).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use metrics::Counter;
use timely::communication::allocator::zero_copy::stream::Stream;

/// A data connection to one peer that counts what crosses it.
pub struct CountedStream {
    stream: TcpStream,
    peer: usize,
    sent: Counter,
    received: Counter,
}

impl CountedStream {
    /// Counts what crosses `stream`, the connection to process `peer`.
    pub fn new(stream: TcpStream, peer: usize) -> Self {
        let label = [("peer", peer.to_string())];
        Self {
            stream,
            peer,
            sent: metrics::counter!("pulse_cluster_sent_bytes_total", &label),
            received: metrics::counter!("pulse_cluster_received_bytes_total", &label),
        }
    }
}

impl Read for CountedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.stream.read(buf)?;
        self.received.increment(n as u64);
        Ok(n)
    }
}

impl Write for CountedStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.stream.write(buf)?;
        self.sent.increment(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

impl Stream for CountedStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(Self::new(self.stream.try_clone()?, self.peer))
    }

    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.stream.set_nonblocking(nonblocking)
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.stream.shutdown(how)
    }
}
