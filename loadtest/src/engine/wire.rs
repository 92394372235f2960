//! The engine's HTTP/1.1 on the wire: a request written as bytes prepared once, the answer read
//! and parsed (httparse) on the same task, as wrk does.
//!
//! The harness's own calls and the revocation probers use hyper (`http1.rs`); the engine does
//! not, because hyper's client runs each connection as a task of its own and hands requests and
//! answers across channels: four task polls per request where this takes one, which cost the
//! engine its lead over wrk against servers that answer in a few microseconds.
//!
//! What it reads: a status line, headers (at most [`MAX_HEADERS`], the head within
//! [`MAX_HEAD`]), and a body framed by `content-length`, by chunked encoding, or by the end of
//! the connection. Keep-alive unless the server says `connection: close`.

use std::net::SocketAddr;

use bytes::{Buf, Bytes, BytesMut};
use hyper::header::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use authbench_server::http::REFRESHED_TOKEN;

/// Headers an answer may carry.
const MAX_HEADERS: usize = 32;
/// Bytes an answer's head may take.
const MAX_HEAD: usize = 64 * 1024;
/// Room made for each read.
const READ_SIZE: usize = 8 * 1024;
/// Most bytes of a body kept when one is asked for (a login's or an error's JSON is far less).
const MAX_KEPT_BODY: usize = 16 * 1024;

/// What to keep of an answer beyond its status and `X-Refreshed-Token`.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Want {
    /// `Server-Timing` (login scenario).
    pub(super) timing: bool,
    /// The body, when framed by `content-length` (a client reading a token or an error).
    pub(super) body: bool,
}

/// One keep-alive connection, opened on first use and again after a failure or a close.
#[derive(Debug)]
pub(super) struct Wire {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: BytesMut,
}

/// What the engine keeps of an answer.
#[derive(Debug)]
pub(super) struct Reply {
    pub(super) status: u16,
    /// `X-Refreshed-Token`, as an `Authorization` value.
    pub(super) refreshed: Option<HeaderValue>,
    /// `Server-Timing`, when asked for.
    pub(super) timing: Option<String>,
    /// `Retry-After` in seconds (a 503 for overload carries it).
    pub(super) retry_after: Option<u64>,
    /// The body (at most [`MAX_KEPT_BODY`] bytes), when asked for.
    pub(super) body: Option<Bytes>,
}

/// How the body of an answer ends.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

impl Wire {
    pub(super) fn new(addr: SocketAddr) -> Self {
        Self { addr, stream: None, buf: BytesMut::with_capacity(READ_SIZE) }
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Opens the connection, unless it is open.
    pub(super) async fn connect(&mut self) -> std::io::Result<()> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buf.clear();
        }
        Ok(())
    }

    /// Drops the connection (a request on it failed or timed out: a late answer must not be read
    /// as the next one's).
    pub(super) fn reset(&mut self) {
        self.stream = None;
        self.buf.clear();
    }

    /// Writes `request` and reads its whole answer. On an error the connection is dropped.
    pub(super) async fn exchange(&mut self, request: &[u8], want: Want) -> std::io::Result<Reply> {
        let result = self.exchange_inner(request, want).await;
        if result.is_err() {
            self.reset();
        }
        result
    }

    async fn exchange_inner(&mut self, request: &[u8], want: Want) -> std::io::Result<Reply> {
        self.connect().await?;
        let Some(stream) = self.stream.as_mut() else { return Err(invalid("not connected")) };
        stream.write_all(request).await?;
        let (mut reply, framing, close) = loop {
            match parse_head(&self.buf, want.timing)? {
                // An interim answer (100 Continue, 103 Early Hints): the final one follows.
                Some((reply, head_len, ..)) if (100..200).contains(&reply.status) && reply.status != 101 => {
                    self.buf.advance(head_len);
                }
                Some((reply, head_len, framing, close)) => {
                    self.buf.advance(head_len);
                    break (reply, framing, close);
                }
                None => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(invalid("answer head too large"));
                    }
                    fill(stream, &mut self.buf).await?;
                }
            }
        };
        match framing {
            Framing::Length(mut left) => {
                // Dropped as it arrives (the engine needs the answer's end, not its body),
                // unless asked for.
                let mut kept = want.body.then(|| BytesMut::with_capacity(left.min(MAX_KEPT_BODY)));
                loop {
                    let here = left.min(self.buf.len());
                    if let Some(kept) = kept.as_mut() {
                        let room = MAX_KEPT_BODY.saturating_sub(kept.len()).min(here);
                        kept.extend_from_slice(self.buf.get(..room).unwrap_or_default());
                    }
                    self.buf.advance(here);
                    left -= here;
                    if left == 0 {
                        break;
                    }
                    fill(stream, &mut self.buf).await?;
                }
                reply.body = kept.map(BytesMut::freeze);
            }
            Framing::Chunked => loop {
                match chunk(&self.buf)? {
                    Some((used, last)) => {
                        self.buf.advance(used);
                        if last {
                            break;
                        }
                    }
                    None => fill(stream, &mut self.buf).await?,
                }
            },
            Framing::UntilClose => loop {
                self.buf.clear();
                self.buf.reserve(READ_SIZE);
                if stream.read_buf(&mut self.buf).await? == 0 {
                    break;
                }
            },
        }
        if close || matches!(framing, Framing::UntilClose) {
            self.reset();
        }
        Ok(reply)
    }
}

/// Reads more of the answer into `buf`; the end of the connection is an error here.
async fn fill(stream: &mut TcpStream, buf: &mut BytesMut) -> std::io::Result<()> {
    // Without room reserved, `read_buf` reads 64 bytes at a time.
    buf.reserve(READ_SIZE);
    if stream.read_buf(buf).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// The answer's head, if `buf` holds all of it: what the engine keeps, the head's length, how
/// the body ends, and whether the server closes the connection after it.
fn parse_head(buf: &[u8], want_timing: bool) -> std::io::Result<Option<(Reply, usize, Framing, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(&format!("bad answer head: {e}"))),
    };
    let status = response.code.unwrap_or(0);
    let mut reply = Reply { status, refreshed: None, timing: None, retry_after: None, body: None };
    let mut length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).map_err(|_| invalid("bad content-length"))?;
            length = Some(text.trim().parse::<usize>().map_err(|_| invalid("bad content-length"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.to_ascii_lowercase().ends_with(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            let value = h.value.to_ascii_lowercase();
            close = value == b"close" || (close && value != b"keep-alive");
        } else if h.name.eq_ignore_ascii_case(REFRESHED_TOKEN) {
            let mut bearer = b"Bearer ".to_vec();
            bearer.extend_from_slice(h.value);
            reply.refreshed = HeaderValue::from_bytes(&bearer).ok();
        } else if status == 503 && h.name.eq_ignore_ascii_case("retry-after") {
            reply.retry_after = std::str::from_utf8(h.value).ok().and_then(|v| v.trim().parse().ok());
        } else if want_timing && h.name.eq_ignore_ascii_case("server-timing") {
            reply.timing = std::str::from_utf8(h.value).ok().map(str::to_owned);
        }
    }
    // No body: 1xx, 204 and 304 answers.
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Some((reply, head_len, framing, close)))
}

/// One chunk of a chunked body at the start of `buf`, if all of it is there: the bytes it takes
/// and whether it was the last (with its trailers).
fn chunk(buf: &[u8]) -> std::io::Result<Option<(usize, bool)>> {
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() > MAX_HEAD { Err(invalid("chunk size line too long")) } else { Ok(None) };
    };
    let line = buf.get(..line_end).unwrap_or_default();
    let hex = line.split(|b| *b == b';').next().unwrap_or_default();
    let size = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
        .ok_or_else(|| invalid("bad chunk size"))?;
    let rest = buf.get(line_end + 2..).unwrap_or_default();
    if size == 0 {
        // Trailers, if any, end with an empty line.
        if rest.starts_with(b"\r\n") {
            return Ok(Some((line_end + 4, true)));
        }
        return Ok(rest.windows(4).position(|w| w == b"\r\n\r\n").map(|p| (line_end + 2 + p + 4, true)));
    }
    let need = size.checked_add(2).ok_or_else(|| invalid("chunk too large"))?;
    Ok((rest.len() >= need).then_some((line_end + 2 + need, false)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_with_their_framing() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-refreshed-token: abc\r\n\r\nhello";
        let (reply, n, framing, close) = parse_head(text, false).unwrap().unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.refreshed, Some(HeaderValue::from_static("Bearer abc")));
        assert_eq!(n, text.len() - 5);
        assert!(matches!(framing, Framing::Length(5)));
        assert!(!close);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le", false).unwrap().is_none());
        let (_, _, framing, close) =
            parse_head(b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n", false).unwrap().unwrap();
        assert!(matches!(framing, Framing::UntilClose) && close);
        let (_, _, framing, _) = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n", false).unwrap().unwrap();
        assert!(matches!(framing, Framing::Length(0)));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n", false).is_err());
        assert!(parse_head(b"NOT HTTP\r\n\r\n", false).is_err());
    }

    #[test]
    fn chunks_are_walked_to_the_last() {
        let body = b"5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(chunk(body).unwrap(), Some((10, false)));
        assert_eq!(chunk(&body[10..]).unwrap(), Some((5, true)));
        assert_eq!(chunk(b"5\r\nhel").unwrap(), None);
        assert_eq!(chunk(b"0\r\nx-trailer: 1\r\n\r\n").unwrap(), Some((19, true)));
        assert!(chunk(b"zz\r\n").is_err());
    }
}
