//! HAProxy (Debian's `haproxy`, installed by `scripts/install-test-deps.sh`) in front of registry replicas on
//! 127.0.0.1, with a generated configuration, killed on drop: HTTP mode, round-robin on every request, health
//! checks on `/v2/` (401 is a healthy answer: the registry is up and asks for credentials), and a retry on
//! the other replica when a connection to one is refused.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::serve::free_port;

/// The response header naming the replica (`r0`, `r1`, ...) HAProxy sent a request to.
pub const SERVED_BY: &str = "x-regbridge-replica";

/// How often HAProxy checks each replica; two failed checks mark it down.
const CHECK_INTERVAL_MS: u64 = 200;

/// A running HAProxy.
pub struct Haproxy {
    child: Child,
    log: PathBuf,
    /// Where clients reach the replicas: `127.0.0.1:PORT`.
    pub addr: String,
    /// The statistics page, as CSV.
    stats_url: String,
}

/// One replica as HAProxy's statistics see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStats {
    /// `r0`, `r1`, ...
    pub name: String,
    /// `UP`, `DOWN`, ... (with a transition, e.g. `UP 1/2`).
    pub status: String,
    /// Requests sent to it so far (`stot`: with `http-server-close` every request is a session).
    pub requests: u64,
}

/// The configuration for `servers` (`host:port` each, named `r0`, `r1`, ... in order).
///
/// `option http-server-close` closes the connection to the replica after each response, so every request
/// of a kept-alive client connection is balanced anew (what a client sees from a cloud load balancer).
/// `retries` with `redispatch` sends a request whose connection was refused (a killed replica not yet
/// marked down) to the other replica; a request that reached a replica that then died is not replayed (its
/// body is gone), the client gets a 502 and retries, as registry clients do.
pub fn config(listen: &str, stats: &str, servers: &[&str]) -> String {
    let mut text = format!(
        "global\n    maxconn 1000\n\n\
         defaults\n    mode http\n    option http-server-close\n    retries 3\n    option redispatch 1\n\
         \x20   timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n\
         \x20   timeout http-request 30s\n    timeout queue 10s\n    timeout check 1s\n\n\
         frontend registry\n    bind {listen}\n    default_backend replicas\n\n\
         frontend stats\n    bind {stats}\n    stats enable\n    stats uri /stats\n\n\
         backend replicas\n    balance roundrobin\n    option httpchk\n\
         \x20   http-check send meth GET uri /v2/ ver HTTP/1.1 hdr Host localhost\n\
         \x20   http-check expect status 401\n\
         \x20   http-response set-header {SERVED_BY} %[srv_name]\n"
    );
    for (i, server) in servers.iter().enumerate() {
        text.push_str(&format!("    server r{i} {server} check inter {CHECK_INTERVAL_MS}ms fall 2 rise 2\n"));
    }
    text
}

fn binary() -> PathBuf {
    let found = ["/usr/sbin/haproxy", "/usr/bin/haproxy"].into_iter().map(PathBuf::from).find(|p| p.exists());
    found.expect("haproxy is missing: run scripts/install-test-deps.sh (as root; Debian package haproxy)")
}

impl Haproxy {
    /// Starts HAProxy in `dir` (its configuration and log) in front of `servers`, and waits (at most 20 s)
    /// until it listens and sees every server up.
    pub async fn start(dir: &Path, servers: &[&str]) -> Self {
        let (addr, stats) = (format!("127.0.0.1:{}", free_port()), format!("127.0.0.1:{}", free_port()));
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, config(&addr, &stats, servers)).expect("write haproxy.cfg");
        let log = dir.join("haproxy.log");
        let check = Command::new(binary()).arg("-c").arg("-f").arg(&path).output().expect("run haproxy -c");
        assert!(check.status.success(), "haproxy.cfg is invalid: {}", String::from_utf8_lossy(&check.stderr));
        // -db: stay in the foreground, so the child is HAProxy itself and dropping it stops it.
        let child = Command::new(binary())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("haproxy log"))
            .spawn()
            .expect("start haproxy");
        let mut proxy = Self { child, log, addr, stats_url: format!("http://{stats}/stats;csv") };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = proxy.child.try_wait().expect("try_wait") {
                panic!("haproxy exited with {status}:\n{}", proxy.log());
            }
            if let Some(all) = proxy.try_servers().await
                && all.len() == servers.len()
                && all.iter().all(|s| s.status == "UP")
            {
                return proxy;
            }
            assert!(Instant::now() < deadline, "haproxy did not see every server up within 20 s:\n{}", proxy.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// HAProxy's own log (start-up warnings, servers going down and up).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The replicas' statistics.
    pub async fn servers(&self) -> Vec<ServerStats> {
        self.try_servers().await.expect("haproxy statistics")
    }

    async fn try_servers(&self) -> Option<Vec<ServerStats>> {
        let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build().ok()?;
        let text = client.get(&self.stats_url).send().await.ok()?.text().await.ok()?;
        let mut lines = text.lines();
        let columns: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let column = |name: &str| columns.iter().position(|c| *c == name);
        let (px, sv, status, stot) = (column("pxname")?, column("svname")?, column("status")?, column("stot")?);
        let servers = lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > stot && f[px] == "replicas" && f[sv] != "BACKEND")
            .map(|f| ServerStats {
                name: f[sv].to_owned(),
                status: f[status].to_owned(),
                requests: f[stot].parse().unwrap_or(0),
            })
            .collect();
        Some(servers)
    }

    /// Waits (at most 10 s) until HAProxy reports server `name` with a status starting with `status`.
    pub async fn wait_status(&self, name: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let servers = self.servers().await;
            if servers.iter().any(|s| s.name == name && s.status.starts_with(status)) {
                return;
            }
            assert!(Instant::now() < deadline, "haproxy did not mark {name} {status} within 10 s: {servers:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
