//! A read buffer: bytes read but not yet used sit between `start` and `end`; it grows
//! (up to a limit) when a read filled it, so small exchanges stay small.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Size a buffer starts with.
const INITIAL: usize = 4 * 1024;

pub(crate) struct Buf {
    data: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

impl Buf {
    /// An empty buffer that grows up to `max` bytes.
    pub(crate) fn new(max: usize) -> Buf {
        Buf {
            data: vec![0; INITIAL.min(max)],
            start: 0,
            end: 0,
            max,
        }
    }

    /// The bytes read and not consumed yet.
    pub(crate) fn filled(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks the first `n` filled bytes as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Forgets everything filled.
    pub(crate) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Takes the filled bytes out (to hand them to another reader).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let bytes = self.filled().to_vec();
        self.clear();
        bytes
    }

    /// Room after the filled bytes: moves them to the front or grows when needed.
    fn spare(&mut self) -> &mut [u8] {
        if self.end == self.data.len() {
            if self.start > 0 {
                self.data.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.data.len() < self.max {
                let grown = (self.data.len() * 2).min(self.max);
                self.data.resize(grown, 0);
            }
        }
        &mut self.data[self.end..]
    }

    /// Whether no more bytes fit.
    pub(crate) fn is_full(&self) -> bool {
        self.end - self.start >= self.max
    }

    /// Appends what `read` (a non-blocking read) puts in the room left; 0 when full.
    pub(crate) fn fill_with(
        &mut self,
        read: impl FnOnce(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let spare = self.spare();
        if spare.is_empty() {
            return Ok(0);
        }
        let n = read(spare)?.min(spare.len());
        self.end += n;
        Ok(n)
    }

    /// One read from `io` into the buffer (nothing is read when it is full); 0 at EOF.
    pub(crate) async fn read_from<R: AsyncRead + Unpin>(
        &mut self,
        io: &mut R,
    ) -> io::Result<usize> {
        let spare = self.spare();
        if spare.is_empty() {
            return Ok(0);
        }
        let n = io.read(spare).await?;
        self.end += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn grows_compacts_and_consumes() {
        let mut b = Buf::new(8 * 1024);
        let data: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut src = &data[..];
        while b.filled().len() < 8 * 1024 {
            assert!(b.read_from(&mut src).await.expect("read") > 0);
        }
        assert_eq!(b.filled(), &data[..8 * 1024]);
        assert_eq!(
            b.read_from(&mut src).await.expect("read"),
            0,
            "full: nothing read"
        );
        b.consume(8000);
        assert!(b.read_from(&mut src).await.expect("read") > 0);
        assert_eq!(b.filled()[..192], data[8000..8192]);
        b.consume(usize::MAX);
        assert!(b.is_empty());
    }
}
