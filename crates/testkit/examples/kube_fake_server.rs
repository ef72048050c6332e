//! The testkit's fake Kubernetes API server as a process of its own, for benchmarks that must
//! measure the operator without the fake in the same process.
//!
//! ```sh
//! kube_fake_server --kubeconfig /tmp/fake.kubeconfig
//! ```
//!
//! Writes a kubeconfig for the server (plain HTTP on 127.0.0.1, no credentials), prints the
//! URL, and serves until SIGTERM or Ctrl-C. The request log is off.

use std::path::PathBuf;
use std::process::ExitCode;

use flinkpilot_testkit::kube_fake::FakeApiServer;

fn usage() -> ExitCode {
    eprintln!("usage: kube_fake_server --kubeconfig PATH");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag, path] if flag == "--kubeconfig" => PathBuf::from(path),
        _ => return usage(),
    };
    let server = match FakeApiServer::builder().request_log(false).start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube_fake_server: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
         users:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    \
         cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\n",
        url = server.url()
    );
    // written whole, then renamed: a reader never sees half a file
    let partial = path.with_extension("partial");
    if let Err(e) =
        std::fs::write(&partial, kubeconfig).and_then(|()| std::fs::rename(&partial, &path))
    {
        eprintln!("kube_fake_server: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("{}", server.url());
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("kube_fake_server: cannot handle SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    ExitCode::SUCCESS
}
