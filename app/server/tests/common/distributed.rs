//! The distributed system of one test (`METACHAT_E2E_BACKEND=distributed`):
//! one server process per role on Cassandra and Kafka (by default `user`,
//! `diary`, `matching`, and `mood,relay` together; the fault tests run the
//! relay alone and two mood workers), with the nginx gateway of
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

/// The processes of a test's system by default: name and `--roles`.
pub const PROCESSES: [(&str, &str); 4] = [
    ("user", "user"),
    ("diary", "diary"),
    ("matching", "matching"),
    ("mood", "mood,relay"),
];

/// The processes of the fault tests: the relay alone and two mood workers
/// (`--instance` 1 and 2, one consumer group), so each can be killed alone.
pub const SCALED_OUT: [(&str, &str); 6] = [
    ("user", "user"),
    ("diary", "diary"),
    ("matching", "matching"),
    ("relay", "relay"),
    ("mood-1", "mood"),
    ("mood-2", "mood"),
];

/// One role process.
#[derive(Debug)]
struct Proc {
    name: &'static str,
    roles: &'static str,
    /// `None` while it is stopped ([`Cluster::kill_process`]).
    child: Option<Child>,
    port: u16,
    metrics: u16,
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

/// The `--instance` of a process: the number after its name's last `-`
/// (`mood-2` is instance 2), else 0.
fn instance(name: &str) -> &str {
    name.rsplit_once('-').map_or("0", |(_, n)| n)
}

/// Spawns one role process of `server`'s system.
fn spawn(server: &Server, p: &Proc) -> Child {
    let data = server.data_dir();
    let dir = data.join(p.name);
    std::fs::create_dir_all(&dir).expect("create a process data directory");
    let mut cmd = server.command(
        p.port,
        &dir,
        &format!("{} (--roles {}) on port {}", p.name, p.roles, p.port),
    );
    cmd.env("METACHAT_METRICS_ADDR", format!("127.0.0.1:{}", p.metrics))
        .args(["--roles", p.roles, "--instance", instance(p.name)])
        .arg("--index-key-file")
        .arg(data.join("index.key"))
        .arg("--token-key-file")
        .arg(data.join("user/token.key"));
    if p.name != "user" {
        cmd.arg("--token-public-key-file")
            .arg(data.join("user/token.key.pub"));
    }
    cmd.args(&server.config.args);
    cmd.envs(server.config.env.iter().map(|(k, v)| (k, v)));
    cmd.spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", super::BIN))
}

impl Cluster {
    /// Starts the processes (`server`'s `ServerConfig::processes`) and the
    /// gateway for `server` (its flags, log, data directory, namespace);
    /// panics with the log's tail when one does not come up.
    pub async fn start(server: &Server) -> Cluster {
        let mut cluster = Cluster {
            procs: Vec::new(),
            gateway_dir: server.dir.path().join("gateway"),
            gateway_addr: String::new(),
            gateway_url: String::new(),
            metrics_url: String::new(),
        };
        for &(name, roles) in server.config.processes {
            let mut p = Proc {
                name,
                roles,
                child: None,
                port: free_port(),
                metrics: free_port(),
            };
            let mut child = spawn(server, &p);
            if name == "user" {
                // The others need its public key file.
                if let Err(e) = wait_healthy(&mut child, p.port).await {
                    let _ = child.kill();
                    panic!(
                        "the user process did not come up: {e}\n--- log ---\n{}",
                        server.log_tail(60)
                    );
                }
                cluster.metrics_url = format!("http://127.0.0.1:{}", p.metrics);
            }
            p.child = Some(child);
            cluster.procs.push(p);
        }
        for i in 0..cluster.procs.len() {
            let proc = &mut cluster.procs[i];
            let port = proc.port;
            let child = proc.child.as_mut().expect("just spawned");
            if let Err(e) = wait_healthy(child, port).await {
                let name = proc.name;
                let tail = server.log_tail(60);
                cluster.kill();
                panic!("the {name} process did not come up: {e}\n--- log ---\n{tail}");
            }
        }
        let upstream = |name: &str| {
            let port = cluster
                .procs
                .iter()
                .find(|p| p.name == name)
                .map(|p| p.port)
                .expect("a port");
            format!("127.0.0.1:{port}")
        };
        let (user, diary, matching) = (upstream("user"), upstream("diary"), upstream("matching"));
        let gateway_port = free_port();
        cluster.gateway_addr = format!("127.0.0.1:{gateway_port}");
        let out = Command::new(repo_root().join("scripts/gateway"))
            .arg("start")
            .env("METACHAT_GATEWAY_ADDR", &cluster.gateway_addr)
            .env("METACHAT_GATEWAY_RUN_DIR", &cluster.gateway_dir)
            .env("METACHAT_USER_UPSTREAMS", user)
            .env("METACHAT_DIARY_UPSTREAMS", diary)
            .env("METACHAT_MATCHING_UPSTREAMS", matching)
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

    fn proc_mut(&mut self, name: &str) -> &mut Proc {
        self.procs
            .iter_mut()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
    }

    /// SIGKILLs one process (it dies at once, wherever it is).
    pub fn kill_process(&mut self, name: &str) {
        let p = self.proc_mut(name);
        let mut child = p
            .child
            .take()
            .unwrap_or_else(|| panic!("{name} is not running"));
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts one more process (name, `--roles`) on fresh ports and waits
    /// for `/healthz`; the gateway does not route to it.
    pub async fn add_process(&mut self, server: &Server, name: &'static str, roles: &'static str) {
        self.procs.push(Proc {
            name,
            roles,
            child: None,
            port: free_port(),
            metrics: free_port(),
        });
        self.restart_process(server, name).await;
    }

    /// Starts a stopped process again on its port and waits for `/healthz`.
    pub async fn restart_process(&mut self, server: &Server, name: &str) {
        let p = self.proc_mut(name);
        assert!(p.child.is_none(), "{name} is still running");
        let mut child = spawn(server, p);
        if let Err(e) = wait_healthy(&mut child, p.port).await {
            let _ = child.kill();
            panic!(
                "{name} did not come back: {e}\n--- log ---\n{}",
                server.log_tail(60)
            );
        }
        p.child = Some(child);
    }

    fn proc(&self, name: &str) -> &Proc {
        self.procs
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("no process named {name}"))
    }

    /// `http://127.0.0.1:<port>` of the named process's API listener.
    pub fn process_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.proc(name).port)
    }

    /// `http://127.0.0.1:<port>` of the named process's metrics listener.
    pub fn metrics_url_of(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.proc(name).metrics)
    }

    /// `http://127.0.0.1:<port>` of each role process.
    pub fn process_urls(&self) -> Vec<String> {
        self.procs
            .iter()
            .filter(|p| p.child.is_some())
            .map(|p| format!("http://127.0.0.1:{}", p.port))
            .collect()
    }

    /// SIGTERMs every process and the gateway and waits (bounded) for them
    /// to exit; the user process's exit status, or an error naming one that
    /// did not exit zero in time.
    pub async fn sigterm(mut self, within: Duration) -> Result<ExitStatus, String> {
        self.stop_gateway();
        for child in self.procs.iter().filter_map(|p| p.child.as_ref()) {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid fits i32"));
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("send SIGTERM");
        }
        let deadline = std::time::Instant::now() + within;
        let mut user = None;
        let mut failed = None;
        for p in &mut self.procs {
            let Some(child) = p.child.as_mut() else {
                continue;
            };
            loop {
                if let Some(status) = child.try_wait().expect("poll a process") {
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
            .and_then(|p| p.child.as_ref())
            .map(Child::id)
            .expect("a running user process")
    }

    /// SIGKILLs every process and stops the gateway; the user process's
    /// exit status.
    pub fn kill(mut self) -> ExitStatus {
        self.stop_gateway();
        let mut user = None;
        for p in &mut self.procs {
            let Some(mut child) = p.child.take() else {
                continue;
            };
            let _ = child.kill();
            let status = child.wait();
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
        for child in self.procs.iter_mut().filter_map(|p| p.child.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
