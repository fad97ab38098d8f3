//! The benchmark's floor: a process that sits where Plugboard sits and only copies bytes.
//!
//! It parses no HTTP and swaps no token: each connection from the load generator gets a
//! connection to the emulator, and one thread running tokio's event loop (Plugboard's runtime,
//! without its HTTP) copies whatever arrives on either to the other. Per exchange that is one
//! read and one write each way, the least any process in the path can do. Whatever throughput
//! and latency the load generator loses through it, every proxy loses at least as much on the
//! same machine, so it tells the proxy's own cost apart from the cost of having a third process
//! and two more loopback hops on two shared cores.
//!
//! Thread-per-connection blocking copies were tried too: the same at concurrency 1, but at 16
//! their context switches cost more than the event loop (38 % of direct throughput kept for
//! `/v1.0/me` instead of 48 %).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use tokio::io::copy_bidirectional_with_sizes;
use tokio::net::{TcpListener, TcpStream};

/// The argument that makes the benchmark's own executable run as the relay.
const RELAY_MODE: &str = "relay";
/// Each direction's buffer.
const BUFFER: usize = 64 * 1024;

/// A relay in its own process, like Plugboard, so that its CPU is measured apart and the
/// scheduler sees three processes in the proxied case.
pub struct Relay {
    pub child: Child,
    pub url: String,
}

impl Relay {
    /// Starts this executable as a relay to `upstream` (`host:port`) and waits until it
    /// listens.
    pub fn start(upstream: &str) -> Relay {
        let mut child = Command::new(std::env::current_exe().expect("the benchmark's own path"))
            .args([RELAY_MODE, upstream])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the relay");
        let mut port = String::new();
        BufReader::new(child.stdout.take().expect("the relay's stdout"))
            .read_line(&mut port)
            .expect("reading the relay's port");
        Relay {
            child,
            url: format!("http://127.0.0.1:{}", port.trim()),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// When this process was started as a relay (`<exe> relay HOST:PORT`), serves until killed and
/// never returns; otherwise returns at once.
pub fn serve_if_asked() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some(RELAY_MODE) {
        return;
    }
    let upstream = args.next().expect("usage: bench_proxy relay HOST:PORT");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("the relay's runtime")
        .block_on(relay(upstream));
}

async fn relay(upstream: String) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the relay");
    // The parent reads the port from the first line.
    println!(
        "{}",
        listener.local_addr().expect("the relay's address").port()
    );
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let Ok(mut server) = TcpStream::connect(&upstream).await else {
            continue;
        };
        for stream in [&client, &server] {
            let _ = stream.set_nodelay(true);
        }
        tokio::spawn(async move {
            // Buffers large enough for a page of 100 people in a few reads.
            let _ = copy_bidirectional_with_sizes(&mut client, &mut server, BUFFER, BUFFER).await;
        });
    }
}

/// `http://host:port` → `host:port`, the form the relay connects to.
pub fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.trim_end_matches('/')
}
