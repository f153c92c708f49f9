//! [`Machine`]: what a run ran on, so two reports from different machines are
//! not compared as if they were alike.

use serde::{Deserialize, Serialize};

/// The machine of a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU cores this process may use.
    pub cores: usize,
    /// Total memory, in bytes (0 when unknown).
    pub memory_bytes: u64,
    /// The operating system (`PRETTY_NAME` of os-release, else the target OS).
    pub os: String,
    /// The kernel release (empty when unknown).
    pub kernel: String,
    /// The CPU model (empty when unknown).
    pub cpu_model: String,
    /// The load generator's version.
    pub loadtest_version: String,
}

impl Machine {
    /// This machine, read from `/proc` and `/etc/os-release` where they exist.
    pub fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let memory_bytes = read("/proc/meminfo")
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kib| kib * 1024);
        let os = read("/etc/os-release")
            .lines()
            .find_map(|line| line.strip_prefix("PRETTY_NAME="))
            .map(|name| name.trim_matches('"').to_owned())
            .unwrap_or_else(|| std::env::consts::OS.to_owned());
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map(|(_, model)| model.trim().to_owned())
            .unwrap_or_default();
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_bytes,
            os,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            cpu_model,
            loadtest_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_machine_has_cores_memory_and_an_os() {
        let machine = Machine::detect();
        assert!(machine.cores >= 1);
        assert!(!machine.os.is_empty());
        if cfg!(target_os = "linux") {
            assert!(machine.memory_bytes > 64 << 20, "{machine:?}");
            assert!(!machine.kernel.is_empty());
        }
    }
}
