//! The webhook over real HTTPS: a server on a free port with a certificate generated here, a
//! client that trusts only that certificate's CA, and certificate rotation without a restart.

#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::FlinkDeployment;
use flinkpilot_k8s::webhook::tls::{
    DEFAULT_RELOAD_INTERVAL, TlsError, TlsFiles, WebhookTls, serve,
};
use flinkpilot_k8s::webhook::{WebhookState, app};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::Value;
use support::{Clusters, response, review, to_json};
use tokio::sync::oneshot;

/// A CA and a server certificate it signed for 127.0.0.1, as PEM.
struct Pki {
    ca: String,
    cert: String,
    key: String,
}

fn pki(name: &str) -> Pki {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "flinkpilot-webhook");
    let cert = leaf.signed_by(&key, &ca).unwrap();
    Pki {
        ca: ca.pem(),
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

/// Writes the pair the way the kubelet updates a Secret volume: new files, then a rename, so a
/// reader never sees half a file.
fn install(dir: &Path, pki: &Pki) {
    for (name, text) in [("tls.crt", &pki.cert), ("tls.key", &pki.key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

struct Server {
    url: String,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), flinkpilot_k8s::webhook::tls::ServeError>>,
    tls: Arc<WebhookTls>,
}

async fn start(dir: &Path, clusters: Clusters, reload: Duration) -> Server {
    let tls = Arc::new(WebhookTls::load(TlsFiles::in_dir(dir)).await.unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/validate", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(
        listener,
        tls.clone(),
        app(WebhookState::new(clusters)),
        reload,
        async {
            let _ = stopped.await;
        },
    ));
    Server {
        url,
        stop,
        task,
        tls,
    }
}

async fn post(client: &reqwest::Client, url: &str, body: &Value) -> reqwest::Result<Value> {
    client.post(url).json(body).send().await?.json().await
}

#[tokio::test]
async fn webhook_answers_a_real_admission_review_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    install(dir.path(), &first);
    let server = start(dir.path(), Clusters::default(), DEFAULT_RELOAD_INTERVAL).await;

    let mut bad = FlinkDeployment::test("counter").application();
    bad.spec.job.as_mut().unwrap().parallelism = Some(-2);
    let request = review("CREATE", &to_json(&bad), None);
    let answer = post(&client_trusting(&first.ca), &server.url, &request)
        .await
        .unwrap();
    let resp = response(&answer);
    assert_eq!(resp["uid"], request["request"]["uid"], "{answer}");
    assert_eq!(resp["allowed"], false, "{answer}");
    assert!(
        resp["status"]["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.job.parallelism: "),
        "{answer}"
    );

    // The server presents that certificate: a client trusting another CA refuses it.
    let stranger = pki("stranger");
    let refused = post(&client_trusting(&stranger.ca), &server.url, &request).await;
    assert!(refused.is_err(), "{refused:?}");

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_rotated_certificate_is_served_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    install(dir.path(), &first);
    let server = start(dir.path(), Clusters::default(), Duration::from_millis(50)).await;
    let request = review("CREATE", &to_json(&FlinkDeployment::test("session")), None);
    let answer = post(&client_trusting(&first.ca), &server.url, &request)
        .await
        .unwrap();
    assert_eq!(response(&answer)["allowed"], true, "{answer}");

    let second = pki("second");
    install(dir.path(), &second);
    let new_client = client_trusting(&second.ca);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // fresh connections each time: a reloaded certificate applies to new handshakes
        match post(&new_client, &server.url, &request).await {
            Ok(answer) => {
                assert_eq!(response(&answer)["allowed"], true, "{answer}");
                break;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the rotated certificate was not served within 20 s: {e}"),
        }
    }
    let old = post(&client_trusting(&first.ca), &server.url, &request).await;
    assert!(old.is_err(), "the old certificate is still served: {old:?}");

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_previous_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let first = pki("first");
    install(dir.path(), &first);
    // Reloads are driven by hand here; the periodic check never fires during the test.
    let server = start(dir.path(), Clusters::default(), Duration::from_secs(3600)).await;

    std::fs::write(dir.path().join("tls.crt"), "not a certificate\n").unwrap();
    let err = server.tls.reload_if_changed().await.unwrap_err();
    assert!(matches!(err, TlsError::Certificate { .. }), "{err}");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    let request = review("CREATE", &to_json(&FlinkDeployment::test("session")), None);
    let answer = post(&client_trusting(&first.ca), &server.url, &request)
        .await
        .unwrap();
    assert_eq!(response(&answer)["allowed"], true, "{answer}");

    // and a good pair is picked up by the next check
    let second = pki("second");
    install(dir.path(), &second);
    assert!(server.tls.reload_if_changed().await.unwrap());
    assert!(!server.tls.reload_if_changed().await.unwrap());
    let answer = post(&client_trusting(&second.ca), &server.url, &request)
        .await
        .unwrap();
    assert_eq!(response(&answer)["allowed"], true, "{answer}");

    server.stop.send(()).unwrap();
    server.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn loading_names_the_file_that_is_missing_or_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let err = WebhookTls::load(TlsFiles::in_dir(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("tls.crt"), "{err}");

    let a = pki("a");
    let b = pki("b");
    std::fs::write(dir.path().join("tls.crt"), &a.cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), "-----BEGIN NOTHING-----\n").unwrap();
    let err = WebhookTls::load(TlsFiles::in_dir(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Key { .. }), "{err}");
    assert!(err.to_string().contains("tls.key"), "{err}");

    // a key that is not the certificate's
    std::fs::write(dir.path().join("tls.key"), &b.key).unwrap();
    let err = WebhookTls::load(TlsFiles::in_dir(dir.path()))
        .await
        .unwrap_err();
    assert!(matches!(err, TlsError::Config { .. }), "{err}");
}
