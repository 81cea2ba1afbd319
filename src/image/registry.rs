//! `pull`, `push`, `login`: the OCI distribution API (Docker Registry v2)
//! over a blocking HTTP client (ureq with rustls: no async runtime, no C
//! TLS library). Anonymous, basic and bearer-token auth, following the
//! registry's `WWW-Authenticate` challenge; TLS verified against the
//! system's CAs plus `--tls-ca`; `--insecure` speaks plain HTTP.
//!
//! A pull stores each blob verified against its digest as it arrives and
//! skips blobs the store has: a pull that was interrupted goes on where it
//! stopped (blob by blob). The layers are then unpacked and the image
//! recorded exactly as `image load` does (oci::image).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::digest::Digest;
use super::oci::{self, Descriptor, Index, Manifest, INDEX_TYPES, MANIFEST_TYPES};
use super::progress::Progress;
use super::{normalize, Record, Store};
use crate::error::{Context, Error, Result};
use crate::log::Logger;

/// How to reach a registry.
#[derive(Debug, Default, Clone)]
pub struct Access {
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// A CA certificate (PEM) trusted besides the system's.
    pub tls_ca: Option<PathBuf>,
    /// The credentials file (`login` writes it).
    pub authfile: PathBuf,
}

/// `HOST[:PORT]/REPO:TAG` split for the API. A reference without a
/// registry host is Docker Hub's (`library/` for a one-part name).
pub struct Remote {
    pub host: String,
    pub repo: String,
    pub tag: String,
    /// The store's name for it.
    pub name: String,
}

pub fn remote(reference: &str) -> Result<Remote> {
    let name = normalize(reference)?;
    let (path, tag) = name.rsplit_once(':').expect("normalize adds a tag");
    let (host, repo) = match path.split_once('/') {
        Some((h, r)) if h.contains(['.', ':']) || h == "localhost" => {
            (h.to_string(), r.to_string())
        }
        _ if path.contains('/') => ("registry-1.docker.io".to_string(), path.to_string()),
        _ => (
            "registry-1.docker.io".to_string(),
            format!("library/{path}"),
        ),
    };
    Ok(Remote {
        host,
        repo,
        tag: tag.to_string(),
        name,
    })
}

enum Auth {
    None,
    Basic(String),
    Bearer(String),
}

enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    File(&'a Path),
}

/// A session with one registry.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    host: String,
    /// user:password from the credentials file, if any.
    creds: Option<String>,
    auth: Auth,
}

impl Client {
    pub fn new(host: &str, access: &Access) -> Result<Client> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_secs(15))
            .timeout_read(Duration::from_secs(120))
            .redirects(5);
        if !access.insecure {
            builder = builder.tls_config(tls_config(access.tls_ca.as_deref())?);
        }
        let scheme = if access.insecure { "http" } else { "https" };
        Ok(Client {
            agent: builder.build(),
            base: format!("{scheme}://{host}/v2"),
            host: host.to_string(),
            creds: read_creds(&access.authfile, host)?,
            auth: Auth::None,
        })
    }

    /// `path` under /v2, answering the registry's auth challenge once.
    fn send(
        &mut self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Result<ureq::Response> {
        let mut challenged = false;
        loop {
            let mut req = self.agent.request(method, url);
            for (k, v) in headers {
                req = req.set(k, v);
            }
            match &self.auth {
                Auth::None => {}
                Auth::Basic(b) => req = req.set("Authorization", &format!("Basic {b}")),
                Auth::Bearer(t) => req = req.set("Authorization", &format!("Bearer {t}")),
            }
            let sent = match &body {
                Body::Empty => req.call(),
                Body::Bytes(b) => req.send_bytes(b),
                Body::File(p) => {
                    let f = std::fs::File::open(p).step_at("open blob", p)?;
                    req.send(f)
                }
            };
            match sent {
                Ok(r) => return Ok(r),
                Err(ureq::Error::Status(401, r)) if !challenged => {
                    challenged = true;
                    let challenge = r.header("WWW-Authenticate").unwrap_or("").to_string();
                    self.answer(&challenge)?;
                }
                Err(ureq::Error::Status(code, r)) => return Err(self.status_error(method, url, code, r)),
                Err(ureq::Error::Transport(t)) => {
                    return Err(Error::new(format!("connect to {}", self.host))
                        .detail(t.to_string())
                        .hint("check the address; for a registry without TLS use --insecure, for a private CA --tls-ca FILE"))
                }
            }
        }
    }

    fn status_error(&self, method: &str, url: &str, code: u16, r: ureq::Response) -> Error {
        let text = r.into_string().unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                text.lines()
                    .next()
                    .unwrap_or("")
                    .chars()
                    .take(120)
                    .collect()
            });
        let what = url.strip_prefix(&self.base).unwrap_or(url);
        let err = Error::new(format!("{method} {}{what}", self.host))
            .detail(format!("HTTP {code}: {message}"));
        match code {
            401 | 403 if self.creds.is_none() => {
                err.hint(format!("log in first: hull login {}", self.host))
            }
            401 | 403 => err.hint(format!(
                "the registry refused the credentials: hull login {} again",
                self.host
            )),
            404 => err.hint("no such repository, tag or blob in the registry"),
            _ => err.hint("the registry failed; try again later"),
        }
    }

    /// Take the credentials or a token the challenge asks for.
    fn answer(&mut self, challenge: &str) -> Result<()> {
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        let no_creds = || {
            Error::new(format!("log in to {}", self.host))
                .detail("the registry asks for credentials")
                .hint(format!("hull login {}", self.host))
        };
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let creds = self.creds.clone().ok_or_else(no_creds)?;
                self.auth = Auth::Basic(base64(creds.as_bytes()));
            }
            "bearer" => {
                let p = challenge_params(params);
                let realm = p
                    .iter()
                    .find(|(k, _)| k == "realm")
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| {
                        Error::new(format!("log in to {}", self.host))
                            .detail("a bearer challenge without a realm")
                    })?;
                let mut req = self.agent.get(&realm);
                for (k, v) in p.iter().filter(|(k, _)| k == "service" || k == "scope") {
                    req = req.query(k, v);
                }
                if let Some(c) = &self.creds {
                    req = req.set("Authorization", &format!("Basic {}", base64(c.as_bytes())));
                }
                let text = req
                    .call()
                    .map_err(|e| {
                        Error::new(format!("get a token from {realm}")).detail(e.to_string())
                    })?
                    .into_string()
                    .map_err(|e| {
                        Error::new(format!("get a token from {realm}")).detail(e.to_string())
                    })?;
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                let token = v["token"]
                    .as_str()
                    .or(v["access_token"].as_str())
                    .ok_or_else(|| {
                        Error::new(format!("get a token from {realm}"))
                            .detail("no token in the answer")
                    })?;
                self.auth = Auth::Bearer(token.to_string());
            }
            _ => {
                return Err(Error::new(format!("log in to {}", self.host))
                    .detail(format!("unknown auth scheme {scheme:?}")))
            }
        }
        Ok(())
    }

    /// GET /v2/: checks the address and the credentials (`login`).
    pub fn ping(&mut self) -> Result<()> {
        let url = format!("{}/", self.base);
        self.send("GET", &url, &[], Body::Empty).map(drop)
    }

    /// A manifest or index by tag or digest: its bytes and media type.
    fn manifest(&mut self, repo: &str, reference: &str) -> Result<(Vec<u8>, String)> {
        let url = format!("{}/{repo}/manifests/{reference}", self.base);
        let accept = [MANIFEST_TYPES, INDEX_TYPES].concat().join(", ");
        let r = self.send("GET", &url, &[("Accept", &accept)], Body::Empty)?;
        let media = r.header("Content-Type").unwrap_or("").to_string();
        let mut bytes = Vec::new();
        r.into_reader()
            .take(4 << 20)
            .read_to_end(&mut bytes)
            .map_err(|e| {
                Error::new(format!("read manifest {repo}:{reference}")).detail(e.to_string())
            })?;
        Ok((bytes, media))
    }

    fn blob(&mut self, repo: &str, d: &Digest) -> Result<Box<dyn Read + Send + Sync>> {
        let url = format!("{}/{repo}/blobs/{d}", self.base);
        Ok(self.send("GET", &url, &[], Body::Empty)?.into_reader())
    }

    fn has_blob(&mut self, repo: &str, d: &Digest) -> Result<bool> {
        let url = format!("{}/{repo}/blobs/{d}", self.base);
        match self.send("HEAD", &url, &[], Body::Empty) {
            Ok(_) => Ok(true),
            Err(e) if e.to_string().contains("HTTP 404") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A monolithic upload: POST for a session, PUT the bytes with the digest.
    fn upload(&mut self, repo: &str, d: &Digest, path: &Path) -> Result<()> {
        let url = format!("{}/{repo}/blobs/uploads/", self.base);
        let r = self.send("POST", &url, &[("Content-Length", "0")], Body::Bytes(b""))?;
        let location = r.header("Location").unwrap_or("").to_string();
        if location.is_empty() {
            return Err(
                Error::new(format!("upload {d}")).detail("the registry gave no upload location")
            );
        }
        let mut put = if location.starts_with("http") {
            location
        } else {
            format!("{}{}", self.base.trim_end_matches("/v2"), location)
        };
        put.push(if put.contains('?') { '&' } else { '?' });
        put.push_str(&format!("digest={d}"));
        let len = std::fs::metadata(path)
            .step_at("stat blob", path)?
            .len()
            .to_string();
        self.send(
            "PUT",
            &put,
            &[
                ("Content-Type", "application/octet-stream"),
                ("Content-Length", &len),
            ],
            Body::File(path),
        )
        .map(drop)
    }
}

/// Pull `reference` into the store; prints a line per blob to `say`.
pub fn pull(
    store: &Store,
    reference: &str,
    access: &Access,
    say: &mut dyn FnMut(&str),
    log: &Logger,
) -> Result<Record> {
    let r = remote(reference)?;
    let mut client = Client::new(&r.host, access)?;
    let (mut bytes, mut media) = client.manifest(&r.repo, &r.tag)?;
    log.step("pull: manifest");
    if INDEX_TYPES.contains(&media.as_str()) || is_index(&bytes) {
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| Error::new("parse index").detail(e.to_string()))?;
        let desc = oci::pick_platform(index, |_| true)?;
        (bytes, media) = client.manifest(&r.repo, &desc.digest.to_string())?;
        if Digest::of(&bytes) != desc.digest {
            return Err(Error::new("verify manifest")
                .detail(format!("digest mismatch: expected {}", desc.digest)));
        }
    }
    if !MANIFEST_TYPES.contains(&media.as_str()) && !media.is_empty() {
        return Err(Error::new(format!("pull {}", r.name))
            .detail(format!("unknown manifest media type {media:?}"))
            .hint("hull pulls OCI and Docker schema 2 images"));
    }
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::new("parse image manifest").detail(e.to_string()))?;
    m.check_layer_types()?;
    let _lock = store.lock_exclusive()?;
    let (manifest, _) = store.put_blob(&bytes[..], None)?;
    let wanted: Vec<&Descriptor> = std::iter::once(&m.config).chain(&m.layers).collect();
    for d in wanted {
        if store.blob_path(&d.digest).is_file() {
            say(&format!("{}: already exists", d.digest.short()));
            continue;
        }
        let what = format!("{}: pulling", d.digest.short());
        let reader = Progress::new(client.blob(&r.repo, &d.digest)?, &what, d.size);
        let (_, len) = store
            .put_blob(reader, Some(&d.digest))
            .map_err(|e| e.within(format!("pull blob {}", d.digest.short())))?;
        if d.size.is_some_and(|s| s != len) {
            let _ = std::fs::remove_file(store.blob_path(&d.digest));
            return Err(
                Error::new(format!("pull blob {}", d.digest.short())).detail(format!(
                    "size mismatch: the manifest says {}, got {len}",
                    d.size.unwrap_or(0)
                )),
            );
        }
        log.step("pull: blob stored");
        say(&format!("{}: pulled", d.digest.short()));
    }
    let record = oci::image(store, &m.config.digest, Some(manifest), &m.layers, log)?;
    let record = store.put_record(record)?;
    let mut refs = store.refs()?;
    refs.insert(r.name.clone(), record.id.clone());
    store.put_refs(&refs)?;
    log.step("pull: recorded");
    Ok(record)
}

fn is_index(bytes: &[u8]) -> bool {
    serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v["manifests"].is_array())
}

/// Push the image named `reference` (its name says where to).
pub fn push(
    store: &Store,
    reference: &str,
    access: &Access,
    say: &mut dyn FnMut(&str),
    log: &Logger,
) -> Result<Digest> {
    let r = remote(reference)?;
    let _lock = store.lock_shared()?;
    let record = store.resolve(&r.name)?;
    let manifest = super::save::manifest_of(store, &record)?;
    let mut client = Client::new(&r.host, access)?;
    let blobs: Vec<&Digest> = record
        .layers
        .iter()
        .map(|l| &l.digest)
        .chain([&record.id])
        .collect();
    for d in blobs {
        if client.has_blob(&r.repo, d)? {
            say(&format!("{}: layer already exists", d.short()));
            continue;
        }
        client.upload(&r.repo, d, &store.blob_path(d))?;
        log.step("push: blob uploaded");
        say(&format!("{}: pushed", d.short()));
    }
    let url = format!("{}/{}/manifests/{}", client.base, r.repo, r.tag);
    let mt = "application/vnd.oci.image.manifest.v1+json";
    client.send("PUT", &url, &[("Content-Type", mt)], Body::Bytes(&manifest))?;
    Ok(Digest::of(&manifest))
}

/// Check `user:password` against the registry, then keep it.
pub fn login(host: &str, user: &str, password: &str, access: &Access) -> Result<()> {
    let mut client = Client::new(host, access)?;
    client.creds = Some(format!("{user}:{password}"));
    client.ping()?;
    let mut all = read_authfile(&access.authfile)?;
    all["auths"][host] =
        serde_json::json!({"auth": base64(format!("{user}:{password}").as_bytes())});
    write_authfile(&access.authfile, &all)
}

/// Forget the credentials of `host`; false if there were none.
pub fn logout(host: &str, authfile: &Path) -> Result<bool> {
    let mut all = read_authfile(authfile)?;
    let had = all["auths"]
        .as_object_mut()
        .and_then(|a| a.remove(host))
        .is_some();
    if had {
        write_authfile(authfile, &all)?;
    }
    Ok(had)
}

/// `$XDG_CONFIG_HOME/hull/auth.json`, or `~/.config/hull/auth.json`.
pub fn default_authfile() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("/root/.config"));
    base.join("hull").join("auth.json")
}

fn read_authfile(path: &Path) -> Result<Value> {
    match std::fs::read(path) {
        Ok(t) => serde_json::from_slice(&t).map_err(|e| {
            Error::new("parse credentials")
                .at(path)
                .detail(e.to_string())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({"auths": {}})),
        Err(e) => Err(e).step_at("read credentials", path),
    }
}

/// Mode 0600 from the start: the file holds passwords.
fn write_authfile(path: &Path, value: &Value) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).step_at("create credentials dir", dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .step_at("write credentials", &tmp)?;
    f.write_all(&serde_json::to_vec_pretty(value).expect("JSON"))
        .step_at("write credentials", &tmp)?;
    std::fs::rename(&tmp, path).step_at("write credentials", path)
}

fn read_creds(authfile: &Path, host: &str) -> Result<Option<String>> {
    let all = read_authfile(authfile)?;
    let Some(auth) = all["auths"][host]["auth"].as_str() else {
        return Ok(None);
    };
    let bytes = unbase64(auth).ok_or_else(|| {
        Error::new("read credentials")
            .at(authfile)
            .detail(format!("{host}: not base64"))
    })?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The system's CAs (Debian's bundle) and `extra`.
fn tls_config(extra: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let system = Path::new("/etc/ssl/certs/ca-certificates.crt");
    for path in [Some(system), extra].into_iter().flatten() {
        let pem = match std::fs::read(path) {
            Ok(p) => p,
            Err(_) if path == system => continue,
            Err(e) => return Err(e).step_at("read --tls-ca", path),
        };
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            if roots.add(cert).is_ok() {
                added += 1;
            }
        }
        if added == 0 && path != system {
            return Err(Error::new("read --tls-ca")
                .at(path)
                .detail("no PEM certificate in it"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new("set up TLS").detail(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// `key="value", key2=value2` of an auth challenge.
fn challenge_params(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim();
    while let Some((k, after)) = rest.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            match q.split_once('"') {
                Some((v, n)) => (v.to_string(), n),
                None => (q.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, n)) => (v.trim().to_string(), n),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((k, v));
        rest = next.trim_start_matches(',').trim();
    }
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64(data: &[u8]) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unbase64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|c| *c != b'=') {
        let v = B64.iter().position(|b| *b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips() {
        for s in ["", "f", "fo", "foo", "foob", "user:pass word"] {
            assert_eq!(unbase64(&base64(s.as_bytes())).unwrap(), s.as_bytes());
        }
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
    }

    #[test]
    fn challenges_and_remotes() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p[0], ("realm".into(), "https://auth.example/token".into()));
        assert_eq!(p[2].1, "repository:a/b:pull");
        let r = remote("localhost:5000/team/web:v2").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str(), r.tag.as_str()),
            ("localhost:5000", "team/web", "v2")
        );
        let r = remote("busybox").unwrap();
        assert_eq!(
            (r.host.as_str(), r.repo.as_str()),
            ("registry-1.docker.io", "library/busybox")
        );
    }
}
