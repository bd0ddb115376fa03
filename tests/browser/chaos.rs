//! [`ChaosProxy`]: a TCP forwarder in front of the server that the browser loads the app through, so that
//! a test can cut every connection — the page's HTTP and its WebSocket — at once, the way a network drop
//! or a restarted load balancer does, while new connections keep working.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Forwards 127.0.0.1:<port> to the server, byte for byte, both ways.
pub struct ChaosProxy {
    port: u16,
    /// Bumped by [`ChaosProxy::cut_all`]; every connection open at that moment ends.
    cuts: watch::Sender<u64>,
    /// Connections currently forwarded.
    open: Arc<AtomicUsize>,
    accept: JoinHandle<()>,
}

impl ChaosProxy {
    /// Listens on a free 127.0.0.1 port and forwards each connection to `127.0.0.1:upstream_port`.
    pub async fn start(upstream_port: u16) -> ChaosProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy bind");
        let port = listener.local_addr().expect("proxy address").port();
        let (cuts, _) = watch::channel(0u64);
        let open = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn({
            let cuts = cuts.clone();
            let open = open.clone();
            async move {
                while let Ok((mut inbound, _)) = listener.accept().await {
                    let mut cut = cuts.subscribe();
                    cut.mark_unchanged();
                    let open = open.clone();
                    tokio::spawn(async move {
                        let Ok(mut outbound) =
                            TcpStream::connect(("127.0.0.1", upstream_port)).await
                        else {
                            return;
                        };
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        open.fetch_add(1, Ordering::SeqCst);
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = cut.changed() => {}
                        }
                        open.fetch_sub(1, Ordering::SeqCst);
                        // Dropping both sockets closes them: the browser sees its connection end.
                    });
                }
            }
        });
        ChaosProxy {
            port,
            cuts,
            open,
            accept,
        }
    }

    /// The port the browser connects to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections are being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Closes every connection open now (the WebSocket among them); later ones are forwarded as usual.
    /// Returns how many were open.
    pub fn cut_all(&self) -> usize {
        let open = self.open_connections();
        self.cuts.send_modify(|n| *n += 1);
        open
    }
}

impl Drop for ChaosProxy {
    /// Stops accepting and ends every forwarded connection.
    fn drop(&mut self) {
        self.accept.abort();
        self.cuts.send_modify(|n| *n += 1);
    }
}
