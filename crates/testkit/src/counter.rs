//! The counter job (`jobs/counter`): its arguments and its output.
//!
//! Each subtask appends `key,count,epochMillis` lines to its own file in the output directory.
//! A key's count continues after a restore from a snapshot and starts again at 1 when state
//! was lost, which is what tests look at.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Arguments of the counter job; see `jobs/README.md`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterArgs {
    /// `--rate`: records per second for the whole job (job default: 10).
    pub rate: Option<u64>,
    /// `--keys`: number of distinct keys `0..K` (job default: 4).
    pub keys: Option<u64>,
    /// `--output`: directory for the per-subtask files; stdout when unset.
    pub output: Option<PathBuf>,
    /// `--checkpoint-interval`: overrides the cluster's checkpoint interval.
    pub checkpoint_interval: Option<Duration>,
    /// `--fail-at-count`: throw when a key's count would reach this value.
    pub fail_at_count: Option<u64>,
    /// `--fail-on-start`: throw when the counting operator opens.
    pub fail_on_start: bool,
}

impl CounterArgs {
    /// Sets `--rate`.
    #[must_use]
    pub fn rate(mut self, per_second: u64) -> Self {
        self.rate = Some(per_second);
        self
    }

    /// Sets `--keys`.
    #[must_use]
    pub fn keys(mut self, keys: u64) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Sets `--output`.
    #[must_use]
    pub fn output(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output = Some(dir.into());
        self
    }

    /// Sets `--checkpoint-interval` (whole milliseconds).
    #[must_use]
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = Some(interval);
        self
    }

    /// Sets `--fail-at-count`.
    #[must_use]
    pub fn fail_at_count(mut self, count: u64) -> Self {
        self.fail_at_count = Some(count);
        self
    }

    /// Sets `--fail-on-start`.
    #[must_use]
    pub fn fail_on_start(mut self) -> Self {
        self.fail_on_start = true;
        self
    }

    /// The program arguments, e.g. for the REST API's `programArgsList`.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let mut push = |flag: &str, value: String| {
            args.push(flag.to_string());
            args.push(value);
        };
        if let Some(rate) = self.rate {
            push("--rate", rate.to_string());
        }
        if let Some(keys) = self.keys {
            push("--keys", keys.to_string());
        }
        if let Some(dir) = &self.output {
            push("--output", dir.display().to_string());
        }
        if let Some(interval) = self.checkpoint_interval {
            push("--checkpoint-interval", interval.as_millis().to_string());
        }
        if let Some(count) = self.fail_at_count {
            push("--fail-at-count", count.to_string());
        }
        if self.fail_on_start {
            args.push("--fail-on-start".to_string());
        }
        args
    }
}

/// One output line: `key` had been counted `count` times at `at_millis`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CounterRecord {
    /// The key, `0..K`.
    pub key: u64,
    /// The key's count after this record.
    pub count: u64,
    /// When the record was counted, in milliseconds since the Unix epoch.
    pub at_millis: u64,
}

/// The output directory of a counter job (`--output`), read while the job runs.
#[derive(Clone, Debug)]
pub struct CounterOutput {
    dir: PathBuf,
}

impl CounterOutput {
    /// The output in `dir`; the directory may not exist yet.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every complete line of every file, in no particular order. A last line still being
    /// written (no newline yet) is left out.
    ///
    /// # Panics
    /// When a file cannot be read or holds a line that is not `key,count,millis`: the job
    /// never writes one, so that is a bug worth stopping for.
    pub fn records(&self) -> Vec<CounterRecord> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => panic!("cannot list counter output {}: {e}", self.dir.display()),
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry
                .unwrap_or_else(|e| {
                    panic!("cannot list counter output {}: {e}", self.dir.display())
                })
                .path();
            if path.extension().is_some_and(|ext| ext == "csv") {
                parse_file(&path, &mut records);
            }
        }
        records
    }

    /// The highest count seen per key.
    pub fn max_counts(&self) -> BTreeMap<u64, u64> {
        let mut max = BTreeMap::new();
        for r in self.records() {
            let m = max.entry(r.key).or_insert(0);
            *m = (*m).max(r.count);
        }
        max
    }

    /// Per key, the count of its earliest record written strictly after `after_millis` — after
    /// a restart, this shows whether counting continued from restored state or began at 1.
    pub fn first_counts_after(&self, after_millis: u64) -> BTreeMap<u64, u64> {
        let mut first: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for r in self
            .records()
            .into_iter()
            .filter(|r| r.at_millis > after_millis)
        {
            let candidate = (r.at_millis, r.count);
            first
                .entry(r.key)
                .and_modify(|f| *f = (*f).min(candidate))
                .or_insert(candidate);
        }
        first
            .into_iter()
            .map(|(key, (_, count))| (key, count))
            .collect()
    }

    /// The time of the newest record, if any.
    pub fn last_millis(&self) -> Option<u64> {
        self.records().iter().map(|r| r.at_millis).max()
    }

    /// The sum of the highest counts of all keys: how many records the job has counted.
    pub fn total(&self) -> u64 {
        self.max_counts().values().sum()
    }
}

fn parse_file(path: &Path, records: &mut Vec<CounterRecord>) {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read counter output {}: {e}", path.display()));
    // Only newline-terminated lines are complete; the writer may be mid-line.
    let complete = text.rfind('\n').map_or("", |end| &text[..end]);
    for (i, line) in complete.lines().enumerate() {
        let record = parse_line(line).unwrap_or_else(|| {
            panic!(
                "{}:{}: not a `key,count,millis` line: {line:?}",
                path.display(),
                i + 1
            )
        });
        records.push(record);
    }
}

fn parse_line(line: &str) -> Option<CounterRecord> {
    let mut fields = line.split(',').map(str::parse::<u64>);
    let record = CounterRecord {
        key: fields.next()?.ok()?,
        count: fields.next()?.ok()?,
        at_millis: fields.next()?.ok()?,
    };
    fields.next().is_none().then_some(record)
}

/// Now, in milliseconds since the Unix epoch, comparable with [`CounterRecord::at_millis`].
pub fn now_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_with(files: &[(&str, &str)]) -> (tempfile::TempDir, CounterOutput) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let output = CounterOutput::new(dir.path());
        (dir, output)
    }

    #[test]
    fn records_skip_a_line_still_being_written_and_other_files() {
        let (_dir, out) = output_with(&[
            ("a-0-0-1.csv", "0,1,100\n1,1,101\n0,2,1"),
            ("b-1-0-1.csv", "2,1,105\n"),
            ("notes.txt", "not output\n"),
        ]);
        let mut records = out.records();
        records.sort();
        let keys: Vec<(u64, u64)> = records.iter().map(|r| (r.key, r.count)).collect();
        assert_eq!(keys, vec![(0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn missing_directory_has_no_records() {
        let out = CounterOutput::new("/nonexistent/flinkpilot/counter-output");
        assert!(out.records().is_empty());
        assert_eq!(out.last_millis(), None);
    }

    #[test]
    #[should_panic(expected = "not a `key,count,millis` line")]
    fn a_malformed_line_fails_loudly() {
        let (_dir, out) = output_with(&[("x.csv", "0,1,100\n0,oops,101\n")]);
        out.records();
    }

    #[test]
    fn max_counts_and_first_counts_after_a_restart() {
        // key 0 counted to 3, restart at t=200 restored count 2, then continued
        let (_dir, out) = output_with(&[
            ("run1.csv", "0,1,100\n0,2,110\n0,3,120\n1,1,115\n"),
            ("run2.csv", "0,3,210\n0,4,220\n1,2,230\n"),
        ]);
        assert_eq!(out.max_counts(), BTreeMap::from([(0, 4), (1, 2)]));
        assert_eq!(
            out.first_counts_after(200),
            BTreeMap::from([(0, 3), (1, 2)])
        );
        assert_eq!(out.first_counts_after(225), BTreeMap::from([(1, 2)]));
        assert_eq!(out.last_millis(), Some(230));
        assert_eq!(out.total(), 6);
    }

    #[test]
    fn args_render_every_option() {
        let args = CounterArgs::default()
            .rate(50)
            .keys(3)
            .output("/tmp/out")
            .checkpoint_interval(Duration::from_millis(500))
            .fail_at_count(20)
            .fail_on_start()
            .to_args();
        assert_eq!(
            args,
            [
                "--rate",
                "50",
                "--keys",
                "3",
                "--output",
                "/tmp/out",
                "--checkpoint-interval",
                "500",
                "--fail-at-count",
                "20",
                "--fail-on-start"
            ]
        );
        assert!(CounterArgs::default().to_args().is_empty());
    }
}
