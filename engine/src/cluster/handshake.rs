//! The start-up handshake: the sockets of a cluster, opened by pulse before
//! timely gets them.
//!
//! Every process listens on its own address; process `j` connects twice to
//! every process `i < j` (a data connection for timely, a control connection
//! for [`super::links`]) and each side sends a [`Hello`]: a magic number, the
//! protocol version, which connection it is, the process index, the number
//! of processes, the workers per process and the plan hash. Each side checks
//! the other's, so a mismatch fails both, naming both values. A connection
//! that does not start with a pulse hello within two seconds (a health check,
//! a port scan, a stray client) is logged and closed; the cluster still forms.
//! Once every connection is up, every process sends `READY` on its control
//! connections and waits for every peer's, so that no process hands timely
//! its sockets while a peer may still fail its start-up.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{ClusterError, ClusterSettings};

/// The first bytes of every pulse cluster connection.
const MAGIC: [u8; 8] = *b"PULSE\0CL";
/// The version of this handshake; processes of other versions refuse each other.
const VERSION: u16 = 1;
/// Bytes of an encoded [`Hello`].
const HELLO_LEN: usize = MAGIC.len() + 2 + 1 + 4 * 8;
/// How long an accepted connection may take to say hello.
const HELLO_WAIT: Duration = Duration::from_secs(2);
/// The byte a process sends on every control connection once it has all of them.
pub(crate) const READY: u8 = b'R';

/// Which of the two connections between a pair of processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Timely's data and progress messages.
    Data,
    /// Pulse's heartbeats, stop requests and delivery progress.
    Control,
}

/// What each side of a connection says first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hello {
    /// Which connection this is.
    pub channel: Channel,
    /// The sender's process index.
    pub process: u64,
    /// How many processes the sender expects.
    pub processes: u64,
    /// The sender's worker threads.
    pub workers: u64,
    /// The sender's plan hash.
    pub plan: u64,
}

impl Hello {
    fn encode(&self) -> [u8; HELLO_LEN] {
        let mut bytes = [0u8; HELLO_LEN];
        bytes[..8].copy_from_slice(&MAGIC);
        bytes[8..10].copy_from_slice(&VERSION.to_be_bytes());
        bytes[10] = match self.channel {
            Channel::Data => b'd',
            Channel::Control => b'c',
        };
        for (i, value) in [self.process, self.processes, self.workers, self.plan]
            .iter()
            .enumerate()
        {
            bytes[11 + 8 * i..19 + 8 * i].copy_from_slice(&value.to_be_bytes());
        }
        bytes
    }

    fn decode(bytes: &[u8; HELLO_LEN]) -> Result<Hello, String> {
        if bytes[..8] != MAGIC {
            let shown: String = bytes[..8]
                .iter()
                .map(|&b| char::from(b))
                .filter(|c| !c.is_control())
                .collect();
            return Err(format!("it sent {shown:?}…, not a pulse hello"));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(format!(
                "it speaks cluster protocol version {version}, this build {VERSION}: run the same pulse everywhere"
            ));
        }
        let channel = match bytes[10] {
            b'd' => Channel::Data,
            b'c' => Channel::Control,
            other => return Err(format!("unknown connection kind {other}")),
        };
        let word = |i: usize| {
            let mut value = [0u8; 8];
            value.copy_from_slice(&bytes[11 + 8 * i..19 + 8 * i]);
            u64::from_be_bytes(value)
        };
        Ok(Hello {
            channel,
            process: word(0),
            processes: word(1),
            workers: word(2),
            plan: word(3),
        })
    }
}

/// What this process brings to the handshake.
#[derive(Clone, Copy, Debug)]
pub struct Identity {
    /// This process's index.
    pub process: usize,
    /// How many processes.
    pub processes: usize,
    /// Worker threads per process.
    pub workers: usize,
    /// The plan hash ([`super::plan_hash`]).
    pub plan: u64,
}

impl Identity {
    fn hello(&self, channel: Channel) -> Hello {
        Hello {
            channel,
            process: self.process as u64,
            processes: self.processes as u64,
            workers: self.workers as u64,
            plan: self.plan,
        }
    }

    /// What differs between this process and a peer's hello, said from the peer's side.
    fn mismatch(&self, theirs: &Hello) -> Option<String> {
        if theirs.processes != self.processes as u64 {
            return Some(format!(
                "expects {} processes, this process (process {}) {}; give every process the same hostfile and `processes`",
                theirs.processes, self.process, self.processes
            ));
        }
        if theirs.workers != self.workers as u64 {
            return Some(format!(
                "runs {} workers, this process (process {}) {}; `workers` must be the same in every process",
                theirs.workers, self.process, self.workers
            ));
        }
        if theirs.plan != self.plan {
            return Some(format!(
                "runs another plan: its plan hash is {:016x}, this process's (process {}) is {:016x}; every process \
                 must run the same pipeline file with the same ${{VAR}} values",
                theirs.plan, self.process, self.plan
            ));
        }
        None
    }
}

/// The connections of a formed cluster, by peer index (`None` at this process).
pub struct Connected {
    /// Timely's connections.
    pub data: Vec<Option<TcpStream>>,
    /// Pulse's control connections.
    pub control: Vec<Option<TcpStream>>,
}

/// How a connection to a peer ended.
enum Dialed {
    Connected(usize, TcpStream, TcpStream),
    /// Not before the deadline; the last thing that went wrong.
    NoAnswer(usize, String),
    Failed(ClusterError),
}

/// Connects this process to every peer, checks each one's hello and waits
/// until every process has all its connections; fails within
/// `connect_timeout` naming every peer that never answered.
pub fn connect(settings: &ClusterSettings, me: Identity) -> Result<Connected, ClusterError> {
    let deadline = Instant::now() + settings.connect_timeout;
    let own = settings.address(me.process);
    let listener = TcpListener::bind(own).map_err(|error| ClusterError::Listen {
        process: me.process,
        address: own.to_owned(),
        error,
    })?;
    listener.set_nonblocking(true)?;
    let peers = settings.processes;
    let mut data: Vec<Option<TcpStream>> = (0..peers).map(|_| None).collect();
    let mut control: Vec<Option<TcpStream>> = (0..peers).map(|_| None).collect();

    // Outgoing: one thread per earlier process.
    let (dialed_tx, dialed_rx) = mpsc::channel();
    for peer in 0..me.process {
        let address = settings.address(peer).to_owned();
        let dialed = dialed_tx.clone();
        std::thread::Builder::new()
            .name(format!("pulse-dial-{peer}"))
            .spawn(move || {
                let _ = dialed.send(dial_both(peer, &address, me, deadline));
            })?;
    }
    drop(dialed_tx);
    let mut no_answer: Vec<(usize, String)> = Vec::new();
    let mut dialing = me.process;

    // Incoming: every later process, each connection's hello read on a thread of its own.
    let (hello_tx, hello_rx) = mpsc::channel::<(TcpStream, SocketAddr, Result<Hello, String>)>();
    let expected_incoming = 2 * (peers - me.process - 1);
    let mut incoming = 0;
    while dialing > 0 || incoming < expected_incoming {
        let mut idle = true;
        match listener.accept() {
            Ok((stream, from)) => {
                idle = false;
                let hello = hello_tx.clone();
                std::thread::Builder::new().name("pulse-hello".into()).spawn(move || {
                    let said = read_hello(&stream, Instant::now() + HELLO_WAIT);
                    let _ = hello.send((stream, from, said));
                })?;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {}
            Err(error) => tracing::warn!(%error, "accepting a cluster connection failed"),
        }
        while let Ok((mut stream, from, said)) = hello_rx.try_recv() {
            idle = false;
            let hello = match said {
                Ok(hello) => hello,
                Err(reason) => {
                    tracing::warn!(%from, %reason, "turned away a connection to the cluster port");
                    continue;
                }
            };
            let peer = usize::try_from(hello.process).unwrap_or(usize::MAX);
            let slots = match hello.channel {
                Channel::Data => &mut data,
                Channel::Control => &mut control,
            };
            if peer <= me.process || peer >= peers || slots[peer].is_some() {
                tracing::warn!(%from, process = hello.process, "turned away a connection: no process of that index is expected here");
                continue;
            }
            // Answered even on a mismatch, so that the peer names it too.
            stream.write_all(&me.hello(hello.channel).encode())?;
            if let Some(mismatch) = me.mismatch(&hello) {
                return Err(ClusterError::Mismatch {
                    peer,
                    address: settings.address(peer).to_owned(),
                    mismatch,
                });
            }
            slots[peer] = Some(stream);
            incoming += 1;
        }
        while let Ok(dialed) = dialed_rx.try_recv() {
            idle = false;
            dialing -= 1;
            match dialed {
                Dialed::Connected(peer, data_stream, control_stream) => {
                    data[peer] = Some(data_stream);
                    control[peer] = Some(control_stream);
                }
                Dialed::NoAnswer(peer, last) => no_answer.push((peer, last)),
                Dialed::Failed(error) => return Err(error),
            }
        }
        // Dialers give up at the deadline themselves; their answers are awaited.
        if Instant::now() >= deadline && dialing == 0 {
            break;
        }
        if idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let mut missing: Vec<String> = no_answer
        .into_iter()
        .map(|(peer, last)| {
            format!(
                "process {peer} ({}) never answered (last: {last})",
                settings.address(peer)
            )
        })
        .collect();
    for peer in me.process + 1..peers {
        if data[peer].is_none() || control[peer].is_none() {
            missing.push(format!("process {peer} ({}) never connected", settings.address(peer)));
        }
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(ClusterError::NoAnswer {
            timeout: settings.connect_timeout,
            missing,
        });
    }
    drop(listener);
    await_ready(settings, &mut control, deadline)?;
    for stream in data.iter().flatten() {
        stream.set_read_timeout(None)?;
        stream.set_nonblocking(false)?;
        stream.set_nodelay(true)?;
    }
    Ok(Connected { data, control })
}

/// Sends `READY` to every peer and waits for every peer's.
fn await_ready(
    settings: &ClusterSettings,
    control: &mut [Option<TcpStream>],
    deadline: Instant,
) -> Result<(), ClusterError> {
    for stream in control.iter_mut().flatten() {
        stream.write_all(&[READY])?;
    }
    for (peer, stream) in control.iter_mut().enumerate() {
        let Some(stream) = stream else { continue };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        stream.set_read_timeout(Some(left))?;
        let mut byte = [0u8; 1];
        let reason = match stream.read_exact(&mut byte) {
            Ok(()) if byte[0] == READY => continue,
            Ok(()) => format!("it sent {:?} instead of READY", byte[0]),
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                "it did not finish its start-up in time".to_owned()
            }
            Err(error) => format!("its connection closed ({error})"),
        };
        return Err(ClusterError::PeerLeft {
            peer,
            address: settings.address(peer).to_owned(),
            reason,
        });
    }
    Ok(())
}

/// Opens the control and then the data connection to `peer`.
fn dial_both(peer: usize, address: &str, me: Identity, deadline: Instant) -> Dialed {
    let mut streams = Vec::with_capacity(2);
    for channel in [Channel::Control, Channel::Data] {
        match dial(peer, address, me, channel, deadline) {
            Ok(stream) => streams.push(stream),
            Err(DialError::Fatal(error)) => return Dialed::Failed(error),
            Err(DialError::NoAnswer(last)) => return Dialed::NoAnswer(peer, last),
        }
    }
    let data = streams.pop().expect("two streams");
    let control = streams.pop().expect("two streams");
    Dialed::Connected(peer, data, control)
}

/// Why a dial gave up.
enum DialError {
    /// The peer answered, and what it said ends the start-up.
    Fatal(ClusterError),
    /// No answer before the deadline; the last thing that went wrong.
    NoAnswer(String),
}

/// Connects to `address` until the deadline, says hello and checks the answer.
fn dial(peer: usize, address: &str, me: Identity, channel: Channel, deadline: Instant) -> Result<TcpStream, DialError> {
    let mut last = String::from("nothing tried");
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DialError::NoAnswer(last));
        }
        let mut stream = match open(address, left.min(Duration::from_secs(2))) {
            Ok(stream) => stream,
            Err(error) => {
                last = error;
                std::thread::sleep(Duration::from_millis(100).min(left));
                continue;
            }
        };
        let said = stream
            .write_all(&me.hello(channel).encode())
            .map_err(|error| error.to_string())
            .and_then(|()| read_hello(&stream, deadline));
        match said {
            Ok(theirs) if theirs.process != peer as u64 => {
                return Err(DialError::Fatal(ClusterError::NotPulse {
                    peer,
                    address: address.to_owned(),
                    reason: format!("it is process {} of its cluster", theirs.process),
                }));
            }
            Ok(theirs) => {
                if let Some(mismatch) = me.mismatch(&theirs) {
                    return Err(DialError::Fatal(ClusterError::Mismatch {
                        peer,
                        address: address.to_owned(),
                        mismatch,
                    }));
                }
                return Ok(stream);
            }
            Err(reason) if reason.contains("not a pulse hello") || reason.contains("protocol version") => {
                return Err(DialError::Fatal(ClusterError::NotPulse {
                    peer,
                    address: address.to_owned(),
                    reason,
                }));
            }
            // Closed or silent: a peer still starting (or just turned us away); try again.
            Err(reason) => {
                last = reason;
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// A TCP connection to `address` (resolved anew each time: a pod's DNS name
/// appears only once it runs).
fn open(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let resolved: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|error| format!("cannot resolve {address}: {error}"))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for addr in resolved {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(|error| error.to_string())?;
                return Ok(stream);
            }
            Err(error) => last = error.to_string(),
        }
    }
    Err(last)
}

/// Reads a hello, waiting at most until `deadline`.
fn read_hello(mut stream: &TcpStream, deadline: Instant) -> Result<Hello, String> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    stream.set_nonblocking(false).map_err(|error| error.to_string())?;
    stream.set_read_timeout(Some(left)).map_err(|error| error.to_string())?;
    let mut bytes = [0u8; HELLO_LEN];
    match stream.read_exact(&mut bytes) {
        Ok(()) => Hello::decode(&bytes),
        Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            // What arrived may still show a stranger (an HTTP request shorter than a hello).
            Err("it said nothing a pulse process says within the handshake time".to_owned())
        }
        Err(error) if error.kind() == ErrorKind::UnexpectedEof => {
            Err("it closed the connection during the handshake".to_owned())
        }
        Err(error) => Err(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_reads_back_and_a_stranger_is_named() {
        let hello = Hello {
            channel: Channel::Control,
            process: 2,
            processes: 3,
            workers: 4,
            plan: 0xdead_beef,
        };
        assert_eq!(Hello::decode(&hello.encode()), Ok(hello));
        let mut http = [0u8; HELLO_LEN];
        http[..14].copy_from_slice(b"GET / HTTP/1.1");
        let error = Hello::decode(&http).unwrap_err();
        assert!(error.contains("not a pulse hello"), "{error}");
    }

    #[test]
    fn a_mismatch_names_both_sides() {
        let me = Identity {
            process: 0,
            processes: 2,
            workers: 2,
            plan: 1,
        };
        let mut theirs = me.hello(Channel::Data);
        theirs.process = 1;
        assert_eq!(me.mismatch(&theirs), None);
        theirs.plan = 0xabc;
        let plan = me.mismatch(&theirs).unwrap();
        assert!(
            plan.contains("0000000000000abc") && plan.contains("0000000000000001"),
            "{plan}"
        );
        theirs.workers = 1;
        let workers = me.mismatch(&theirs).unwrap();
        assert!(
            workers.contains("runs 1 workers, this process (process 0) 2"),
            "{workers}"
        );
    }
}
