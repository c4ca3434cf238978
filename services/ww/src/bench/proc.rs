//! Child processes a benchmark starts (the service under test, the ceiling) and stops.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// A child `ww` process, killed when dropped.
pub struct ChildProc {
    child: Child,
    pub addr: SocketAddr,
}

/// A free port on 127.0.0.1 (bound then released).
pub fn free_addr() -> anyhow::Result<SocketAddr> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

impl ChildProc {
    /// Starts this binary with `args` and `env`, then waits for `ready_path` to answer 200.
    pub async fn start(
        args: &[String],
        env: &[(String, String)],
        addr: SocketAddr,
        ready_path: &str,
    ) -> anyhow::Result<Self> {
        Self::start_exe(&std::env::current_exe()?, args, env, addr, ready_path).await
    }

    /// Starts the `ww` binary at `exe` (tests run it from their own binary).
    pub async fn start_exe(
        exe: &std::path::Path,
        args: &[String],
        env: &[(String, String)],
        addr: SocketAddr,
        ready_path: &str,
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(exe);
        cmd.args(args).kill_on_drop(true).stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("cannot start child process")?;
        let mut proc = ChildProc { child, addr };
        proc.wait_ready(ready_path).await?;
        Ok(proc)
    }

    async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!("child exited before it was ready: {status}");
            }
            if let Ok((200, _)) = super::load::get_once(self.addr, path, None).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!("child at {} not ready after 60s", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The process id (none once it has exited).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends `signal` (a `kill` name such as `STOP` or `CONT`) to the process.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id().context("the child has exited")?;
        let status = std::process::Command::new("kill").args([format!("-{signal}"), pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
        Ok(())
    }

    /// SIGKILL: no drain, no final commit, no lease released — a crash.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// SIGTERM, then waits (bounded) for the process to drain and exit.
    pub async fn terminate(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the child has exited")?;
        let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("no exit 30s after SIGTERM")??;
        Ok(())
    }
}
