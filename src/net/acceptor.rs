//! The acceptor thread: owns the gateway listening socket and hands every
//! accepted connection to a reactor (round robin) through its inbox. It
//! does no protocol work. On fd exhaustion (EMFILE) it pauses 100 ms.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::reactor::shared::{Msg, ReactorHandle};

const LISTENER: Token = Token(0);
const WAKE: Token = Token(1);

pub struct Acceptor {
    poll: Poll,
    listener: TcpListener,
    reactors: Vec<ReactorHandle>,
    next: usize,
}

/// Stops the acceptor from another thread.
#[derive(Clone)]
pub struct AcceptorStop {
    waker: Arc<Waker>,
    flag: Arc<std::sync::atomic::AtomicBool>,
}

impl AcceptorStop {
    pub fn stop(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.waker.wake();
    }
}

impl Acceptor {
    /// Bind `addr`; the real address is returned (port 0 picks a free port).
    pub fn bind(addr: SocketAddr, reactors: Vec<ReactorHandle>) -> io::Result<(Acceptor, SocketAddr, AcceptorStop)> {
        let std_listener = std::net::TcpListener::bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let mut listener = TcpListener::from_std(std_listener);
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
        let stop = AcceptorStop { waker, flag: Arc::new(std::sync::atomic::AtomicBool::new(false)) };
        Ok((Acceptor { poll, listener, reactors, next: 0 }, local, stop))
    }

    pub fn run(mut self, stop: AcceptorStop) {
        let mut events = Events::with_capacity(64);
        loop {
            if stop.flag.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if let Err(e) = self.poll.poll(&mut events, Some(Duration::from_millis(500))) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                log::error!("acceptor poll failed: {e}");
                return;
            }
            loop {
                match self.listener.accept() {
                    Ok((sock, peer)) => {
                        let _ = sock.set_nodelay(true);
                        let i = self.next % self.reactors.len();
                        self.next = self.next.wrapping_add(1);
                        self.reactors[i].send(Msg::Accept(sock, peer));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.raw_os_error() == Some(libc::EMFILE) || e.raw_os_error() == Some(libc::ENFILE) => {
                        log::warn!("accept: out of file descriptors, pausing 100 ms");
                        std::thread::sleep(Duration::from_millis(100));
                        break;
                    }
                    Err(e) => {
                        log::debug!("accept failed: {e}");
                        break;
                    }
                }
            }
        }
    }
}
