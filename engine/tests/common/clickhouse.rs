//! ClickHouse for the clickhouse sink's tests: the shared server the test
//! script starts (127.0.0.1:8123), private servers a fault test can kill, and
//! SQL over HTTP.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{KillOnDrop, free_port, wait_until};

/// The shared server's HTTP URL, or `None` (loudly) when nothing answers
/// there; with `CI=true` a missing server fails the test.
pub fn clickhouse() -> Option<String> {
    let url = std::env::var("PULSE_CLICKHOUSE_URL").unwrap_or_else(|_| "http://127.0.0.1:8123".to_owned());
    let answers = query_result(&url, "SELECT 1").is_ok_and(|text| text.trim() == "1");
    match (answers, std::env::var("CI").as_deref()) {
        (true, _) => Some(url),
        (false, Ok("true")) => panic!("no ClickHouse at {url}: CI requires one (scripts/test.sh starts it)"),
        (false, _) => {
            let warning = format!("\n*** SKIPPED: no ClickHouse at {url}; run ./scripts/test.sh to start one ***\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), warning.as_bytes());
            None
        }
    }
}

/// Runs `sql` on the server at `url` (`http://127.0.0.1:PORT`); the body of
/// the answer, or why there is none.
pub fn query_result(url: &str, sql: &str) -> Result<String, String> {
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect_timeout(
        &address.parse().map_err(|e| format!("{address}: {e}"))?,
        Duration::from_secs(2),
    )
    .map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sql}",
        sql.len()
    );
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(|e| e.to_string())?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").ok_or("no HTTP answer")?;
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    if head.starts_with("HTTP/1.1 200") {
        Ok(body)
    } else {
        Err(format!("{}: {body}", head.lines().next().unwrap_or("")))
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// [`query_result`], panicking on an error.
pub fn query(url: &str, sql: &str) -> String {
    query_result(url, sql).unwrap_or_else(|error| panic!("{sql}: {error}"))
}

/// A ClickHouse of a test's own, on free ports with its data in `dir`, that
/// the test may kill and start again (with its tables).
pub struct PrivateClickHouse {
    dir: PathBuf,
    http_port: u16,
    tcp_port: u16,
    /// Its URL.
    pub url: String,
}

impl PrivateClickHouse {
    /// A server to be started in `dir`.
    pub fn new(dir: &Path) -> Self {
        let http_port = free_port();
        Self {
            dir: dir.to_owned(),
            http_port,
            tcp_port: free_port(),
            url: format!("http://127.0.0.1:{http_port}"),
        }
    }

    /// Starts it (`keep`: with the data of the last start) and waits until it
    /// answers; `None` (loudly) when ClickHouse is not installed, outside CI.
    pub fn start(&self, keep: bool) -> Option<KillOnDrop> {
        let installed = Path::new("/usr/sbin/clickhouse-server").exists()
            || Command::new("sh")
                .args(["-c", "command -v clickhouse-server"])
                .status()
                .is_ok_and(|s| s.success());
        if !installed {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "clickhouse-server is not installed: CI requires it (scripts/test.sh installs it)"
            );
            let _ = std::io::stderr().write_all(b"\n*** SKIPPED: clickhouse-server is not installed ***\n");
            return None;
        }
        let script = super::workspace_dir().join("scripts/clickhouse-server.sh");
        let log = std::fs::File::create(self.dir.join("clickhouse.log")).unwrap();
        let mut command = Command::new(script);
        command
            .args([
                self.http_port.to_string(),
                self.tcp_port.to_string(),
                self.dir.join("data").display().to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(log);
        if keep {
            command.arg("keep");
        }
        let server = KillOnDrop::new(command.spawn().unwrap());
        wait_until("ClickHouse answers", Duration::from_secs(30), || {
            query_result(&self.url, "SELECT 1").is_ok()
        });
        Some(server)
    }
}
