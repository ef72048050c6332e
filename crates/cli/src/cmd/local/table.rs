//! The status table of `get` and `up`: one row per deployment.

use api::{FlinkDeployment, FlinkJobState};

/// Column headers.
pub const HEADERS: [&str; 6] = [
    "NAME",
    "JOB STATUS",
    "LIFECYCLE",
    "JM STATUS",
    "LAST SAVEPOINT",
    "UPTIME",
];

/// One row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// `name`, or `namespace/name` outside `default`.
    pub name: String,
    /// The cells after the name, in [`HEADERS`] order.
    pub cells: [String; 5],
    /// `status.error`, shown under the table.
    pub error: Option<String>,
    /// The cells that change only with the state (no ages, no uptime), for printing a line
    /// per change.
    pub state: [String; 4],
}

/// The row of a deployment at `now_ms`.
pub fn row(d: &FlinkDeployment, now_ms: i64) -> Row {
    let status = d.status.clone().unwrap_or_default();
    let job = status.job_status.clone().unwrap_or_default();
    let ns = d.metadata.namespace.as_deref().unwrap_or("default");
    let name = if ns == "default" {
        d.name().to_string()
    } else {
        format!("{ns}/{}", d.name())
    };
    let dash = || "-".to_string();
    let savepoint = job
        .savepoint_info
        .as_ref()
        .and_then(|s| s.last_savepoint.as_ref());
    let savepoint_name = savepoint
        .and_then(|s| s.location.clone())
        .map(|location| {
            location
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .unwrap_or_else(dash);
    let last_savepoint = match savepoint.and_then(|s| s.time_stamp) {
        Some(t) => format!("{savepoint_name} ({} ago)", duration(now_ms - t)),
        None => savepoint_name.clone(),
    };
    let uptime = match (
        job.state,
        job.start_time
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok()),
    ) {
        (Some(FlinkJobState::Running), Some(start)) if start > 0 => duration(now_ms - start),
        _ => dash(),
    };
    let job_state = job.state.map_or_else(dash, |s| s.to_string());
    let lifecycle = status.lifecycle_state.map_or_else(dash, |s| s.to_string());
    let jm = status
        .job_manager_deployment_status
        .map_or_else(dash, |s| s.to_string());
    Row {
        name,
        state: [
            job_state.clone(),
            lifecycle.clone(),
            jm.clone(),
            savepoint_name,
        ],
        cells: [job_state, lifecycle, jm, last_savepoint, uptime],
        error: status.error.clone(),
    }
}

/// `1h2m`, `3m4s`, `5s` (negative durations read as 0s).
pub fn duration(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    let (h, m, s) = (s / 3600, (s / 60) % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The table as lines, columns padded to their widest cell.
pub fn render(rows: &[Row]) -> Vec<String> {
    let lines: Vec<Vec<&str>> = rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.name.as_str()];
            cells.extend(r.cells.iter().map(String::as_str));
            cells
        })
        .collect();
    render_cells(&HEADERS, &lines)
}

/// Any table as lines: `headers`, then `rows` (each as many cells as headers), columns padded
/// to their widest cell.
pub fn render_cells(headers: &[&str], rows: &[Vec<&str>]) -> Vec<String> {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   ", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(headers.to_vec())];
    for r in rows {
        out.push(line(r.clone()));
    }
    out
}

/// The first line of an error, shortened for one terminal line.
pub fn short_error(error: &str) -> String {
    let first = error.lines().next().unwrap_or_default();
    let mut s: String = first.chars().take(160).collect();
    if first.chars().count() > 160 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::{JobStatus, ResourceLifecycleState};

    #[test]
    fn rows_show_state_lifecycle_and_uptime() {
        let mut d = FlinkDeployment::test("counter").application();
        d.status = Some(api::FlinkDeploymentStatus {
            job_status: Some(JobStatus {
                state: Some(FlinkJobState::Running),
                start_time: Some("1000".into()),
                ..Default::default()
            }),
            lifecycle_state: Some(ResourceLifecycleState::Stable),
            ..Default::default()
        });
        let r = row(&d, 1000 + 125_000);
        assert_eq!(r.name, "counter");
        assert_eq!(r.cells[0], "RUNNING");
        assert_eq!(r.cells[1], "STABLE");
        assert_eq!(r.cells[2], "-");
        assert_eq!(r.cells[4], "2m5s");
        let lines = render(&[r]);
        assert!(lines[0].starts_with("NAME      JOB STATUS"), "{lines:?}");
        assert!(lines[1].starts_with("counter   RUNNING"), "{lines:?}");
    }

    #[test]
    fn durations_read_like_kubectl() {
        assert_eq!(duration(3_700_000), "1h1m");
        assert_eq!(duration(59_000), "59s");
        assert_eq!(duration(-5), "0s");
    }
}
