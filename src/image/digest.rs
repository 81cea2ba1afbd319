//! Content addresses: `sha256:<64 hex>`, and a reader that hashes what
//! passes through it, so a blob or a layer is verified while it is written,
//! never read twice.

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// `sha256:<64 lowercase hex>`; any other algorithm or form is refused.
    pub fn parse(text: &str) -> Result<Digest> {
        let bad = |why: &str| {
            Error::new(format!("digest {text:?}"))
                .detail(why.to_string())
                .hint("hull stores sha256 digests: sha256:<64 hex digits>")
        };
        let Some((algo, hex)) = text.split_once(':') else {
            return Err(bad("no algorithm"));
        };
        if algo != "sha256" {
            return Err(bad("unsupported algorithm"));
        }
        if !is_hex64(hex) {
            return Err(bad("not 64 lowercase hex digits"));
        }
        Ok(Digest { hex: hex.into() })
    }

    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    fn from_hasher(h: Sha256) -> Digest {
        let hex = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>();
        Digest { hex }
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The 12 digits Docker shows.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

pub fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(|e| serde::de::Error::custom(e.to_string()))
    }
}

/// The chain id of a layer stack (the OCI image spec's ChainID): the first
/// layer's diff id, then sha256("<parent chain id> <diff id>") upwards.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => Digest::of(format!("{parent} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// A reader that hashes and counts every byte read through it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub len: u64,
}

impl<R: Read> Hashing<R> {
    pub fn new(inner: R) -> Hashing<R> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Read what is left (a tar's padding after its end blocks counts
    /// too), then the digest of everything.
    pub fn finish(mut self) -> std::io::Result<(Digest, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.len))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    pub len: u64,
}

impl<W: std::io::Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.len, self.inner)
    }
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(Digest::parse(&format!("sha256:{hex}")).unwrap().hex(), hex);
        for bad in [
            "",
            "sha256:",
            "sha512:aa",
            &format!("sha256:{}", "A".repeat(64)),
            &hex,
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hashes_and_chains() {
        let empty = Digest::of(b"");
        assert_eq!(
            empty.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut r = Hashing::new(&b"abc"[..]);
        let mut buf = [0u8; 2];
        r.read_exact(&mut buf).unwrap();
        let (d, n) = r.finish().unwrap();
        assert_eq!((d, n), (Digest::of(b"abc"), 3));
        let ids = chain_ids(&[empty.clone(), empty.clone()]);
        assert_eq!(ids[0], empty);
        assert_eq!(ids[1], Digest::of(format!("{empty} {empty}").as_bytes()));
    }
}
