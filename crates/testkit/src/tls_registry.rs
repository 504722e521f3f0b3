//! A test's own Debian `docker-registry` over TLS: on 127.0.0.1 at a port the test picked,
//! with a certificate made for it by its own CA (the `openssl` command), optionally with
//! htpasswd users or token authentication, and trusted by dockerd through
//! `/etc/docker/certs.d/127.0.0.1:PORT/ca.crt` while it runs. Dropping it (also when a test
//! panics) stops the registry and removes that directory.
//!
//! [`TokenServer`] is test code standing in for the authorization server of Docker's token
//! specification (Harbor's, GitLab's, a cloud's), which cannot be installed here: it checks
//! HTTP Basic credentials and issues JWTs signed with its own key, which the registry
//! trusts through `auth.token.rootcertbundle`.

use anyhow::{Context, bail};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How a [`TlsRegistry`] authenticates.
#[derive(Clone)]
pub enum RegistryAuth {
    /// Everyone may pull and push.
    Open,
    /// HTTP Basic against an htpasswd file with this one user.
    Htpasswd {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
    /// Bearer tokens from `server` (`auth: token`).
    Token(Arc<TokenServer>),
}

/// A running `docker-registry serve` over TLS.
pub struct TlsRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The CA (PEM) that signed the registry's certificate.
    pub ca_file: PathBuf,
    /// The user and password pushes log in with, if any.
    pub credentials: Option<(String, String)>,
    dir: tempfile::TempDir,
    config: PathBuf,
    child: Option<Child>,
    certs_d: Option<PathBuf>,
}

impl TlsRegistry {
    /// Makes a CA and a certificate for 127.0.0.1, and starts the registry with `auth`.
    pub fn start(auth: RegistryAuth) -> anyhow::Result<TlsRegistry> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        make_ca(d, "ca", "Slipway test registry CA")?;
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        )?;
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.crt",
                "-days",
                "2",
                "-extfile",
                "server.ext",
            ],
        )?;
        let (auth_yaml, credentials) = match &auth {
            RegistryAuth::Open => (String::new(), None),
            RegistryAuth::Htpasswd { user, password } => {
                let file = d.join("htpasswd");
                let out = Command::new("htpasswd")
                    .arg("-Bbc")
                    .arg(&file)
                    .args([user, password])
                    .output()
                    .context("cannot run htpasswd (apache2-utils)")?;
                if !out.status.success() {
                    bail!("htpasswd: {}", String::from_utf8_lossy(&out.stderr));
                }
                (
                    format!(
                        "auth:\n  htpasswd:\n    realm: slipway-test\n    path: {}\n",
                        file.display()
                    ),
                    Some((user.clone(), password.clone())),
                )
            }
            RegistryAuth::Token(server) => (
                format!(
                    "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                    server.realm(),
                    TokenServer::SERVICE,
                    TokenServer::ISSUER,
                    server.cert_file().display()
                ),
                Some((server.user.clone(), server.password.clone())),
            ),
        };
        let mut registry = TlsRegistry {
            addr: String::new(),
            ca_file: d.join("ca.crt"),
            credentials,
            config: d.join("config.yml"),
            child: None,
            certs_d: None,
            dir,
        };
        // A port picked free can be taken before the registry binds it: a few tries.
        let mut attempt = 0;
        loop {
            registry.addr = format!("127.0.0.1:{}", crate::free_port());
            let d = registry.dir.path();
            std::fs::write(
                &registry.config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {}\n  tls:\n    certificate: {}\n    key: {}\n{auth_yaml}",
                    d.join("storage").display(),
                    registry.addr,
                    d.join("server.crt").display(),
                    d.join("server.key").display(),
                ),
            )?;
            match registry.spawn() {
                Ok(()) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    eprintln!("registry did not start ({e:#}); another port");
                }
                Err(e) => return Err(e),
            }
        }
        registry.trust_in_dockerd()?;
        Ok(registry)
    }

    /// Starts `docker-registry serve` and waits until it accepts connections.
    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))?;
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start docker-registry")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!("docker-registry exited ({status}): {}", self.log());
            }
            if TcpStream::connect(&self.addr).is_ok() {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "docker-registry did not listen on {}: {}",
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Puts the CA where dockerd looks for a registry's CA (read on each push and pull).
    fn trust_in_dockerd(&mut self) -> anyhow::Result<()> {
        let dir = Path::new("/etc/docker/certs.d").join(&self.addr);
        if std::fs::create_dir_all(&dir).is_ok() {
            std::fs::copy(&self.ca_file, dir.join("ca.crt"))?;
            self.certs_d = Some(dir);
        }
        Ok(())
    }

    /// Stops the registry (SIGKILL, the way a crashed or unplugged one goes); its storage
    /// stays for [`TlsRegistry::restart`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the registry again on the same address with the same storage.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        self.spawn()
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The digest `repo:tag` names, read from the registry's storage (not through its API).
    pub fn tag_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let link = self
            .dir
            .path()
            .join("storage/docker/registry/v2/repositories")
            .join(repo)
            .join("_manifests/tags")
            .join(tag)
            .join("current/link");
        std::fs::read_to_string(link)
            .ok()
            .map(|s| s.trim().to_string())
    }

    /// A CA (PEM file) that did not sign the registry's certificate.
    pub fn other_ca(&self) -> anyhow::Result<PathBuf> {
        make_ca(self.dir.path(), "other-ca", "Some other CA")?;
        Ok(self.dir.path().join("other-ca.crt"))
    }

    /// Tags the local image `local` as `ADDR/repo_tag` and pushes it (logging in first when
    /// the registry has users, with a throw-away Docker CLI config); returns the reference.
    pub fn push(&self, local: &str, repo_tag: &str) -> anyhow::Result<String> {
        match &self.credentials {
            Some((user, password)) => {
                crate::push_with_auth(local, &self.addr, repo_tag, user, password)
            }
            None => {
                let remote = format!("{}/{repo_tag}", self.addr);
                for args in [vec!["tag", local, &remote], vec!["push", &remote]] {
                    let out = Command::new("docker").args(&args).output()?;
                    if !out.status.success() {
                        bail!(
                            "docker {}: {}",
                            args.join(" "),
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
                let _ = Command::new("docker").args(["rmi", &remote]).output();
                Ok(remote)
            }
        }
    }

    /// A Docker `config.json` (in the registry's directory) with its credentials, for
    /// `--registry-config`.
    pub fn docker_config(&self, user: &str, password: &str) -> anyhow::Result<PathBuf> {
        let file = self
            .dir
            .path()
            .join(format!("docker-config-{}.json", crate::free_port()));
        std::fs::write(&file, crate::docker_config_json(&self.addr, user, password))?;
        Ok(file)
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.certs_d.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A CA key and self-signed certificate, `NAME.key` and `NAME.crt` in `dir`.
fn make_ca(dir: &Path, name: &str, cn: &str) -> anyhow::Result<()> {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-days",
            "2",
            "-subj",
            &format!("/CN={cn}"),
        ],
    )
    .map(|_| ())
}

/// Runs `openssl args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("cannot run openssl")?;
    if !out.status.success() {
        bail!(
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// Test code standing in for a registry's token service (the authorization server of
/// Docker's token specification, which cannot be installed here): `GET /token?service=…&
/// scope=repository:NAME:ACTIONS…` with HTTP Basic credentials answers
/// `{"token": JWT, "access_token": JWT}` granting the scopes asked for; wrong or missing
/// credentials get 401. The JWT is RS256-signed by `openssl` with the server's own key, its
/// certificate in the `x5c` header, which the registry trusts as `rootcertbundle`.
pub struct TokenServer {
    /// The one user.
    pub user: String,
    /// Its password.
    pub password: String,
    addr: String,
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    /// The `service` the registry and the tokens name.
    pub const SERVICE: &'static str = "slipway-test-registry";
    /// The tokens' issuer.
    pub const ISSUER: &'static str = "slipway-test-token-service";

    /// Makes a signing key and certificate and serves on 127.0.0.1 (a port the system
    /// picks).
    pub fn start(user: &str, password: &str) -> anyhow::Result<Arc<TokenServer>> {
        let dir = tempfile::tempdir()?;
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "token.key",
                "-out",
                "token.crt",
                "-days",
                "2",
                "-subj",
                "/CN=slipway-test-token-signer",
            ],
        )?;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let signer = Signer {
            dir: dir.path().to_path_buf(),
            x5c: pem_body(&std::fs::read_to_string(dir.path().join("token.crt"))?),
            user: user.to_string(),
            password: password.to_string(),
        };
        let thread = {
            let (stop, issued, refused) = (stop.clone(), issued.clone(), refused.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            match signer.answer(stream) {
                                Ok(true) => issued.fetch_add(1, Ordering::SeqCst),
                                _ => refused.fetch_add(1, Ordering::SeqCst),
                            };
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        };
        Ok(Arc::new(TokenServer {
            user: user.to_string(),
            password: password.to_string(),
            addr,
            dir,
            stop,
            issued,
            refused,
            thread: Some(thread),
        }))
    }

    /// The realm URL (`http://127.0.0.1:PORT/token`).
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// The certificate the registry verifies tokens with.
    pub fn cert_file(&self) -> PathBuf {
        self.dir.path().join("token.crt")
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }

    /// Requests refused so far (bad credentials, malformed).
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the token server's thread needs.
struct Signer {
    dir: PathBuf,
    x5c: String,
    user: String,
    password: String,
}

impl Signer {
    /// Answers one request; `Ok(true)` when a token was issued.
    fn answer(&self, mut stream: TcpStream) -> anyhow::Result<bool> {
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        let mut authorization = None;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("authorization") {
                    authorization = Some(v.trim().to_string());
                } else if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length.min(64 * 1024)];
        reader.read_exact(&mut body)?;
        let target = request_line.split_whitespace().nth(1).unwrap_or("/");
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let expected = format!(
            "Basic {}",
            crate::git_http::base64(&format!("{}:{}", self.user, self.password))
        );
        if authorization.as_deref() != Some(expected.as_str()) {
            let body = r#"{"details":"invalid credentials"}"#;
            write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nWWW-Authenticate: Basic realm=\"slipway-test-token\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(false);
        }
        let mut access = Vec::new();
        for (k, v) in query.split('&').filter_map(|p| p.split_once('=')) {
            if k != "scope" {
                continue;
            }
            let scope = percent_decode(v);
            for one in scope.split(' ') {
                // repository:NAME:ACTIONS (the name may hold `/`, never `:` here).
                let mut parts = one.splitn(3, ':');
                let (Some(kind), Some(name), Some(actions)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    continue;
                };
                access.push(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let now = since_epoch.as_secs();
        let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let claims = serde_json::json!({
            "iss": TokenServer::ISSUER, "sub": self.user, "aud": TokenServer::SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": since_epoch.as_nanos().to_string(), "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            base64url(header.to_string().as_bytes()),
            base64url(claims.to_string().as_bytes())
        );
        let input_file = self.dir.join("signing-input");
        std::fs::write(&input_file, &signing_input)?;
        let signature = openssl(
            &self.dir,
            &[
                "dgst",
                "-sha256",
                "-sign",
                "token.key",
                &input_file.to_string_lossy(),
            ],
        )?;
        let token = format!("{signing_input}.{}", base64url(&signature));
        let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
            .to_string();
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        Ok(true)
    }
}

/// The base64 body of a PEM block (the DER, standard base64), in one line.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect()
}

/// Unpadded URL-safe base64 (JWS).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// `%XX` and `+` decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
