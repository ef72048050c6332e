//! Reading the Kubernetes options of Flink (`kubernetes.*`, `containerized.*`) from a cluster's
//! configuration, in the syntax Flink parses them: maps as `k1:v1,k2:v2`, lists as `a;b`, lists
//! of maps as `k:v,k:v;k:v`, with `'` or `"` quoting parts that hold a separator.

use std::collections::BTreeMap;

use flink::config::FlinkConfig;

/// Typed access to the Kubernetes options of one cluster configuration.
#[derive(Clone, Copy, Debug)]
pub struct Options<'a>(pub &'a FlinkConfig);

impl<'a> Options<'a> {
    /// A string option, trimmed; `None` when unset or blank.
    pub fn string(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// A map option (`k1:v1,k2:v2`); empty when unset.
    pub fn map(&self, key: &str) -> BTreeMap<String, String> {
        self.string(key).map(parse_map).unwrap_or_default()
    }

    /// A list option (`a;b`); empty when unset.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.string(key)
            .map(|v| split_escaped(v, ';'))
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// A list-of-maps option (`k:v,k:v;k:v`); empty when unset.
    pub fn list_of_maps(&self, key: &str) -> Vec<BTreeMap<String, String>> {
        self.list(key).iter().map(|m| parse_map(m)).collect()
    }

    /// Every `<prefix><NAME>` option as `NAME → value` (e.g. `containerized.master.env.`).
    pub fn prefixed(&self, prefix: &str) -> BTreeMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(prefix)
                    .filter(|name| !name.is_empty())
                    .map(|name| (name.to_string(), v.to_string()))
            })
            .collect()
    }

    /// A floating-point option; `None` when unset or not a number.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.string(key).and_then(|v| v.parse().ok())
    }

    /// A boolean option; `None` when unset or not `true`/`false`.
    pub fn bool(&self, key: &str) -> Option<bool> {
        match self.string(key)?.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// A fixed port: `Some` when the option holds one port number above 0 (not a range).
    pub fn fixed_port(&self, key: &str) -> Option<u16> {
        self.string(key)
            .and_then(|v| v.parse::<u16>().ok())
            .filter(|p| *p > 0)
    }
}

/// Parses `k1:v1,k2:v2` (Flink's map syntax); entries without `:` are skipped.
pub fn parse_map(text: &str) -> BTreeMap<String, String> {
    split_escaped(text, ',')
        .into_iter()
        .filter_map(|entry| {
            let parts = split_escaped(&entry, ':');
            match parts.as_slice() {
                [k, rest @ ..] if !rest.is_empty() => {
                    Some((k.trim().to_string(), rest.join(":").trim().to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// Splits at `delimiter` outside quotes, the way Flink's `StructuredOptionsSplitter` does: `'…'`
/// or `"…"` quotes a stretch (the quotes are dropped), and a quote inside it is doubled.
pub fn split_escaped(text: &str, delimiter: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => {
                if chars.peek() == Some(&q) {
                    current.push(q);
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == delimiter => parts.push(std::mem::take(&mut current)),
            None => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// Joins `items` into one list value that [`split_escaped`] (and Flink) splits back into exactly
/// `items`: parts holding a separator, a quote, or surrounding blanks are single-quoted.
pub fn join_escaped(items: &[String], delimiter: char) -> String {
    items
        .iter()
        .map(|item| {
            let needs_quotes = item.is_empty()
                || item.contains([delimiter, '\'', '"', ';', ','])
                || item.trim() != item;
            if needs_quotes {
                format!("'{}'", item.replace('\'', "''"))
            } else {
                item.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(&delimiter.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_lists_parse_in_flink_syntax() {
        let config = FlinkConfig::new()
            .with("kubernetes.jobmanager.labels", "team:a, tier:'x,y'")
            .with("kubernetes.container.image.pull-secrets", "s1;s2")
            .with(
                "kubernetes.env.secretKeyRef",
                "env:PW,secret:s,key:pw;env:TOKEN,secret:t,key:tok",
            )
            .with("containerized.master.env.A", "1");
        let o = Options(&config);
        assert_eq!(
            o.map("kubernetes.jobmanager.labels"),
            BTreeMap::from([("team".into(), "a".into()), ("tier".into(), "x,y".into())])
        );
        assert_eq!(
            o.list("kubernetes.container.image.pull-secrets"),
            ["s1", "s2"]
        );
        let refs = o.list_of_maps("kubernetes.env.secretKeyRef");
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[1]["env"], "TOKEN");
        assert_eq!(
            o.prefixed("containerized.master.env."),
            BTreeMap::from([("A".into(), "1".into())])
        );
    }

    #[test]
    fn joined_lists_split_back_into_the_same_items() {
        let items: Vec<String> = ["a;b", "c'd", "x y", "", " lead", "q\"q", "1;2\n3", "plain"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let joined = join_escaped(&items, ';');
        assert_eq!(split_escaped(&joined, ';'), items, "{joined}");
    }
}
