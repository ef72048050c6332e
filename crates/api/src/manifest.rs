//! Reading manifests: a multi-document YAML text into typed resources, with errors that name
//! the document, the field and the line/column. Documents of other kinds (Services, ConfigMaps,
//! cert-manager objects, …) are recognised and handed back untouched, so callers can skip them.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::resource::{API_VERSION, GROUP};
use crate::{FlinkDeployment, FlinkSessionJob, FlinkStateSnapshot};

/// A typed flinkpilot resource.
// One short-lived value per document: boxing each variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    /// A `FlinkDeployment`.
    Deployment(FlinkDeployment),
    /// A `FlinkSessionJob`.
    SessionJob(FlinkSessionJob),
    /// A `FlinkStateSnapshot`.
    Snapshot(FlinkStateSnapshot),
}

impl Resource {
    /// The kind, e.g. `FlinkDeployment`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Deployment(_) => FlinkDeployment::CRD_INFO.kind,
            Self::SessionJob(_) => FlinkSessionJob::CRD_INFO.kind,
            Self::Snapshot(_) => FlinkStateSnapshot::CRD_INFO.kind,
        }
    }

    /// The object's name (`""` when it has none).
    pub fn name(&self) -> &str {
        match self {
            Self::Deployment(r) => r.name(),
            Self::SessionJob(r) => r.name(),
            Self::Snapshot(r) => r.name(),
        }
    }
}

/// One document of a YAML stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    /// 1-based line where the document starts.
    pub line: usize,
    /// What it holds.
    pub content: Result<Content, ParseError>,
}

/// What a well-formed document holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Content {
    /// A flinkpilot resource.
    Resource(Box<Resource>),
    /// A document of another API group (`Service`, `ConfigMap`, …), not ours to read.
    Other {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
        /// Its `metadata.name`, if any.
        name: Option<String>,
    },
}

/// A document that is not valid YAML, or not a valid resource.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ParseError {
    /// `kind` of the document, when it could be read.
    pub kind: Option<String>,
    /// `metadata.name` of the document, when it could be read.
    pub name: Option<String>,
    /// Path of the offending field, e.g. `spec.job.upgradeMode`.
    pub field: Option<String>,
    /// 1-based line and column in the whole text, when known.
    pub location: Option<(u64, u64)>,
    /// What is wrong, as one sentence.
    pub message: String,
}

impl ParseError {
    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some((line, col)) = self.location {
            s.push_str(&format!("line {line}, column {col}: "));
        }
        if let Some(field) = &self.field {
            s.push_str(&format!("{field}: "));
        }
        s.push_str(&self.message);
        s
    }
}

/// The fields read from every document before deciding its type.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    api_version: Option<String>,
    kind: Option<String>,
    metadata: Option<HeaderMeta>,
}

#[derive(Debug, Default, Deserialize)]
struct HeaderMeta {
    name: Option<String>,
}

/// Splits a YAML stream into `(first line, text)` per document. A line starting with `---`
/// starts a new document and a line `...` ends one, as in YAML; comment-only and empty
/// documents are dropped.
fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    let flush = |current: &mut String, start: usize, docs: &mut Vec<(usize, String)>| {
        let has_content = current
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if has_content {
            docs.push((start, std::mem::take(current)));
        }
        current.clear();
    };
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let is_start = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_start || line == "..." {
            flush(&mut current, start, &mut docs);
            start = n;
            if let Some(rest) = line.strip_prefix("---").filter(|r| !r.trim().is_empty()) {
                // content on the marker line itself (`--- {a: 1}`): keep it, column-aligned
                current.push_str(&" ".repeat(3));
                current.push_str(rest);
            }
            current.push('\n');
            continue;
        }
        if current.is_empty() {
            start = n;
        }
        current.push_str(line);
        current.push('\n');
    }
    flush(&mut current, start, &mut docs);
    docs
}

/// Deserializes one document, naming the field and location of any error.
fn parse_typed<T: DeserializeOwned>(header: &Header, padded: &str) -> Result<T, ParseError> {
    let mut path = None;
    serde_saphyr::with_deserializer_from_str(padded, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            let p = e.path().to_string();
            if p != "." && !p.is_empty() {
                path = Some(p);
            }
            e.into_inner()
        })
    })
    .map_err(|e| to_parse_error(header, path, &e))
}

/// Turns a saphyr error into our error, with the message stripped of its location suffix.
fn to_parse_error(header: &Header, field: Option<String>, e: &serde_saphyr::Error) -> ParseError {
    let location = e.location().map(|l| (l.line(), l.column()));
    let mut message = e.without_snippet().to_string();
    if let Some((line, col)) = location {
        for suffix in [
            format!(" at line {line}, column {col}"),
            format!(" at line {line} column {col}"),
        ] {
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
    }
    ParseError {
        kind: header.kind.clone(),
        name: header.metadata.as_ref().and_then(|m| m.name.clone()),
        field,
        location,
        message: explain(&message),
    }
}

/// Rewrites serde's terse messages into sentences a person can act on.
fn explain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        // "unknown variant `x`, expected one of a, b" / "expected `a` or `b`"
        if let Some((value, expected)) = rest.split_once(", expected ") {
            let expected = expected.trim_start_matches("one of ");
            return format!("{value} is not a valid value; use one of: {expected}");
        }
    }
    if message.starts_with("invalid i32") || message.starts_with("invalid i64") {
        return "expected a whole number".to_string();
    }
    message.to_string()
}

fn parse_document(start_line: usize, doc: &str) -> Result<Content, ParseError> {
    // Pad with newlines so the parser's line numbers are those of the whole text.
    let padded = format!("{}{doc}", "\n".repeat(start_line.saturating_sub(1)));
    let header: Header = serde_saphyr::from_str(&padded)
        .map_err(|e| to_parse_error(&Header::default(), None, &e))?;
    let fail = |field: &str, message: String| ParseError {
        kind: header.kind.clone(),
        name: header.metadata.as_ref().and_then(|m| m.name.clone()),
        field: Some(field.to_string()),
        location: None,
        message,
    };
    let (Some(api_version), Some(kind)) = (&header.api_version, &header.kind) else {
        let missing = if header.api_version.is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        return Err(fail(missing, format!("every document needs `{missing}`")));
    };
    let group = api_version.split_once('/').map_or("", |(g, _)| g);
    if group != GROUP {
        return Ok(Content::Other {
            api_version: api_version.clone(),
            kind: kind.clone(),
            name: header.metadata.as_ref().and_then(|m| m.name.clone()),
        });
    }
    if api_version != API_VERSION {
        return Err(fail(
            "apiVersion",
            format!("`{api_version}` is not supported; use `{API_VERSION}`"),
        ));
    }
    let resource = |r: Resource| Content::Resource(Box::new(r));
    match kind.as_str() {
        "FlinkDeployment" => parse_typed(&header, &padded)
            .map(Resource::Deployment)
            .map(resource),
        "FlinkSessionJob" => parse_typed(&header, &padded)
            .map(Resource::SessionJob)
            .map(resource),
        "FlinkStateSnapshot" => parse_typed(&header, &padded)
            .map(Resource::Snapshot)
            .map(resource),
        other => Err(fail(
            "kind",
            format!(
                "`{other}` is not supported by flinkpilot; supported kinds are FlinkDeployment, \
                 FlinkSessionJob and FlinkStateSnapshot"
            ),
        )),
    }
}

/// Reads every document of a (multi-document) YAML text.
pub fn parse_documents(text: &str) -> Vec<Document> {
    split_documents(text)
        .into_iter()
        .map(|(line, doc)| Document {
            line,
            content: parse_document(line, &doc),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FD: &str = "apiVersion: flink.apache.org/v1beta1\nkind: FlinkDeployment\n";

    fn only(text: &str) -> Result<Content, ParseError> {
        let mut docs = parse_documents(text);
        assert_eq!(docs.len(), 1, "{docs:?}");
        docs.remove(0).content
    }

    #[test]
    fn documents_are_split_on_markers_and_empty_ones_dropped() {
        let text = "# leading comment\n---\na: 1\n---\n# only a comment\n---\nb: 2\n...\n";
        let docs = split_documents(text);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].0, 2);
        assert_eq!(docs[1].0, 6);
    }

    #[test]
    fn other_kinds_are_recognised_not_parsed() {
        let c = only("apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec: {ports: 3}\n");
        assert_eq!(
            c,
            Ok(Content::Other {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: Some("web".into())
            })
        );
    }

    #[test]
    fn unknown_enum_value_names_the_field_and_the_choices() {
        let text =
            format!("---\n{FD}metadata:\n  name: x\nspec:\n  job:\n    upgradeMode: sometimes\n");
        let err = only(&text).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.job.upgradeMode"));
        assert_eq!(err.location, Some((8, 18)));
        assert_eq!(err.name.as_deref(), Some("x"));
        assert!(
            err.message.contains("`sometimes` is not a valid value"),
            "{err}"
        );
        assert!(err.message.contains("last-state"), "{err}");
    }

    #[test]
    fn malformed_yaml_reports_its_line_and_column() {
        let text = format!("{FD}---\nmetadata:\n  name: [a, b\nspec: {{}}\n");
        let docs = parse_documents(&text);
        assert!(docs[0].content.is_ok());
        let err = docs[1].content.clone().unwrap_err();
        let (line, _) = err.location.unwrap();
        assert!((4..=5).contains(&line), "{err}");
    }

    #[test]
    fn unsupported_flink_kind_and_version_are_errors() {
        let e = only("apiVersion: flink.apache.org/v1beta1\nkind: FlinkBlueGreenDeployment\n")
            .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("kind"));
        let e = only("apiVersion: flink.apache.org/v1alpha1\nkind: FlinkDeployment\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apiVersion"));
        let e = only("metadata: {name: x}\n").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("apiVersion"));
    }

    #[test]
    fn wrong_type_names_the_field() {
        let text = format!("{FD}spec:\n  taskManager:\n    replicas: many\n");
        let err = only(&text).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("spec.taskManager.replicas"));
        assert_eq!(err.message, "expected a whole number");
    }
}
