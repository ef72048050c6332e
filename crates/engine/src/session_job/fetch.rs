//! Jars named by `http://` or `https://` URIs: downloaded by the controller (as the Apache
//! operator does) to a file in the temporary directory, at most [`MAX_JAR_BYTES`], uploaded to
//! the session cluster, and removed again when the [`FetchedJar`] is dropped. Credentials in
//! the URI (`https://user:password@host/…`) are sent as basic authentication and never appear
//! in a message: errors name the URI through [`without_credentials`] and drop the URL reqwest
//! puts into its own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use super::without_credentials;

/// The largest jar downloaded (the operator's install gives its temporary directory 1 GiB).
pub const MAX_JAR_BYTES: u64 = 512 * 1024 * 1024;

/// Longest time for one download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether `location` is a jar to download rather than a path on this machine.
pub fn is_remote(location: &str) -> bool {
    let lower = location.get(..8).unwrap_or(location).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// A downloaded jar; the file is removed when this is dropped.
#[derive(Debug)]
pub struct FetchedJar {
    path: PathBuf,
}

impl FetchedJar {
    /// Where the jar is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FetchedJar {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why a download failed: a message without credentials, and whether trying again may help.
#[derive(Debug)]
pub struct FetchError {
    /// What failed, naming the URI without its credentials.
    pub message: String,
    /// A server or network failure (retried); false for a refusal or a jar too large.
    pub transient: bool,
}

/// Downloads the jar at `uri` into `dir` as `<file_prefix>-<name>.jar`, refusing more than
/// `max_bytes`.
pub async fn download(
    uri: &str,
    dir: &Path,
    file_prefix: &str,
    max_bytes: u64,
) -> Result<FetchedJar, FetchError> {
    let shown = without_credentials(uri).into_owned();
    let fail = |what: String, transient: bool| FetchError {
        message: format!("downloading {shown}: {what}"),
        transient,
    };
    let client = reqwest::Client::builder()
        .timeout(DOWNLOAD_TIMEOUT)
        .build()
        .map_err(|e| fail(e.without_url().to_string(), true))?;
    let mut response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| fail(e.without_url().to_string(), true))?;
    let status = response.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}"), status.is_server_error()));
    }
    let too_large = || {
        fail(
            format!("the jar is larger than {} MiB", max_bytes / (1024 * 1024)),
            false,
        )
    };
    if response.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large());
    }
    let jar = FetchedJar {
        path: dir.join(format!("{file_prefix}-{}", file_name(uri))),
    };
    let mut file = tokio::fs::File::create(&jar.path)
        .await
        .map_err(|e| fail(format!("writing {}: {e}", jar.path.display()), true))?;
    let mut written: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| fail(e.without_url().to_string(), true))?
    {
        written = written.saturating_add(chunk.len() as u64);
        if written > max_bytes {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| fail(format!("writing {}: {e}", jar.path.display()), true))?;
    }
    file.flush()
        .await
        .map_err(|e| fail(format!("writing {}: {e}", jar.path.display()), true))?;
    Ok(jar)
}

/// The URI's last path segment when it is a plain `.jar` name (Flink keeps the name of an
/// uploaded jar), else `job.jar`.
fn file_name(uri: &str) -> String {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    path.rsplit('/')
        .next()
        .filter(|n| {
            n.ends_with(".jar")
                && n.len() > 4
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
        .unwrap_or("job.jar")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// Serves one answer per connection: `status` with `body`, and `Content-Length` unless
    /// `chunked`. Returns the base URL and the requests received.
    async fn serve(
        status: &'static str,
        body: Vec<u8>,
        chunked: bool,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = vec![0u8; 4096];
                let n = socket.read(&mut request).await.unwrap_or(0);
                let _ = tx.send(String::from_utf8_lossy(&request[..n]).to_string());
                let head = if chunked {
                    format!(
                        "HTTP/1.1 {status}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                    )
                } else {
                    format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                };
                let _ = socket.write_all(head.as_bytes()).await;
                if chunked {
                    let _ = socket
                        .write_all(format!("{:x}\r\n", body.len()).as_bytes())
                        .await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.write_all(b"\r\n0\r\n\r\n").await;
                } else {
                    let _ = socket.write_all(&body).await;
                }
            }
        });
        (format!("http://user:s3cret@{addr}"), rx)
    }

    #[tokio::test]
    async fn a_jar_is_downloaded_with_basic_auth_and_removed_when_dropped() {
        let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let (base, mut requests) = serve("200 OK", body.clone(), false).await;
        let dir = tempfile::tempdir().expect("dir");
        let jar = download(
            &format!("{base}/jobs/counter.jar?x=1"),
            dir.path(),
            "j1",
            1 << 20,
        )
        .await
        .expect("downloaded");
        assert_eq!(jar.path(), dir.path().join("j1-counter.jar"));
        assert_eq!(std::fs::read(jar.path()).expect("read"), body);
        let request = requests.recv().await.expect("a request");
        // user:s3cret
        assert!(
            request.contains("Authorization: Basic dXNlcjpzM2NyZXQ=")
                || request.contains("authorization: Basic dXNlcjpzM2NyZXQ="),
            "{request}"
        );
        let path = jar.path().to_path_buf();
        drop(jar);
        assert!(!path.exists(), "removed after use");
    }

    #[tokio::test]
    async fn a_jar_over_the_limit_is_refused_whether_or_not_its_length_is_announced() {
        let dir = tempfile::tempdir().expect("dir");
        for chunked in [false, true] {
            let (base, _requests) = serve("200 OK", vec![7u8; 3 * 1024 * 1024], chunked).await;
            let err = download(&format!("{base}/big.jar"), dir.path(), "j2", 1024 * 1024)
                .await
                .expect_err("too large");
            assert!(!err.transient);
            assert!(err.message.contains("larger than 1 MiB"), "{}", err.message);
            assert!(!err.message.contains("s3cret"), "{}", err.message);
        }
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            0,
            "nothing is left behind"
        );
    }

    #[tokio::test]
    async fn failures_name_the_uri_without_its_credentials() {
        let dir = tempfile::tempdir().expect("dir");
        let (base, _requests) = serve("404 Not Found", b"no".to_vec(), false).await;
        let err = download(&format!("{base}/missing.jar"), dir.path(), "j3", 1024)
            .await
            .expect_err("not found");
        assert!(err.message.contains("HTTP 404"), "{}", err.message);
        assert!(
            err.message.contains("http://***@127.0.0.1"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("s3cret"), "{}", err.message);

        // nothing listens: reqwest's own error names the URL; it is dropped
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let err = download(
            &format!("https://user:s3cret@127.0.0.1:{port}/x.jar"),
            dir.path(),
            "j4",
            1024,
        )
        .await
        .expect_err("unreachable");
        assert!(err.transient);
        assert!(!err.message.contains("s3cret"), "{}", err.message);
    }

    #[test]
    fn file_names_are_kept_only_when_plain() {
        assert_eq!(
            file_name("https://h/a/counter-1.0.jar?sig=1"),
            "counter-1.0.jar"
        );
        assert_eq!(file_name("https://h/a/"), "job.jar");
        assert_eq!(file_name("https://h/dl?file=x.jar"), "job.jar");
        assert_eq!(file_name("https://h/a/we%20ird.jar"), "job.jar");
        assert!(is_remote("HTTPS://h/x.jar") && is_remote("http://h/x.jar"));
        assert!(!is_remote("file:///x.jar") && !is_remote("/x.jar"));
    }
}
