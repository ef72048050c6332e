//! `flinkpilot local up [-f FILE…]`: apply manifests, then run the controller in the
//! foreground with a live status table (redrawn in place on a terminal, one line per change
//! otherwise). Ctrl-C stops reconciling and leaves every Flink cluster running; the next `up`
//! adopts them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use api::{FlinkDeployment, JobManagerDeploymentStatus};
use engine::controller::{self, ControllerOptions, now_ms};
use engine::{PathMap, Settings};
use local::LocalBackend;

use super::adapter::StoreAdapter;
use super::{Local, apply, table};

/// Arguments of `flinkpilot local up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifests to apply before starting (files, directories, `-` for stdin).
    #[arg(short = 'f', long = "filename", value_name = "FILE", num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Seconds between two observations of a steady deployment.
    #[arg(long, default_value_t = 2.0, value_name = "SECONDS")]
    pub observe_interval: f64,
    /// Print one line per change instead of redrawing the table (the default when stdout is
    /// not a terminal).
    #[arg(long)]
    pub plain: bool,
}

/// The engine settings of `flinkpilot local` on `state_root` (absolute): paths of container
/// images mapped into the state dir, default state directories per deployment.
pub fn settings(state_root: &std::path::Path, observe_interval: Duration) -> Settings {
    let root = state_root.display().to_string();
    Settings {
        observe_interval,
        // The layout of the Flink images, so manifests written for Kubernetes run unchanged:
        // jobs in /opt/flink/usrlib, state on a volume at /flink-data.
        paths: PathMap::new()
            .with("/opt/flink/usrlib", format!("{root}/usrlib"))
            .with("/flink-data", format!("{root}/flink-data")),
        default_state_dir: Some(format!("file://{root}/data")),
        // A TaskManager that starts before its JobManager listens retries after this delay;
        // Flink's 10 s default would add 10 s to a redeploy whenever the race is lost.
        default_config: [("cluster.registration.error-delay".into(), "500 ms".into())].into(),
        ..Settings::local()
    }
}

/// The Flink web UI of a deployment's cluster, when one is deployed.
pub fn ui_url(local: &Local, d: &FlinkDeployment) -> Option<String> {
    let backend = local.backend(false, Arc::new(|_: &str| {})).ok()?;
    let key = engine::decide::resource_key(d);
    backend
        .cluster_info(&key)
        .ok()
        .flatten()
        .map(|c| c.rest_url.trim_end_matches('/').to_string())
}

/// Runs `flinkpilot local up`.
pub fn run(local: &Local, args: Args) -> anyhow::Result<ExitCode> {
    // Validate first, then make sure this is the only controller, then write.
    let manifests = if args.files.is_empty() {
        apply::Manifests::default()
    } else {
        apply::read_valid(local, &args.files)?
    };
    let _lock = local.store.lock_controller()?;
    for line in apply::write(local, manifests)? {
        println!("{line}");
    }
    let log_path = local.state.root().join("controller.log");
    init_logging(&log_path)?;

    let progress: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = progress.clone();
    let backend = local.backend(
        true,
        Arc::new(move |message: &str| {
            if let Ok(mut m) = sink.lock() {
                m.push(message.to_string());
            }
        }),
    )?;
    let root = backend.state_dir().root().to_path_buf();
    let interval = Duration::from_secs_f64(args.observe_interval.clamp(0.1, 3600.0));
    let settings = Arc::new(settings(&root, interval));
    let store = Arc::new(StoreAdapter::new(local.store.clone()));
    let fancy = !args.plain && std::io::stdout().is_terminal();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Listening from here on: a signal that arrives while the view is drawn is kept.
        let mut shutdown = ShutdownSignals::listen()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let shared_backend = Arc::new(backend.clone());
        let controller = tokio::spawn(controller::run(
            shared_backend.clone(),
            store.clone(),
            settings.clone(),
            ControllerOptions::default(),
            wait_stop(stop_rx.clone()),
        ));
        // FlinkSessionJobs, on the session clusters the deployments' controller runs.
        let session_jobs = tokio::spawn(engine::session_job::controller::run(
            shared_backend.clone(),
            store.clone(),
            settings.clone(),
            ControllerOptions::default(),
            wait_stop(stop_rx.clone()),
        ));
        // FlinkStateSnapshots: the user's and those the deployments' controller creates.
        let snapshots = tokio::spawn(engine::snapshot::controller::run(
            shared_backend,
            store,
            settings,
            ControllerOptions::default(),
            wait_stop(stop_rx.clone()),
        ));
        eprintln!(
            "flinkpilot: controller running on {} (log: {}); Ctrl-C stops it and leaves the \
             clusters running",
            root.display(),
            log_path.display()
        );
        let mut view = View::new(fancy);
        let mut tick = tokio::time::interval(Duration::from_millis(if fancy { 500 } else { 1000 }));
        loop {
            tokio::select! {
                () = shutdown.recv() => break,
                _ = tick.tick() => {
                    let messages = std::mem::take(&mut *progress.lock().unwrap_or_else(|p| p.into_inner()));
                    view.show(local, &backend, &messages);
                }
            }
        }
        let _ = stop_tx.send(true);
        let _ = tokio::join!(controller, session_jobs, snapshots);
        view.finish();
        anyhow::Ok(())
    })?;
    print_goodbye(local);
    Ok(ExitCode::SUCCESS)
}

async fn wait_stop(mut rx: tokio::sync::watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Ctrl-C and SIGTERM, listened to for as long as this lives. Made once, before the loop
/// that waits for them: a listener made anew for each wait would miss a signal arriving
/// between two waits (tokio's listeners only see signals that come after them), and `up`
/// would then ignore it for good, as signal handling stays installed.
struct ShutdownSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    fn listen() -> anyhow::Result<ShutdownSignals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    /// The next Ctrl-C or SIGTERM (cancel-safe: one that came meanwhile is returned at once).
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

fn print_goodbye(local: &Local) {
    let names: Vec<String> = local
        .store
        .list::<FlinkDeployment>()
        .unwrap_or_default()
        .iter()
        .filter(|d| {
            d.status
                .as_ref()
                .and_then(|s| s.job_manager_deployment_status)
                .is_some_and(|s| s != JobManagerDeploymentStatus::Missing)
        })
        .map(|d| d.name().to_string())
        .collect();
    eprintln!("flinkpilot: controller stopped; nothing was stopped.");
    if !names.is_empty() {
        eprintln!(
            "Flink clusters keep running: {}. Run `flinkpilot local up` again to manage them, \
             or stop them with `flinkpilot local suspend NAME` / `delete NAME` (while `up` runs).",
            names.join(", ")
        );
    }
}

/// Logs of the controller go to a file, so they never tear the live table.
fn init_logging(path: &std::path::Path) -> anyhow::Result<()> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open the controller log {}", path.display()))?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLINKPILOT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(Mutex::new(file))
        .try_init();
    Ok(())
}

/// The live view: the table redrawn in place, or one line per change.
struct View {
    fancy: bool,
    drawn_lines: usize,
    last_rows: BTreeMap<String, table::Row>,
    last_jobs: BTreeMap<String, String>,
    announced: BTreeSet<String>,
    notes: Vec<String>,
}

impl View {
    fn new(fancy: bool) -> Self {
        View {
            fancy,
            drawn_lines: 0,
            last_rows: BTreeMap::new(),
            last_jobs: BTreeMap::new(),
            announced: BTreeSet::new(),
            notes: Vec::new(),
        }
    }

    fn show(&mut self, local: &Local, backend: &LocalBackend, progress: &[String]) {
        let deployments = local.store.list::<FlinkDeployment>().unwrap_or_default();
        let now = now_ms();
        let rows: Vec<table::Row> = deployments.iter().map(|d| table::row(d, now)).collect();
        let mut news: Vec<String> = progress.iter().map(|m| format!("flink: {m}")).collect();
        let session_jobs = local
            .store
            .list::<api::FlinkSessionJob>()
            .unwrap_or_default();
        let jobs: BTreeMap<String, String> = session_jobs
            .iter()
            .map(|j| {
                let cells = super::session_jobs::row(j, now);
                let mut line = format!("job={} lifecycle={}", cells[2], cells[3]);
                if let Some(e) = j.status.as_ref().and_then(|s| s.error.as_deref()) {
                    line.push_str(&format!(" error={}", table::short_error(e)));
                }
                (j.name().to_string(), line)
            })
            .collect();
        for d in &deployments {
            let ready = d
                .status
                .as_ref()
                .and_then(|s| s.job_manager_deployment_status)
                == Some(JobManagerDeploymentStatus::Ready);
            let key = engine::decide::resource_key(d);
            if ready && self.announced.insert(key.to_string()) {
                if let Ok(Some(info)) = backend.cluster_info(&key) {
                    news.push(format!(
                        "{}: Flink web UI at {}",
                        d.name(),
                        info.rest_url.trim_end_matches('/')
                    ));
                }
            } else if !ready {
                self.announced.remove(&key.to_string());
            }
        }
        if self.fancy {
            self.notes.extend(news);
            let keep = self.notes.len().saturating_sub(6);
            self.notes.drain(..keep);
            self.redraw(&rows, &session_jobs, now);
        } else {
            let mut out = std::io::stdout().lock();
            for n in news {
                let _ = writeln!(out, "{n}");
            }
            for r in &rows {
                let before = self.last_rows.get(&r.name);
                if before.is_some_and(|b| b.state == r.state && b.error == r.error) {
                    continue;
                }
                let s = &r.state;
                let mut line = format!(
                    "{}: job={} lifecycle={} jm={} savepoint={}",
                    r.name, s[0], s[1], s[2], s[3]
                );
                if let Some(e) = &r.error {
                    line.push_str(&format!(" error={}", table::short_error(e)));
                }
                let _ = writeln!(out, "{line}");
            }
            for (name, line) in &jobs {
                if self.last_jobs.get(name) != Some(line) {
                    let _ = writeln!(out, "sessionjob/{name}: {line}");
                }
            }
            let _ = out.flush();
        }
        self.last_rows = rows.into_iter().map(|r| (r.name.clone(), r)).collect();
        self.last_jobs = jobs;
    }

    fn redraw(&mut self, rows: &[table::Row], session_jobs: &[api::FlinkSessionJob], now: i64) {
        let mut lines = if rows.is_empty() {
            vec![
                "no FlinkDeployments yet; apply one with `flinkpilot local apply -f FILE`"
                    .to_string(),
            ]
        } else {
            table::render(rows)
        };
        for r in rows {
            if let Some(e) = &r.error {
                lines.push(format!("{}: {}", r.name, table::short_error(e)));
            }
        }
        if !session_jobs.is_empty() {
            lines.push(String::new());
            let cells: Vec<Vec<String>> = session_jobs
                .iter()
                .map(|j| super::session_jobs::row(j, now))
                .collect();
            let cells: Vec<Vec<&str>> = cells
                .iter()
                .map(|r| r.iter().map(String::as_str).collect())
                .collect();
            lines.extend(table::render_cells(&super::session_jobs::HEADERS, &cells));
            for j in session_jobs {
                if let Some(e) = j.status.as_ref().and_then(|s| s.error.as_deref()) {
                    lines.push(format!("{}: {}", j.name(), table::short_error(e)));
                }
            }
        }
        if !self.notes.is_empty() {
            lines.push(String::new());
            lines.extend(self.notes.iter().cloned());
        }
        let mut out = std::io::stdout().lock();
        // move up over the previous drawing and clear it
        if self.drawn_lines > 0 {
            let _ = write!(out, "\x1b[{}F\x1b[J", self.drawn_lines);
        }
        for l in &lines {
            let _ = writeln!(out, "{l}");
        }
        let _ = out.flush();
        self.drawn_lines = lines.len();
    }

    fn finish(&mut self) {
        let _ = std::io::stdout().flush();
    }
}
