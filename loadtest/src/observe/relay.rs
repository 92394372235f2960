//! A delaying TCP relay on loopback: puts a chosen round-trip time between a server and its
//! store (Redis or PostgreSQL: it relays bytes, whatever the protocol), so the cost of a store
//! in another zone can be measured on one machine; and the round trips measured through it.
//!
//! Each direction of each connection has a reader thread that stamps every chunk with its
//! arrival time and a writer thread that forwards it once half the round trip has passed.
//! Plain threads with `std::thread::sleep` (tens of microseconds of jitter on Linux) rather
//! than tokio timers (millisecond resolution), so a 0.25 ms round trip is possible. Order is
//! kept and bandwidth is not limited: only latency is added. The toxiproxy port `noxious` was
//! considered; a relay of this size keeps the injected delay and its precision under our
//! control without another process to manage.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running relay; dropping it stops accepting (open connections end with their peers).
#[derive(Debug)]
pub struct DelayRelay {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DelayRelay {
    /// Listens on a free loopback port and relays every connection to `upstream`, adding
    /// `rtt / 2` in each direction.
    pub fn start(upstream: SocketAddr, rtt: Duration) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = stop.clone();
        let one_way = rtt / 2;
        std::thread::Builder::new().name("authbench-relay".into()).spawn(move || {
            while !accept_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        if let Ok(server) = TcpStream::connect(upstream) {
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            pipe(&client, &server, one_way);
                            pipe(&server, &client, one_way);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        })?;
        Ok(Self { addr, stop })
    }

    /// `redis://` URL of the relay.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// The URL of a PostgreSQL of `pg_process` (its user and database) through the relay.
    pub fn postgres_url(&self) -> String {
        format!("postgres://{}@{}/postgres", authbench_server::pg_process::USER, self.addr)
    }
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Forwards `from` to `to`, each chunk `delay` after it arrived.
fn pipe(from: &TcpStream, to: &TcpStream, delay: Duration) {
    let (Ok(mut reader), Ok(mut writer)) = (from.try_clone(), to.try_clone()) else { return };
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let _ = std::thread::Builder::new().name("authbench-relay-read".into()).spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((Instant::now(), buf.get(..n).unwrap_or_default().to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let _ = std::thread::Builder::new().name("authbench-relay-write".into()).spawn(move || {
        for (arrived, chunk) in rx {
            let due = arrived + delay;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = writer.shutdown(Shutdown::Write);
    });
}

/// Median round trip of `PING` through `addr`, measured with `samples` pings on one connection.
pub fn measure_rtt(addr: SocketAddr, samples: usize) -> Option<Duration> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_nodelay(true).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let mut times = Vec::with_capacity(samples);
    let mut buf = [0u8; 7];
    for _ in 0..samples {
        let started = Instant::now();
        stream.write_all(b"PING\r\n").ok()?;
        stream.read_exact(&mut buf).ok()?;
        times.push(started.elapsed());
    }
    times.sort();
    times.get(times.len() / 2).copied()
}

/// PostgreSQL's SSLRequest: the length 8, then the request code 80877103 (1234 << 16 | 5679).
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// How long a fresh connection is left before its request: time for the relay to accept it and
/// connect on, and for the postmaster to fork the backend that reads it (a fork takes about a
/// millisecond), so that the sample times the round trip alone.
const PG_SETTLE: Duration = Duration::from_millis(20);

/// Median round trip of PostgreSQL's SSLRequest through `addr`, over `samples` connections. The
/// request is the one message a server answers before any authentication, and only once per
/// connection, so each sample opens a connection, lets it settle, sends the request, times
/// until the one-byte answer (`N`: no TLS here; `S` would offer it) and closes.
pub fn measure_pg_rtt(addr: SocketAddr, samples: usize) -> Option<Duration> {
    let mut times = Vec::with_capacity(samples);
    for _ in 0..samples {
        let mut stream = TcpStream::connect(addr).ok()?;
        stream.set_nodelay(true).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        std::thread::sleep(PG_SETTLE);
        let mut answer = [0u8; 1];
        let started = Instant::now();
        stream.write_all(&SSL_REQUEST).ok()?;
        stream.read_exact(&mut answer).ok()?;
        times.push(started.elapsed());
        if !matches!(&answer, b"N" | b"S") {
            return None;
        }
    }
    times.sort();
    times.get(times.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_adds_the_round_trip_it_is_asked_for() {
        let redis = authbench_server::redis_process::RedisServer::start().unwrap();
        let direct = measure_rtt(redis.addr(), 20).unwrap();
        let relay = DelayRelay::start(redis.addr(), Duration::from_millis(2)).unwrap();
        let relayed = measure_rtt(relay.addr, 20).unwrap();
        let added = relayed.saturating_sub(direct);
        assert!(added >= Duration::from_micros(1900) && added < Duration::from_millis(4), "added {added:?}");
    }

    #[test]
    fn relay_adds_the_round_trip_it_is_asked_for_to_postgres() {
        let pg = authbench_server::pg_process::PgServer::start().unwrap_or_else(|e| panic!("{e}"));
        let direct = measure_pg_rtt(pg.addr(), 15).unwrap();
        assert!(direct < Duration::from_millis(1), "loopback to a settled backend: {direct:?}");
        let relay = DelayRelay::start(pg.addr(), Duration::from_millis(2)).unwrap();
        let relayed = measure_pg_rtt(relay.addr, 15).unwrap();
        eprintln!("SSLRequest round trip: {direct:?} direct, {relayed:?} through a 2 ms relay");
        let added = relayed.saturating_sub(direct);
        assert!(added >= Duration::from_micros(1900) && added < Duration::from_millis(4), "added {added:?}");
        assert!(relay.postgres_url().ends_with(&format!("127.0.0.1:{}/postgres", relay.addr.port())));
    }
}
