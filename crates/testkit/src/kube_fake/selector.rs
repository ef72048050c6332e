//! `labelSelector` (equality- and set-based) and `fieldSelector` (equality-based).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<LabelReq>);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, String> {
    let inner = rest
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            format!("unable to parse requirement: {whole:?}: expected '(value, ...)'")
        })?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn parse_label_req(req: &str) -> Result<LabelReq, String> {
    if let Some(key) = req.strip_prefix('!') {
        return Ok(LabelReq::NotExists(key.trim().to_string()));
    }
    if let Some((k, v)) = req.split_once("!=") {
        return Ok(LabelReq::NotEq(k.trim().to_string(), v.trim().to_string()));
    }
    if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
        return Ok(LabelReq::Eq(k.trim().to_string(), v.trim().to_string()));
    }
    let mut words = req.splitn(2, char::is_whitespace);
    let key = words.next().unwrap_or_default().trim().to_string();
    let rest = words.next().unwrap_or_default().trim();
    if rest.is_empty() {
        if key.contains(['<', '>']) {
            return Err(format!(
                "unable to parse requirement: {req:?}: the fake API server does not support '<' or '>'"
            ));
        }
        return Ok(LabelReq::Exists(key));
    }
    if let Some(set) = rest.strip_prefix("notin") {
        return Ok(LabelReq::NotIn(key, parse_set(set, req)?));
    }
    if let Some(set) = rest.strip_prefix("in") {
        return Ok(LabelReq::In(key, parse_set(set, req)?));
    }
    Err(format!("unable to parse requirement: {req:?}"))
}

impl LabelSelector {
    /// Parses the `labelSelector` query parameter.
    pub fn parse(s: &str) -> Result<Self, String> {
        split_top_level(s)
            .into_iter()
            .map(parse_label_req)
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether an object's labels (`metadata.labels`, possibly Null) match.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, set) => get(k).is_some_and(|x| set.iter().any(|s| s == x)),
            LabelReq::NotIn(k, set) => get(k).is_none_or(|x| !set.iter().any(|s| s == x)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

/// A parsed field selector over dotted paths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `fieldSelector`, accepting `metadata.name`, `metadata.namespace` and the type's
    /// selectable fields, like the real server (which rejects any other field).
    pub fn parse(s: &str, selectable: &[String]) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let (field, equal, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: {part:?}; expected field=value or field!=value"
                ));
            };
            let field = field.trim();
            let known = field == "metadata.name"
                || field == "metadata.namespace"
                || selectable.iter().any(|f| f == field);
            if !known {
                return Err(format!("field label not supported: {field}"));
            }
            reqs.push((field.to_string(), equal, value.trim().to_string()));
        }
        Ok(Self(reqs))
    }

    /// Whether `obj` matches. A missing field compares as the empty string.
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, equal, value)| {
            let actual = field
                .split('.')
                .try_fold(obj, |cur, key| cur.get(key))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_and_set_based_label_selectors() {
        let labels = json!({"app": "flink", "component": "jobmanager"});
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&labels);
        assert!(m("app=flink"));
        assert!(m("app==flink,component"));
        assert!(m("component in (jobmanager, taskmanager)"));
        assert!(m("component in (jobmanager),app notin (other)"));
        assert!(m("tier!=web"));
        assert!(m("!tier"));
        assert!(!m("app=other"));
        assert!(!m("component notin (jobmanager)"));
        assert!(!m("tier"));
        assert!(LabelSelector::parse("x in a,b").is_err());
    }

    #[test]
    fn field_selectors_accept_only_known_fields() {
        let obj = json!({"metadata": {"name": "a", "namespace": "ns"}, "reason": "Submit"});
        let sel = FieldSelector::parse("metadata.name=a,metadata.namespace!=other", &[]).unwrap();
        assert!(sel.matches(&obj));
        assert!(FieldSelector::parse("spec.x=1", &[]).is_err());
        let sel = FieldSelector::parse("reason=Submit", &["reason".to_string()]).unwrap();
        assert!(sel.matches(&obj));
    }
}
