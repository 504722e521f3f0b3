//! Finds the end of a chunked body without decoding it: the fast path forwards chunked
//! bodies byte for byte (sizes, extensions and trailers included) and only needs to know
//! where the message ends, so that the connection can carry the next one.

/// Longest chunk-size line (size, extensions) accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

/// A chunked body that is not valid (bad size, missing CRLF, lines too long).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadChunk;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In the size line: hex digits so far (`digits`), value `size`.
    Size { size: u64, digits: u8 },
    /// After the size: whitespace, then `;` extensions or CR.
    SizeTail { size: u64 },
    /// In a chunk extension, up to CR.
    Extension { size: u64 },
    /// CR seen at the end of the size line.
    SizeLf { size: u64 },
    /// Chunk data still to come.
    Data(u64),
    /// CR expected after the data.
    DataCr,
    /// LF expected after the data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field line.
    Trailer,
    /// CR seen at the end of a trailer field line.
    TrailerLf,
    /// CR seen on the final empty line.
    EndLf,
    /// The body ended.
    Done,
}

/// The framing state of one chunked body, fed its bytes in order.
#[derive(Debug, Clone)]
pub(crate) struct Chunked {
    state: State,
    /// Bytes of the current size line, or of all trailers.
    line: usize,
}

impl Chunked {
    /// A body whose first byte has not been seen.
    pub(crate) fn new() -> Chunked {
        Chunked {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
        }
    }

    /// Whether the whole body was seen.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans the next bytes of the stream; returns how many of them belong to the body
    /// (all of them unless the body ends inside `bytes`).
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Result<usize, BadChunk> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Data(left) => {
                    let take = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(bytes.len() - i);
                    i += take;
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    continue;
                }
                State::Size { size, digits } => {
                    self.count_line()?;
                    match hex(b) {
                        Some(d) => {
                            if digits >= 15 {
                                return Err(BadChunk);
                            }
                            State::Size {
                                size: size * 16 + u64::from(d),
                                digits: digits + 1,
                            }
                        }
                        None if digits == 0 => return Err(BadChunk),
                        None => after_size(b, size)?,
                    }
                }
                State::SizeTail { size } => {
                    self.count_line()?;
                    after_size(b, size)?
                }
                State::Extension { size } => {
                    self.count_line()?;
                    match b {
                        b'\r' => State::SizeLf { size },
                        b'\n' => return Err(BadChunk),
                        _ => State::Extension { size },
                    }
                }
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.line = 0;
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    }
                }
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => State::Size { size: 0, digits: 0 },
                State::DataCr | State::DataLf => return Err(BadChunk),
                State::TrailerStart => {
                    self.count_trailer()?;
                    if b == b'\r' {
                        State::EndLf
                    } else {
                        State::Trailer
                    }
                }
                State::Trailer => {
                    self.count_trailer()?;
                    match b {
                        b'\r' => State::TrailerLf,
                        b'\n' => return Err(BadChunk),
                        _ => State::Trailer,
                    }
                }
                State::TrailerLf if b == b'\n' => State::TrailerStart,
                State::EndLf if b == b'\n' => {
                    self.state = State::Done;
                    return Ok(i + 1);
                }
                State::TrailerLf | State::EndLf => return Err(BadChunk),
            };
            i += 1;
        }
        Ok(i)
    }

    fn count_line(&mut self) -> Result<(), BadChunk> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err(BadChunk);
        }
        Ok(())
    }

    fn count_trailer(&mut self) -> Result<(), BadChunk> {
        self.line += 1;
        if self.line > MAX_TRAILERS {
            return Err(BadChunk);
        }
        Ok(())
    }
}

/// The state after a size line's hex digits, given the next byte.
fn after_size(b: u8, size: u64) -> Result<State, BadChunk> {
    match b {
        b' ' | b'\t' => Ok(State::SizeTail { size }),
        b';' => Ok(State::Extension { size }),
        b'\r' => Ok(State::SizeLf { size }),
        _ => Err(BadChunk),
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; the body's length, or an error.
    fn check(input: &[u8], step: usize) -> Result<Option<usize>, BadChunk> {
        let mut c = Chunked::new();
        let mut seen = 0;
        for piece in input.chunks(step) {
            let n = c.scan(piece)?;
            seen += n;
            if c.is_done() {
                return Ok(Some(seen));
            }
            assert_eq!(n, piece.len(), "a body that goes on takes every byte");
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end_in_any_split() {
        let body = b"4\r\nWiki\r\n5;name=val\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nExpires: x\r\n\r\n";
        let mut stream = body.to_vec();
        stream.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        for step in 1..=stream.len() {
            assert_eq!(check(&stream, step), Ok(Some(body.len())), "step {step}");
        }
        assert_eq!(check(b"0\r\n\r\n", 1), Ok(Some(5)));
        assert_eq!(check(b"A\r\n0123456789", 3), Ok(None), "not ended yet");
        assert_eq!(check(b"a\r\n0123456789\r\n0\r\n\r\n", 7), Ok(Some(20)));
    }

    #[test]
    fn rejects_broken_framing() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"4\nWiki\r\n0\r\n\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\r\n0\r\n\r\r",
            b"1234567890abcdef0\r\n",
            b"0\r\nbad\ntrailer\r\n\r\n",
            b"4 x\r\n",
        ] {
            assert_eq!(
                check(bad, 2),
                Err(BadChunk),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = [b"1;".as_slice(), &[b'e'; MAX_LINE]].concat();
        assert_eq!(check(&long, 100), Err(BadChunk));
        let trailers = [b"0\r\n".as_slice(), &[b't'; MAX_TRAILERS + 1]].concat();
        assert_eq!(check(&trailers, 100), Err(BadChunk));
    }

    #[test]
    fn a_huge_chunk_is_counted_not_buffered() {
        let mut c = Chunked::new();
        assert_eq!(c.scan(b"fffffffffffffff\r\n"), Ok(17));
        assert_eq!(c.scan(&[0u8; 4096]), Ok(4096));
        assert!(!c.is_done());
    }
}
