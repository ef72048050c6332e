//! `flinkpilot validate -f FILE…`: check manifests without a cluster.
//!
//! Prints one line per problem, `FILE: Kind/name: field.path: message`, and exits 1 when there
//! is any; otherwise prints `N resources in M files are valid` and exits 0. A file that is not
//! YAML gets `FILE: line L, column C: message`. Documents of other API groups (Services,
//! Secrets, …) are skipped and counted in the summary; unsupported `flink.apache.org` kinds are
//! problems. A session job is checked against the `FlinkDeployment` it names when that is among
//! the given files.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use api::manifest::{Content, ParseError, Resource, parse_documents};

/// Arguments of `flinkpilot validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Manifest files or directories (their *.yaml, *.yml and *.json files); `-` reads stdin.
    #[arg(short = 'f', long = "filename", value_name = "FILE", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
}

/// One input: its display name and its text (or why it could not be read).
pub struct Input {
    /// Name to print (`<stdin>` for `-`).
    pub name: String,
    /// The text, or the read error as a sentence.
    pub text: Result<String, String>,
}

/// The outcome of checking a set of inputs.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// Problem lines, in input order.
    pub problems: Vec<String>,
    /// Number of flinkpilot resources read.
    pub resources: usize,
    /// Number of inputs.
    pub files: usize,
    /// Kinds of the documents skipped as not ours.
    pub skipped: Vec<String>,
}

impl Report {
    /// The one-line summary printed when everything is valid.
    pub fn summary(&self) -> String {
        let plural =
            |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        let mut s = format!(
            "{} in {} {} valid",
            plural(self.resources, "resource", "resources"),
            plural(self.files, "file", "files"),
            if self.resources == 1 { "is" } else { "are" }
        );
        if !self.skipped.is_empty() {
            let kinds: BTreeSet<&String> = self.skipped.iter().collect();
            let kinds: Vec<&str> = kinds.into_iter().map(String::as_str).collect();
            s.push_str(&format!(
                "; {} skipped ({})",
                plural(self.skipped.len(), "other document", "other documents"),
                kinds.join(", ")
            ));
        }
        s
    }
}

fn parse_error_line(file: &str, e: &ParseError) -> String {
    let mut line = format!("{file}: ");
    match (&e.kind, &e.name) {
        (Some(kind), Some(name)) => line.push_str(&format!("{kind}/{name}: ")),
        (Some(kind), None) => line.push_str(&format!("{kind}: ")),
        _ => {}
    }
    match (&e.field, e.location) {
        (Some(field), Some((l, c))) => {
            line.push_str(&format!("{field}: {} (line {l}, column {c})", e.message))
        }
        (Some(field), None) => line.push_str(&format!("{field}: {}", e.message)),
        (None, Some((l, c))) => line.push_str(&format!("line {l}, column {c}: {}", e.message)),
        (None, None) => line.push_str(&e.message),
    }
    line
}

/// Checks every document of every input. Pure, so it is tested without files.
pub fn check(inputs: &[Input]) -> Report {
    let mut report = Report {
        files: inputs.len(),
        ..Default::default()
    };
    // (file, resource) for every resource, so session jobs can find their cluster in any file.
    let mut resources: Vec<(&str, Resource)> = Vec::new();
    for input in inputs {
        let text = match &input.text {
            Ok(text) => text,
            Err(why) => {
                report.problems.push(format!("{}: {why}", input.name));
                continue;
            }
        };
        for doc in parse_documents(text) {
            match doc.content {
                Ok(Content::Resource(r)) => resources.push((&input.name, *r)),
                Ok(Content::Other { kind, .. }) => report.skipped.push(kind),
                Err(e) => report.problems.push(parse_error_line(&input.name, &e)),
            }
        }
    }
    report.resources = resources.len();
    let set: Vec<&Resource> = resources.iter().map(|(_, r)| r).collect();
    for (file, r) in &resources {
        for p in api::validate::resource(r, &set) {
            report
                .problems
                .push(format!("{file}: {}/{}: {p}", r.kind(), r.name()));
        }
    }
    report
}

/// Expands directories into their manifest files, sorted.
fn expand(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)
        .with_context(|| format!("could not read directory {}", path.display()))?
    {
        let p = entry
            .with_context(|| format!("could not read directory {}", path.display()))?
            .path();
        if p.is_file()
            && p.extension()
                .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

fn read_input(path: &Path) -> Input {
    if path == Path::new("-") {
        let mut text = String::new();
        let text = std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|e| format!("could not read standard input: {e}"));
        return Input {
            name: "<stdin>".into(),
            text,
        };
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("could not read the file: {e}"));
    Input {
        name: path.display().to_string(),
        text,
    }
}

/// Runs `flinkpilot validate`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut inputs = Vec::new();
    for path in &args.files {
        for file in expand(path)? {
            inputs.push(read_input(&file));
        }
    }
    let report = check(&inputs);
    if report.problems.is_empty() {
        println!("{}", report.summary());
        return Ok(ExitCode::SUCCESS);
    }
    for line in &report.problems {
        println!("{line}");
    }
    eprintln!(
        "{} found in {} {}",
        if report.problems.len() == 1 {
            "1 problem".to_string()
        } else {
            format!("{} problems", report.problems.len())
        },
        report.files,
        if report.files == 1 { "file" } else { "files" }
    );
    Ok(ExitCode::from(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(name: &str, text: &str) -> Input {
        Input {
            name: name.into(),
            text: Ok(text.into()),
        }
    }

    const SESSION: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\n\
        metadata: {name: session}\nspec: {flinkVersion: v2_3, serviceAccount: flink}\n";
    const JOB: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkSessionJob\n\
        metadata: {name: job}\nspec:\n  deploymentName: session\n  job: {jarURI: 'https://x/j.jar', parallelism: 1}\n";

    #[test]
    fn valid_inputs_give_a_summary_with_skipped_kinds() {
        let r = check(&[
            input("a.yaml", SESSION),
            input(
                "b.yaml",
                &format!("{JOB}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\n"),
            ),
        ]);
        assert_eq!(r.problems, Vec::<String>::new());
        assert_eq!(
            r.summary(),
            "2 resources in 2 files are valid; 1 other document skipped (Service)"
        );
    }

    #[test]
    fn session_jobs_are_checked_against_clusters_in_other_files() {
        let app = SESSION.replace(
            "spec: {",
            "spec: {job: {jarURI: 'local:///j.jar', parallelism: 1}, ",
        );
        let r = check(&[input("a.yaml", &app), input("b.yaml", JOB)]);
        assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
        assert!(
            r.problems[0].starts_with("b.yaml: FlinkSessionJob/job: spec.deploymentName: "),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn unreadable_and_malformed_inputs_are_problems() {
        let r = check(&[
            Input {
                name: "gone.yaml".into(),
                text: Err("could not read the file: not found".into()),
            },
            input("bad.yaml", "a: [1, 2\nb: c\n"),
        ]);
        assert_eq!(
            r.problems[0],
            "gone.yaml: could not read the file: not found"
        );
        assert!(
            r.problems[1].starts_with("bad.yaml: line 2, column "),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn summary_speaks_in_singular_for_one() {
        let r = Report {
            resources: 1,
            files: 1,
            ..Default::default()
        };
        assert_eq!(r.summary(), "1 resource in 1 file is valid");
    }
}
