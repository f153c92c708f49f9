//! Process resources: this process's open-file limit (`RLIMIT_NOFILE`; every
//! WebSocket client is a socket, so thousands of clients need the soft limit
//! raised to the hard one) and CPU time, through libc; and another process's
//! CPU time and resident memory from `/proc`, to tell how the machine was
//! shared between the server and the load generator.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

/// The open-file limits of this process after [`raise_to_hard_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NofileLimit {
    /// The limit in force: how many descriptors this process may hold.
    pub soft: u64,
    /// The ceiling an unprivileged process may raise the soft limit to.
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns both.
pub fn raise_to_hard_limit() -> io::Result<NofileLimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Linux refuses an unlimited soft limit for descriptors: stop at the kernel's ceiling then.
    let target = if limit.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        limit.rlim_max
    };
    if limit.rlim_cur < target {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(NofileLimit {
        soft: limit.rlim_cur,
        hard: limit.rlim_max,
    })
}

/// CPU time (user + system) used so far by every thread of this process.
pub fn cpu_time() -> io::Result<Duration> {
    // SAFETY: an all-zero `rusage` is a valid value of the plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable `rusage` for the duration of the call.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let seconds = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

/// CPU time and resident memory of a process, read from `/proc/PID/{stat,status}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessSample {
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Resident set size (`VmRSS`), in bytes.
    pub rss_bytes: u64,
}

impl ProcessSample {
    /// Reads the sample of process `pid` (Linux only).
    pub fn read(pid: u32) -> io::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("/proc/{pid}: no {what}"));
        // The command name may hold spaces and parentheses: fields are counted after its last `)`.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .ok_or_else(|| invalid("stat"))?
            .1
            .split_whitespace()
            .collect();
        let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<u64>().ok());
        // utime and stime are fields 14 and 15 of stat(5); the first after `)` is field 3.
        let (user, system) = ticks(11).zip(ticks(12)).ok_or_else(|| invalid("utime/stime"))?;
        let rss_kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| invalid("VmRSS"))?;
        Ok(Self {
            cpu: Duration::from_secs_f64((user + system) as f64 / clock_ticks_per_second() as f64),
            rss_bytes: rss_kib * 1024,
        })
    }
}

/// The unit of `/proc/PID/stat` times (`USER_HZ`, 100 on every mainstream Linux).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: `sysconf` only reads a configuration value.
    match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        ticks if ticks > 0 => ticks as u64,
        _ => 100,
    }
}

impl NofileLimit {
    /// Fails, saying how to fix it, when fewer than `needed` descriptors may be open.
    pub fn ensure(&self, needed: u64) -> anyhow::Result<()> {
        if self.soft >= needed {
            return Ok(());
        }
        anyhow::bail!(
            "the open-file limit is {} (hard limit {}), but this run needs at least {needed}: \
             raise the hard limit (`ulimit -Hn` as root, or `nofile` in /etc/security/limits.conf) \
             or run fewer clients",
            self.soft,
            self.hard
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_one() {
        let limit = raise_to_hard_limit().unwrap();
        assert!(limit.soft == limit.hard || limit.hard == libc::RLIM_INFINITY);
        assert!(limit.ensure(limit.soft).is_ok());
        let error = limit.ensure(limit.soft + 1).unwrap_err().to_string();
        assert!(error.contains("open-file limit"), "{error}");
    }

    #[test]
    fn cpu_time_grows_with_work() {
        let before = cpu_time().unwrap();
        let mut x = 0u64;
        // Spin for CPU time, not wall time: on a loaded machine 30 ms of wall
        // time can be under the 10 ms tick that /proc counts CPU time in.
        let spin = std::time::Instant::now();
        while cpu_time().unwrap() < before + Duration::from_millis(100) && spin.elapsed() < Duration::from_secs(30) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
        }
        assert!(cpu_time().unwrap() > before);
        let sample = ProcessSample::read(std::process::id()).unwrap();
        assert!(sample.cpu > Duration::ZERO && sample.rss_bytes > 0, "{sample:?}");
        assert!(ProcessSample::read(u32::MAX).is_err());
    }
}
