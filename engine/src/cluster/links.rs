//! The control connections of a running cluster: what timely does not do.
//!
//! Each process writes, on its control connection to every peer, a heartbeat
//! a few times per `stall_timeout`; a stop request once it is asked to stop
//! (so every process drains, not just the one that got the signal); how far
//! its sinks have delivered each Kafka source; and `DONE` once its workers
//! have finished; and, from every process but 0, its components' health
//! whenever it changes, which process 0 shows on its own board as
//! `process{I}/{component}` (so its `/health/ready` and
//! `pulse_component_up` report the whole cluster). A peer whose connection closes before its
//! `DONE` has crashed, and one that sends nothing for `stall_timeout` is
//! frozen or cut off: either ends this process at once, with one log line
//! naming the peer and a non-zero status ([`EXIT_PEER_LOST`],
//! [`EXIT_PEER_STALLED`]). The panic hook ([`install_panic_hook`]) turns
//! timely's own reaction to a lost peer (a panic on its network threads, then
//! on every worker) into the same single line and status.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use pulse_core::{ComponentHealth, Delivered, DeliveryTracker, HealthBoard, PeerSettled, SessionProgress, Shutdown};

use super::liveness::WorkerSteps;
use super::{ClusterSettings, EXIT_PEER_LOST, EXIT_PEER_STALLED};

const HEARTBEAT: u8 = b'H';
const STOP: u8 = b'S';
const DONE: u8 = b'D';
/// Followed by a source index (u16) and a delivered frontier (u64), big-endian.
const DELIVERED: u8 = b'F';
/// Followed by a source index (u16) and the time (u64, big-endian) before
/// which every event's sessions in the sender's session windows are delivered.
const SETTLED: u8 = b'P';
/// Followed by a length (u32, big-endian) and that many bytes of JSON: the
/// sender's components as `[name, problem, breaker]` triples.
const BOARD: u8 = b'B';
/// The most a `BOARD` frame may carry; more is a broken peer.
const MAX_BOARD_BYTES: u32 = 1 << 20;

/// Set by whichever of the watchers and the panic hook ends the process first,
/// so that one line says why.
static ENDING: AtomicBool = AtomicBool::new(false);

/// Logs `why` and exits with `code`, unless something else is already ending the process.
fn end_process(code: i32, why: &str) -> ! {
    if !ENDING.swap(true, Ordering::SeqCst) {
        tracing::error!("{why}; ending this process (the supervisor restarts the whole cluster)");
    }
    std::process::exit(code)
}

/// How far this process's sinks have delivered each Kafka source, and where
/// it keeps what it hears of the peers'.
///
/// The records of a source read in one process reach sinks in every process
/// (exchanged by key, or gathered on process 0), so a source commits by the
/// minimum over the sinks of every process. Each process sends the frontier
/// of its own sinks ([`Delivered::local_frontier`]; not what it heard, which
/// would make two processes wait on each other's first report forever).
pub struct DeliveryLink {
    /// Sent to every peer: this process's frontiers (Kafka sources in name order).
    pub local: Vec<Delivered>,
    /// By peer (`None` for this process): trackers registered with this
    /// process's sources' [`Delivered`], advanced by what that peer sends.
    pub remote: Vec<Option<Vec<DeliveryTracker>>>,
    /// Sent to every peer: how far this process's session windows have
    /// settled, for each Kafka source (`None` without session windows).
    pub sessions: Vec<Option<SessionProgress>>,
    /// By peer (`None` for this process), for each Kafka source: what that
    /// peer says its session windows have settled.
    pub remote_sessions: Vec<Option<Vec<Option<PeerSettled>>>>,
}

/// The control connections of this process, watched.
#[derive(Clone)]
pub struct Links {
    shared: Arc<Shared>,
}

struct Shared {
    /// This process's index.
    process: usize,
    addresses: Vec<String>,
    stall_timeout: Duration,
    writers: Mutex<Vec<Option<TcpStream>>>,
    /// Set once this process's workers are done: a peer leaving then is no alarm.
    finished: AtomicBool,
    /// Peers that have said `DONE`, and those lost, each with why.
    peers: Mutex<Vec<PeerState>>,
    changed: Condvar,
    delivery: OnceLock<DeliveryLink>,
    /// This process's components: sent to process 0 (elsewhere), or where
    /// the peers' components are shown (process 0).
    health: OnceLock<HealthBoard>,
    /// When this process's workers last stepped.
    steps: WorkerSteps,
}

#[derive(Clone, Debug, PartialEq)]
enum PeerState {
    Running,
    Done,
    Lost(String),
}

impl Links {
    /// Starts heartbeats on, and watchers of, `control` (by peer index);
    /// `shutdown` is fired by a peer's stop request and sent to the peers
    /// when it fires here. The heartbeat also ends this process when one of
    /// its workers has not stepped (`steps`) for `stall_timeout`.
    pub fn start(
        settings: &ClusterSettings,
        control: Vec<Option<TcpStream>>,
        shutdown: Shutdown,
        steps: WorkerSteps,
    ) -> std::io::Result<Links> {
        let mut readers = Vec::new();
        let mut writers = Vec::new();
        for (peer, stream) in control.into_iter().enumerate() {
            match stream {
                Some(stream) => {
                    stream.set_read_timeout(Some(settings.stall_timeout))?;
                    stream.set_write_timeout(Some(settings.stall_timeout))?;
                    readers.push((peer, stream.try_clone()?));
                    writers.push(Some(stream));
                }
                None => writers.push(None),
            }
        }
        let shared = Arc::new(Shared {
            process: settings.process,
            addresses: settings.addresses.clone(),
            stall_timeout: settings.stall_timeout,
            writers: Mutex::new(writers),
            finished: AtomicBool::new(false),
            peers: Mutex::new(vec![PeerState::Running; settings.processes]),
            changed: Condvar::new(),
            delivery: OnceLock::new(),
            health: OnceLock::new(),
            steps,
        });
        for (peer, stream) in readers {
            let shared = Arc::clone(&shared);
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("pulse-link-{peer}"))
                .spawn(move || watch_peer(&shared, peer, stream, &shutdown))?;
        }
        let beating = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("pulse-heartbeat".into())
            .spawn(move || heartbeat(&beating, &shutdown))?;
        Ok(Links { shared })
    }

    /// Attaches the Kafka delivery progress (once the sinks are open).
    pub fn attach_delivery(&self, link: DeliveryLink) {
        let _ = self.shared.delivery.set(link);
    }

    /// Attaches this process's health board (once the sources and sinks are
    /// open): sent to process 0 from the other processes; on process 0, where
    /// the others' components appear.
    pub fn attach_health(&self, board: HealthBoard) {
        let _ = self.shared.health.set(board);
    }

    /// This process's workers are done: says `DONE` to every peer (after
    /// its final delivery progress), and a peer that leaves from now on is
    /// no alarm.
    pub fn finish(&self) {
        self.shared.finished.store(true, Ordering::SeqCst);
        let mut message = self.shared.delivery_frames();
        message.push(DONE);
        self.shared.send(&message);
    }

    /// Waits until every peer has said `DONE` (its sinks have written
    /// everything), for at most `timeout`: before a final Kafka commit here.
    pub fn wait_for_peers(&self, process: usize, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let mut peers = self.shared.peers.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let others = peers.iter().enumerate().filter(|(peer, _)| *peer != process);
            let mut running = Vec::new();
            for (peer, state) in others {
                match state {
                    PeerState::Done => {}
                    PeerState::Lost(why) => return Err(why.clone()),
                    PeerState::Running => running.push(peer.to_string()),
                }
            }
            if running.is_empty() {
                return Ok(());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "process {} did not finish within {timeout:?}",
                    running.join(", ")
                ));
            }
            peers = self
                .shared
                .changed
                .wait_timeout(peers, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Shared {
    fn address(&self, peer: usize) -> &str {
        self.addresses.get(peer).map_or("?", String::as_str)
    }

    /// Writes `message` to every peer; a peer that cannot take it is the watchers' business.
    fn send(&self, message: &[u8]) {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in writers.iter_mut().flatten() {
            let _ = stream.write_all(message);
        }
    }

    /// Writes `message` to `peer` only.
    fn send_to(&self, peer: usize, message: &[u8]) {
        let mut writers = self.writers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Some(stream)) = writers.get_mut(peer) {
            let _ = stream.write_all(message);
        }
    }

    /// This process's components as a `BOARD` frame, unless they are as
    /// they were when `last` was sent (or there is no board, or this is process 0).
    fn board_frame(&self, last: &mut Option<Vec<(String, ComponentHealth)>>) -> Option<Vec<u8>> {
        let board = self.health.get().filter(|_| self.process != 0)?;
        let components = board.components();
        if last.as_ref() == Some(&components) {
            return None;
        }
        let triples: Vec<(&str, Option<&str>, Option<&str>)> = components
            .iter()
            .map(|(name, health)| (name.as_str(), health.problem.as_deref(), health.breaker))
            .collect();
        let json = serde_json::to_vec(&triples).ok()?;
        let length = u32::try_from(json.len()).ok().filter(|n| *n <= MAX_BOARD_BYTES)?;
        *last = Some(components);
        let mut frame = vec![BOARD];
        frame.extend_from_slice(&length.to_be_bytes());
        frame.extend_from_slice(&json);
        Some(frame)
    }

    /// Shows `peer`'s components (a `BOARD` frame's JSON) on this process's board.
    fn show_board(&self, peer: usize, json: &[u8]) {
        let Some(board) = self.health.get() else { return };
        let triples: Vec<(String, Option<String>, Option<String>)> = match serde_json::from_slice(json) {
            Ok(triples) => triples,
            Err(error) => {
                tracing::warn!(process = peer, %error, "a peer's health report could not be read; ignored");
                return;
            }
        };
        for (name, problem, breaker) in triples {
            let reporter = board.reporter(&format!("process{peer}/{name}"));
            match problem {
                Some(problem) => reporter.unhealthy(problem),
                None => reporter.healthy(),
            }
            let breaker = ["closed", "half_open", "open"]
                .into_iter()
                .find(|state| breaker.as_deref() == Some(*state));
            if let Some(state) = breaker {
                reporter.breaker(state);
            }
        }
    }

    /// This process's delivered frontiers as `DELIVERED` frames (none while stopping).
    fn delivery_frames(&self) -> Vec<u8> {
        let mut frames = Vec::new();
        if let Some(link) = self.delivery.get() {
            for (index, delivered) in link.local.iter().enumerate() {
                let Some(frontier) = delivered.local_frontier() else {
                    continue;
                };
                frames.push(DELIVERED);
                frames.extend_from_slice(&(index as u16).to_be_bytes());
                frames.extend_from_slice(&frontier.to_be_bytes());
            }
            for (index, (sessions, delivered)) in link.sessions.iter().zip(&link.local).enumerate() {
                // At the frontier delivered by every process's sinks: a report of this
                // process's sessions made at or before it is then delivered everywhere.
                let (Some(sessions), Some(frontier)) = (sessions, delivered.frontier()) else {
                    continue;
                };
                frames.push(SETTLED);
                frames.extend_from_slice(&(index as u16).to_be_bytes());
                frames.extend_from_slice(&sessions.local_settled(frontier).to_be_bytes());
            }
        }
        frames
    }

    fn set_peer(&self, peer: usize, state: PeerState) {
        let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
        if peers[peer] == PeerState::Running {
            peers[peer] = state;
        }
        self.changed.notify_all();
    }
}

/// Sends heartbeats (and this process's delivery progress) until this process
/// finishes; a stop request once `shutdown` fires.
fn heartbeat(shared: &Shared, shutdown: &Shutdown) {
    let interval = (shared.stall_timeout / 5).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut stop_sent = false;
    let mut board_sent = None;
    while !shared.finished.load(Ordering::SeqCst) {
        if let Some((local, silent)) = shared.steps.stalled(shared.stall_timeout) {
            end_process(
                EXIT_PEER_STALLED,
                &format!(
                    "worker {local} of this process (process {}) has not stepped for {silent:?} (stall_timeout {:?}): \
                     it is stuck inside an operator and holds the whole cluster's progress; if one operator call \
                     can rightly take that long (closing very many windows or sessions at once after a long \
                     replay, a large incidents update), raise `[engine.cluster] stall_timeout` above it",
                    shared.process, shared.stall_timeout
                ),
            );
        }
        if let Some(frame) = shared.board_frame(&mut board_sent) {
            shared.send_to(0, &frame);
        }
        let mut message = shared.delivery_frames();
        if shutdown.is_triggered() && !stop_sent {
            message.push(STOP);
            stop_sent = true;
        }
        message.push(HEARTBEAT);
        shared.send(&message);
        std::thread::sleep(interval);
    }
}

/// Reads what `peer` sends until it says `DONE`; ends the process when it
/// crashes or falls silent while this one still runs.
fn watch_peer(shared: &Shared, peer: usize, mut stream: TcpStream, shutdown: &Shutdown) {
    let address = shared.address(peer).to_owned();
    let mut byte = [0u8; 1];
    let lost = loop {
        match stream.read_exact(&mut byte) {
            Ok(()) => match byte[0] {
                HEARTBEAT => {}
                STOP => {
                    if !shutdown.is_triggered() {
                        tracing::info!(process = peer, "a peer was asked to stop; draining the whole cluster");
                        shutdown.trigger();
                    }
                }
                DONE => {
                    shared.set_peer(peer, PeerState::Done);
                    return;
                }
                DELIVERED => {
                    let mut frame = [0u8; 10];
                    if let Err(error) = stream.read_exact(&mut frame) {
                        break (EXIT_PEER_LOST, format!("process {peer} ({address}) is gone: {error}"));
                    }
                    let index = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
                    let mut frontier = [0u8; 8];
                    frontier.copy_from_slice(&frame[2..]);
                    let trackers = shared.delivery.get().and_then(|link| link.remote.get(peer)?.as_ref());
                    if let Some(tracker) = trackers.and_then(|trackers| trackers.get(index)) {
                        tracker.advance(u64::from_be_bytes(frontier));
                    }
                }
                SETTLED => {
                    let mut frame = [0u8; 10];
                    if let Err(error) = stream.read_exact(&mut frame) {
                        break (EXIT_PEER_LOST, format!("process {peer} ({address}) is gone: {error}"));
                    }
                    let index = usize::from(u16::from_be_bytes([frame[0], frame[1]]));
                    let mut settled = [0u8; 8];
                    settled.copy_from_slice(&frame[2..]);
                    let peers = shared
                        .delivery
                        .get()
                        .and_then(|link| link.remote_sessions.get(peer)?.as_ref());
                    if let Some(Some(settled_by_peer)) = peers.and_then(|peers| peers.get(index)) {
                        settled_by_peer.advance(u64::from_be_bytes(settled));
                    }
                }
                BOARD => {
                    let mut length = [0u8; 4];
                    if let Err(error) = stream.read_exact(&mut length) {
                        break (EXIT_PEER_LOST, format!("process {peer} ({address}) is gone: {error}"));
                    }
                    let length = u32::from_be_bytes(length);
                    if length > MAX_BOARD_BYTES {
                        break (
                            EXIT_PEER_LOST,
                            format!("process {peer} ({address}) sent a health report of {length} bytes"),
                        );
                    }
                    let mut json = vec![0u8; length as usize];
                    if let Err(error) = stream.read_exact(&mut json) {
                        break (EXIT_PEER_LOST, format!("process {peer} ({address}) is gone: {error}"));
                    }
                    shared.show_board(peer, &json);
                }
                other => {
                    break (
                        EXIT_PEER_LOST,
                        format!("process {peer} ({address}) sent {other:#04x} on its control connection"),
                    );
                }
            },
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break (
                    EXIT_PEER_STALLED,
                    format!(
                        "process {peer} ({address}) has sent nothing for {:?} (stall_timeout): it is frozen or cut off",
                        shared.stall_timeout
                    ),
                );
            }
            Err(error) => {
                let why = match error.kind() {
                    ErrorKind::UnexpectedEof => "its connection closed".to_owned(),
                    _ => error.to_string(),
                };
                break (EXIT_PEER_LOST, format!("process {peer} ({address}) is gone: {why}"));
            }
        }
    };
    let (code, why) = lost;
    shared.set_peer(peer, PeerState::Lost(why.clone()));
    if !shared.finished.load(Ordering::SeqCst) {
        end_process(code, &why);
    }
}

/// In a cluster, a panic ends the process at once with one line: a lost peer
/// makes timely panic on its network threads and then on every worker
/// (`shared/notes/timely-cluster.md`), and a process whose workers are gone
/// must not linger while its peers wait for it.
pub fn install_panic_hook(settings: &ClusterSettings) {
    let addresses = settings.addresses.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if ENDING.load(Ordering::SeqCst) {
            std::process::exit(EXIT_PEER_LOST);
        }
        let thread = std::thread::current().name().unwrap_or_default().to_owned();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let network_peer = thread
            .strip_prefix("timely:recv-")
            .or_else(|| thread.strip_prefix("timely:send-"))
            .and_then(|peer| peer.parse::<usize>().ok());
        if let Some(peer) = network_peer {
            let address = addresses.get(peer).map_or("?", String::as_str);
            end_process(
                EXIT_PEER_LOST,
                &format!("process {peer} ({address}) is gone: {message}"),
            );
        }
        if message.contains("MergeQueue poisoned") || message.contains("timely communication error") {
            end_process(EXIT_PEER_LOST, &format!("a peer of the cluster is gone ({message})"));
        }
        previous(info);
        ENDING.store(true, Ordering::SeqCst);
        std::process::exit(101);
    }));
}
