//! Private backend processes for fault tests, on their own ports (never the shared
//! instances): Redis servers and tansu brokers the tests kill (SIGKILL, on drop) and
//! start again.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed (SIGKILL) when dropped.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn binary(name: &str) -> Option<String> {
    let home = std::env::var("HOME").unwrap_or_default();
    let candidates =
        [format!("{home}/.cargo/bin/{name}"), format!("/usr/bin/{name}"), format!("/usr/local/bin/{name}")];
    candidates.into_iter().find(|p| Path::new(p).exists())
}

pub fn wait_port(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "port {port} did not open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private Redis server (nothing kept on disk unless `args` say so).
pub struct RedisServer {
    pub port: u16,
    _proc: Proc,
}

impl RedisServer {
    pub fn start(args: &[&str]) -> Self {
        Self::start_on(free_port(), args)
    }

    pub fn start_on(port: u16, args: &[&str]) -> Self {
        let bin = binary("redis-server").expect("redis-server is installed by scripts/test.sh");
        let mut all: Vec<String> =
            ["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
                .iter()
                .map(|s| (*s).to_owned())
                .collect();
        all.extend(args.iter().map(|a| (*a).to_owned()));
        let child = Command::new(bin).args(&all).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        wait_port(port);
        Self { port, _proc: Proc(child) }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A private tansu broker keeping its log under a folder of the test's.
pub struct Tansu {
    pub port: u16,
    _proc: Proc,
}

impl Tansu {
    pub fn start(dir: &Path) -> Self {
        Self::start_on(free_port(), dir)
    }

    pub fn start_on(port: u16, dir: &Path) -> Self {
        let bin = binary("tansu").expect("tansu is installed by scripts/test.sh");
        let url = format!("tcp://127.0.0.1:{port}");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("tansu.log")).unwrap();
        let child = Command::new(bin)
            .current_dir(dir)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "sqlite://tansu.db",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        wait_port(port);
        Self { port, _proc: Proc(child) }
    }

    /// The first panic tansu logged under `dir`, if any (a broken broker, not a fault of ours).
    pub fn panic_in(dir: &Path) -> Option<String> {
        let log = std::fs::read_to_string(dir.join("tansu.log")).unwrap_or_default();
        log.lines().find(|l| l.contains("panicked at")).map(str::to_owned)
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
