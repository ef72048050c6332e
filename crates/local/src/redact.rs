//! The end of a process's log, safe to put into a status or an event: values of secret-looking
//! options are masked wherever they appear.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use flink::config::{FlinkConfig, is_sensitive_key};

const MASK: &str = "******";
/// At most this much of a log's end is read.
const TAIL_BYTES: u64 = 64 * 1024;

/// The last `lines` lines of the file at `path`, with the values of `config`'s secret options
/// and of any `key: value` / `key=value` pair whose key looks secret masked. `None` when the
/// file cannot be read or is empty.
pub(crate) fn log_tail(path: &Path, lines: usize, config: &FlinkConfig) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    // A read that starts mid-file starts mid-line: drop that partial first line.
    let skip = usize::from(len > TAIL_BYTES && all.len() > 1);
    let kept = &all[skip.max(all.len().saturating_sub(lines))..];
    let tail = kept.join("\n");
    (!tail.trim().is_empty()).then(|| redact(&tail, config))
}

/// Masks secrets in `text`: every value of a sensitive option in `config`, and the value of any
/// `key: value`, `key=value` or `key, value` pair whose key looks sensitive.
pub(crate) fn redact(text: &str, config: &FlinkConfig) -> String {
    let mut out: String = text.lines().map(redact_line).collect::<Vec<_>>().join("\n");
    for (key, value) in config.iter() {
        // very short values would mask unrelated text and hide little
        if sensitive(key) && value.len() >= 4 {
            out = out.replace(value, MASK);
        }
    }
    out
}

fn redact_line(line: &str) -> String {
    // `key: value`, and Flink's `Loading configuration property: key, value`
    for separator in [": ", ", "] {
        if let Some((left, right)) = line.rsplit_once(separator) {
            let key = left.rsplit(char::is_whitespace).next().unwrap_or(left);
            if !right.trim().is_empty() && sensitive(key) {
                return format!("{left}{separator}{MASK}");
            }
        }
    }
    // `key=value` words: JVM `-D` options, dynamic properties
    line.split(' ')
        .map(|word| match word.split_once('=') {
            Some((key, _)) if sensitive(key.trim_start_matches("-D")) => format!("{key}={MASK}"),
            _ => word.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Flink's list of secret-looking option names, and ours.
fn sensitive(key: &str) -> bool {
    is_sensitive_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_configured_secret_values_anywhere() {
        let config = FlinkConfig::new()
            .with("s3.secret-key", "hunter2secret")
            .with("rest.port", "8081");
        let text = "connecting with hunter2secret to s3\nport 8081";
        assert_eq!(
            redact(text, &config),
            "connecting with ****** to s3\nport 8081"
        );
    }

    #[test]
    fn masks_pairs_whose_key_looks_secret() {
        let config = FlinkConfig::new();
        let text = "Loading configuration property: s3.access-key, AKIA123\n\
                    INFO  - password: letmein\n\
                    java -Da=1 -Dsecurity.ssl.keystore-password=abc123 -Db=2\n\
                    rest.port: 8081";
        let out = redact(text, &config);
        assert!(!out.contains("letmein"), "{out}");
        assert!(!out.contains("abc123"), "{out}");
        assert!(!out.contains("AKIA123"), "{out}");
        assert!(
            out.contains("-Da=1 -Dsecurity.ssl.keystore-password=****** -Db=2"),
            "{out}"
        );
        assert!(out.contains("rest.port: 8081"), "{out}");
    }

    #[test]
    fn log_tail_keeps_the_last_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let tail = log_tail(&path, 3, &FlinkConfig::new()).unwrap();
        assert_eq!(tail, "line 97\nline 98\nline 99");
        assert_eq!(
            log_tail(&dir.path().join("none"), 3, &FlinkConfig::new()),
            None
        );
    }
}
