//! TLS settings against a real TLS server that requires client certificates
//! (`openssl s_server -Verify`), with a CA and certificates made by `openssl` for the test.
//! The server is not a JobManager, so a completed handshake shows up as `NotFlink` (its
//! status page is not Flink's JSON) and a refused one as `Unreachable`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flinkpilot_flink::{ClientConfig, ClientIdentity, Error, FlinkClient, RetryPolicy, TlsConfig};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the TLS tests need the `openssl` command (apt-get install openssl): {e}")
        });
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=flinkpilot test CA",
            "-days",
            "1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, cn) in [("server", "/CN=127.0.0.1"), ("client", "/CN=flinkpilot")] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        openssl(
            dir,
            &[
                "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", cn,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "1",
                "-extfile",
                &ext,
            ],
        );
    }
}

/// `openssl s_server` requiring a client certificate signed by the test CA; killed on drop.
struct TlsServer {
    child: Child,
    url: String,
    pki: tempfile::TempDir,
}

impl TlsServer {
    fn start() -> TlsServer {
        let pki = tempfile::tempdir().unwrap();
        make_pki(pki.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let accept = format!("127.0.0.1:{port}");
        let child = Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &accept,
                "-cert",
                "server.pem",
                "-key",
                "server.key",
                "-www",
                "-Verify",
                "1",
                "-CAfile",
                "ca.pem",
            ])
            .current_dir(pki.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&accept).is_err() {
            assert!(
                Instant::now() < deadline,
                "openssl s_server did not listen on {accept}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        TlsServer {
            child,
            url: format!("https://{accept}/"),
            pki,
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.pki.path().join(name)).unwrap()
    }

    fn client(&self, tls: TlsConfig) -> FlinkClient {
        FlinkClient::new(
            ClientConfig::new(&self.url)
                .unwrap()
                .with_tls(tls)
                .with_timeout(Duration::from_secs(5))
                .with_retry(RetryPolicy::none()),
        )
        .unwrap()
    }

    fn identity(&self) -> ClientIdentity {
        ClientIdentity {
            cert_pem: self.read("client.pem"),
            key_pem: self.read("client.key"),
        }
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn custom_ca_and_client_certificate_complete_mutual_tls() {
    let server = TlsServer::start();
    let client = server.client(TlsConfig {
        ca_pem: Some(server.read("ca.pem")),
        client_identity: Some(server.identity()),
        insecure_skip_verify: false,
    });
    let err = client.health().await.unwrap_err();
    // The handshake succeeded: the answer came through, it just is not Flink's.
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
}

#[tokio::test]
async fn server_certificate_from_an_unknown_ca_is_refused() {
    let server = TlsServer::start();
    let client = server.client(TlsConfig {
        ca_pem: None,
        client_identity: Some(server.identity()),
        insecure_skip_verify: false,
    });
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
}

#[tokio::test]
async fn missing_client_certificate_is_refused_by_a_server_that_requires_one() {
    let server = TlsServer::start();
    let client = server.client(TlsConfig {
        ca_pem: Some(server.read("ca.pem")),
        client_identity: None,
        insecure_skip_verify: false,
    });
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca() {
    let server = TlsServer::start();
    let client = server.client(TlsConfig {
        ca_pem: None,
        client_identity: Some(server.identity()),
        insecure_skip_verify: true,
    });
    let err = client.health().await.unwrap_err();
    assert!(matches!(err, Error::NotFlink { .. }), "{err}");
}
