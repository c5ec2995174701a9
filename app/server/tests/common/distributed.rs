//! The distributed system of one test (`METACHAT_E2E_BACKEND=distributed`):
//! one server process per role on Cassandra and Kafka (`user`, `diary`,
//! `matching`, and `mood,relay` together), with the nginx gateway of
//! `deploy/gateway` in front; the test talks to the gateway only.
//!
//! Every process gets the test's own flags, its Cassandra namespace and
//! Kafka topic prefix (so the tests of a run do not see each other), a data
//! directory of its own under the test's, and the same blind-index key and
//! token key files. The user process starts first: it makes the signing
//! key whose public key the others verify tokens with.

use super::{free_port, repo_root, Server};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// The processes of a test's system: name and `--roles`.
pub const PROCESSES: [(&str, &str); 4] = [
    ("user", "user"),
    ("diary", "diary"),
    ("matching", "matching"),
    ("mood", "mood,relay"),
];

/// One role process.
#[derive(Debug)]
struct Proc {
    name: &'static str,
    child: Child,
    port: u16,
}

/// The running processes and gateway of one test.
#[derive(Debug)]
pub struct Cluster {
    procs: Vec<Proc>,
    gateway_dir: PathBuf,
    gateway_addr: String,
    /// `http://127.0.0.1:<port>` of the gateway: the API.
    pub gateway_url: String,
    /// `http://127.0.0.1:<port>` of the user process's metrics listener.
    pub metrics_url: String,
}

async fn wait_healthy(child: &mut Child, port: u16) -> Result<(), String> {
    super::wait_healthy(child, &format!("http://127.0.0.1:{port}/healthz")).await
}

impl Cluster {
    /// Starts the processes and the gateway for `server` (its flags, log,
    /// data directory, namespace); panics with the log's tail when one
    /// does not come up.
    pub async fn start(server: &Server) -> Cluster {
        let data = server.data_dir();
        let user_key = data.join("user/token.key");
        let mut cluster = Cluster {
            procs: Vec::new(),
            gateway_dir: server.dir.path().join("gateway"),
            gateway_addr: String::new(),
            gateway_url: String::new(),
            metrics_url: String::new(),
        };
        let mut ports = Vec::new();
        for (name, roles) in PROCESSES {
            let port = free_port();
            let metrics = free_port();
            let dir = data.join(name);
            std::fs::create_dir_all(&dir).expect("create a process data directory");
            let mut cmd = server.command(
                port,
                &dir,
                &format!("{name} (--roles {roles}) on port {port}"),
            );
            cmd.env("METACHAT_METRICS_ADDR", format!("127.0.0.1:{metrics}"))
                .args(["--roles", roles, "--instance", "0"])
                .arg("--index-key-file")
                .arg(data.join("index.key"))
                .arg("--token-key-file")
                .arg(&user_key);
            if name != "user" {
                cmd.arg("--token-public-key-file")
                    .arg(data.join("user/token.key.pub"));
            }
            cmd.args(&server.config.args);
            let mut child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", super::BIN));
            if name == "user" {
                // The others need its public key file.
                if let Err(e) = wait_healthy(&mut child, port).await {
                    let _ = child.kill();
                    panic!(
                        "the user process did not come up: {e}\n--- log ---\n{}",
                        server.log_tail(60)
                    );
                }
                cluster.metrics_url = format!("http://127.0.0.1:{metrics}");
            }
            cluster.procs.push(Proc { name, child, port });
            ports.push((name, port));
        }
        for (proc, (_, port)) in cluster.procs.iter_mut().zip(&ports) {
            if let Err(e) = wait_healthy(&mut proc.child, *port).await {
                let name = proc.name;
                let tail = server.log_tail(60);
                cluster.kill();
                panic!("the {name} process did not come up: {e}\n--- log ---\n{tail}");
            }
        }
        let upstream = |name: &str| {
            let port = ports
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, p)| *p)
                .expect("a port");
            format!("127.0.0.1:{port}")
        };
        let gateway_port = free_port();
        cluster.gateway_addr = format!("127.0.0.1:{gateway_port}");
        let out = Command::new(repo_root().join("scripts/gateway"))
            .arg("start")
            .env("METACHAT_GATEWAY_ADDR", &cluster.gateway_addr)
            .env("METACHAT_GATEWAY_RUN_DIR", &cluster.gateway_dir)
            .env("METACHAT_USER_UPSTREAMS", upstream("user"))
            .env("METACHAT_DIARY_UPSTREAMS", upstream("diary"))
            .env("METACHAT_MATCHING_UPSTREAMS", upstream("matching"))
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/gateway start");
        if !out.status.success() {
            cluster.kill();
            panic!(
                "scripts/gateway start failed: {}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        cluster.gateway_url = format!("http://{}", cluster.gateway_addr);
        cluster
    }

    /// `http://127.0.0.1:<port>` of each role process.
    pub fn process_urls(&self) -> Vec<String> {
        self.procs
            .iter()
            .map(|p| format!("http://127.0.0.1:{}", p.port))
            .collect()
    }

    /// SIGTERMs every process and the gateway and waits (bounded) for them
    /// to exit; the user process's exit status, or an error naming one that
    /// did not exit zero in time.
    pub async fn sigterm(mut self, within: Duration) -> Result<ExitStatus, String> {
        self.stop_gateway();
        for p in &self.procs {
            let pid =
                nix::unistd::Pid::from_raw(i32::try_from(p.child.id()).expect("pid fits i32"));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        }
        let deadline = std::time::Instant::now() + within;
        let mut user = None;
        let mut failed = None;
        for p in &mut self.procs {
            loop {
                if let Some(status) = p.child.try_wait().expect("poll a process") {
                    if p.name == "user" {
                        user = Some(status);
                    } else if !status.success() && failed.is_none() {
                        failed = Some(format!("the {} process exited with {status}", p.name));
                    }
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(format!(
                        "the {} process did not exit within {within:?} of SIGTERM",
                        p.name
                    ));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        self.procs.clear();
        match failed {
            Some(e) => Err(e),
            None => Ok(user.expect("a user process")),
        }
    }

    fn stop_gateway(&self) {
        let _ = Command::new(repo_root().join("scripts/gateway"))
            .arg("stop")
            .env("METACHAT_GATEWAY_ADDR", &self.gateway_addr)
            .env("METACHAT_GATEWAY_RUN_DIR", &self.gateway_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The user process's id.
    pub fn pid(&self) -> u32 {
        self.procs
            .iter()
            .find(|p| p.name == "user")
            .map(|p| p.child.id())
            .expect("a user process")
    }

    /// SIGKILLs every process and stops the gateway; the user process's
    /// exit status.
    pub fn kill(mut self) -> ExitStatus {
        self.stop_gateway();
        let mut user = None;
        for p in &mut self.procs {
            let _ = p.child.kill();
            let status = p.child.wait();
            if p.name == "user" {
                user = status.ok();
            }
        }
        self.procs.clear();
        user.unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            ExitStatus::from_raw(9)
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }
}
