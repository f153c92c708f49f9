//! Load generators for a running pulse, behind the `pulse-loadtest` binary.
//!
//! - [`ws`]: thousands of `/ws` subscribers at once, measuring how long closed
//!   windows take from the live hub to each client.
//!
//! Shared pieces: [`histogram`] (lock-free latency recording) and [`process`]
//! (the open-file limit that many sockets need, and the CPU time used).

pub mod histogram;
pub mod process;
pub mod ws;
