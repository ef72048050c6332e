//! Free local ports for a cluster's REST, RPC and blob servers.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;

use serde::{Deserialize, Serialize};

/// The fixed ports of one cluster's JobManager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    /// `rest.port`: REST API and web UI.
    pub rest: u16,
    /// `jobmanager.rpc.port`.
    pub rpc: u16,
    /// `blob.server.port`.
    pub blob: u16,
}

/// Lowest port we hand out: clear of well-known services and of Flink's own defaults
/// (6123, 8081).
const LOWEST: u16 = 10_000;

impl Ports {
    /// Three distinct ports that are free now, drawn below the kernel's ephemeral range. Every
    /// port Flink binds as `0` (TaskManager RPC and data ports, metrics) comes from that range,
    /// so a JVM starting at the same time cannot take ours. Another program still could before
    /// Flink binds it; the JobManager then exits with a `BindException`, which `observe`
    /// reports, and deploying again picks new ports.
    pub fn pick() -> std::io::Result<Ports> {
        // All three stay bound until all are chosen, so they are distinct.
        let listeners = [bind_free()?, bind_free()?, bind_free()?];
        let port = |l: &TcpListener| l.local_addr().map(|a| a.port());
        Ok(Ports {
            rest: port(&listeners[0])?,
            rpc: port(&listeners[1])?,
            blob: port(&listeners[2])?,
        })
    }
}

fn bind_free() -> std::io::Result<TcpListener> {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    if ephemeral_start > LOWEST + 1_000 {
        let span = u64::from(ephemeral_start - LOWEST);
        let random = RandomState::new();
        for i in 0..200_u32 {
            let offset = u16::try_from(random.hash_one(i) % span).unwrap_or(0);
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", LOWEST + offset)) {
                return Ok(listener);
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_three_distinct_bindable_ports() {
        let ports = Ports::pick().unwrap();
        assert_ne!(ports.rest, ports.rpc);
        assert_ne!(ports.rpc, ports.blob);
        assert_ne!(ports.rest, ports.blob);
        for port in [ports.rest, ports.rpc, ports.blob] {
            assert!(port >= LOWEST, "{port}");
            assert_bindable(port);
        }
    }

    /// Binds `port`, polling for a while: a process another test spawns at the moment
    /// `pick` still holds its listeners inherits them until it execs, so the port can stay
    /// taken for a moment after `pick` returns.
    fn assert_bindable(port: u16) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(_) => return,
                Err(e) if std::time::Instant::now() >= deadline => {
                    panic!("port {port} picked as free stayed taken: {e}")
                }
                Err(_) => std::thread::yield_now(),
            }
        }
    }
}
