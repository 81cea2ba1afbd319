//! The attach protocol between the monitor and `hull attach`, over the
//! monitor's unix socket: frames of `[kind u8][length u32 BE][payload]`.
//! The monitor sends output and, at the end, the exit code; the client
//! sends input, window sizes and the end of its input.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(i32),
    Stdin(Vec<u8>),
    Resize { rows: u16, cols: u16 },
    CloseStdin,
}

/// A frame larger than this is a broken peer, not data.
const MAX_FRAME: usize = 1 << 20;

impl Frame {
    pub fn encode(&self) -> Vec<u8> {
        let (kind, payload): (u8, Vec<u8>) = match self {
            Frame::Stdout(b) => (1, b.clone()),
            Frame::Stderr(b) => (2, b.clone()),
            Frame::Exit(code) => (3, code.to_be_bytes().to_vec()),
            Frame::Stdin(b) => (4, b.clone()),
            Frame::Resize { rows, cols } => (5, [rows.to_be_bytes(), cols.to_be_bytes()].concat()),
            Frame::CloseStdin => (6, Vec::new()),
        };
        let mut out = Vec::with_capacity(5 + payload.len());
        out.push(kind);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// Collects bytes from a stream socket and hands back whole frames.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    /// None when the peer sent something that is not a frame.
    pub fn push(&mut self, bytes: &[u8]) -> Option<Vec<Frame>> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            if self.buf.len() < 5 {
                return Some(frames);
            }
            let len = u32::from_be_bytes(self.buf[1..5].try_into().expect("4 bytes")) as usize;
            if len > MAX_FRAME {
                return None;
            }
            if self.buf.len() < 5 + len {
                return Some(frames);
            }
            let payload = self.buf[5..5 + len].to_vec();
            let frame = match (self.buf[0], payload.len()) {
                (1, _) => Frame::Stdout(payload),
                (2, _) => Frame::Stderr(payload),
                (3, 4) => Frame::Exit(i32::from_be_bytes(payload[..].try_into().expect("4"))),
                (4, _) => Frame::Stdin(payload),
                (5, 4) => Frame::Resize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                },
                (6, 0) => Frame::CloseStdin,
                _ => return None,
            };
            self.buf.drain(..5 + len);
            frames.push(frame);
        }
    }
}

/// Docker's default detach keys, ctrl-p then ctrl-q.
pub const DETACH_KEYS: [u8; 2] = [0x10, 0x11];

/// Scans the user's input for the detach sequence across reads.
#[derive(Default)]
pub struct DetachScanner {
    matched: usize,
}

impl DetachScanner {
    /// The input to forward, and whether the sequence was typed. A partial
    /// match is held back until the next key decides.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == DETACH_KEYS[self.matched] {
                self.matched += 1;
                if self.matched == DETACH_KEYS.len() {
                    return (out, true);
                }
            } else {
                out.extend_from_slice(&DETACH_KEYS[..self.matched]);
                self.matched = 0;
                if b == DETACH_KEYS[0] {
                    self.matched = 1;
                } else {
                    out.push(b);
                }
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let frames = vec![
            Frame::Stdout(b"hello\n".to_vec()),
            Frame::Stderr(Vec::new()),
            Frame::Exit(137),
            Frame::Stdin(b"x".to_vec()),
            Frame::Resize { rows: 24, cols: 80 },
            Frame::CloseStdin,
        ];
        let bytes: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for chunk in bytes.chunks(3) {
            got.extend(d.push(chunk).unwrap());
        }
        assert_eq!(got, frames);
        assert!(Decoder::default().push(&[9, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn detach_keys_across_reads() {
        let mut s = DetachScanner::default();
        assert_eq!(s.feed(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(s.feed(b"\x11rest"), (Vec::new(), true));
        let mut s = DetachScanner::default();
        assert_eq!(s.feed(b"\x10x\x10\x10"), (b"\x10x\x10".to_vec(), false));
    }
}
