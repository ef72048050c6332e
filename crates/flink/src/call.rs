//! One REST call before it is sent: method, path segments and query, plus the path template
//! it is reported under (`/jobs/:jobid/savepoints/:triggerid`). Ids enter a path only as
//! [`Seg::Id`], so a template is made of fixed words and placeholders alone: however many jobs,
//! jars or savepoints a cluster has, the set of templates stays the set of endpoints.

use reqwest::Method;

use crate::ids::{JobId, TriggerId, VertexId};
use crate::jars::JarId;

/// One path segment: a fixed word of the endpoint, or an id and the placeholder that stands
/// for it in the template (Flink's own names: `:jobid`, `:triggerid`, …).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Seg<'a> {
    Lit(&'static str),
    Id(&'static str, &'a str),
}

impl<'a> Seg<'a> {
    /// An id that has no type of its own, e.g. a TaskManager id.
    pub(crate) fn id(placeholder: &'static str, value: &'a str) -> Self {
        Seg::Id(placeholder, value)
    }
}

impl From<&'static str> for Seg<'_> {
    fn from(word: &'static str) -> Self {
        Seg::Lit(word)
    }
}

impl<'a> From<&'a JobId> for Seg<'a> {
    fn from(id: &'a JobId) -> Self {
        Seg::Id(":jobid", id.as_str())
    }
}

impl<'a> From<&'a TriggerId> for Seg<'a> {
    fn from(id: &'a TriggerId) -> Self {
        Seg::Id(":triggerid", id.as_str())
    }
}

impl<'a> From<&'a VertexId> for Seg<'a> {
    fn from(id: &'a VertexId) -> Self {
        Seg::Id(":vertexid", id.as_str())
    }
}

impl<'a> From<&'a JarId> for Seg<'a> {
    fn from(id: &'a JarId) -> Self {
        Seg::Id(":jarid", id.as_str())
    }
}

/// `segs!["jobs", job, "savepoints"]`: the path segments of a call, each a fixed word or a
/// typed id.
macro_rules! segs {
    ($($seg:expr),* $(,)?) => {
        [$($crate::call::Seg::from($seg)),*]
    };
}
pub(crate) use segs;

/// One request: method, path segments below `v1/`, query parameters, and its template.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) segments: Vec<String>,
    pub(crate) query: Vec<(&'static str, String)>,
    /// `/jobs/:jobid`: the path with every id replaced by its placeholder.
    pub(crate) template: String,
}

impl Call {
    pub(crate) fn new(method: Method, segments: &[Seg<'_>]) -> Self {
        let mut template = String::new();
        for seg in segments {
            template.push('/');
            template.push_str(match seg {
                Seg::Lit(word) => word,
                Seg::Id(placeholder, _) => placeholder,
            });
        }
        Call {
            method,
            segments: segments
                .iter()
                .map(|s| match s {
                    Seg::Lit(word) => (*word).to_string(),
                    Seg::Id(_, value) => (*value).to_string(),
                })
                .collect(),
            query: Vec::new(),
            template,
        }
    }

    pub(crate) fn get(segments: &[Seg<'_>]) -> Self {
        Call::new(Method::GET, segments)
    }

    pub(crate) fn query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// The method as a fixed string (the client only sends these).
    pub(crate) fn method_name(&self) -> &'static str {
        match self.method.as_str() {
            "GET" => "GET",
            "POST" => "POST",
            "PUT" => "PUT",
            "PATCH" => "PATCH",
            "DELETE" => "DELETE",
            _ => "OTHER",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_become_placeholders_in_the_template_and_stay_in_the_path() {
        let job: JobId = "0123456789abcdef0123456789ABCDEF".parse().unwrap();
        let trigger: TriggerId = "fedcba9876543210fedcba9876543210".parse().unwrap();
        let call = Call::get(&segs!["jobs", &job, "savepoints", &trigger]);
        assert_eq!(call.template, "/jobs/:jobid/savepoints/:triggerid");
        assert_eq!(
            call.segments,
            [
                "jobs",
                "0123456789abcdef0123456789abcdef",
                "savepoints",
                "fedcba9876543210fedcba9876543210"
            ]
        );
        let tm = Call::get(&[
            Seg::from("taskmanagers"),
            Seg::id(":taskmanagerid", "10.0.0.1:6122-a1b2"),
        ]);
        assert_eq!(tm.template, "/taskmanagers/:taskmanagerid");
        assert_eq!(tm.method_name(), "GET");
    }
}
