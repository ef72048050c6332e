//! Names that end up in Kubernetes object names, DNS names and directory names, validated once.

use std::fmt;

/// The longest `FlinkDeployment` name: the Apache operator's limit, which leaves room for the
/// suffixes of the objects derived from it (`-rest`, `-taskmanager-1-1`, …) within Kubernetes'
/// 63-character limits.
pub const MAX_DEPLOYMENT_NAME_LEN: usize = 45;

/// A name that is not a valid `FlinkDeployment` name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a valid name: {reason}")]
pub struct NameError {
    /// The rejected name.
    pub name: String,
    /// Why, and what a valid name looks like.
    pub reason: String,
}

/// A valid `FlinkDeployment` name: 1–45 characters of lower-case letters, digits and `-`,
/// starting with a letter and ending with a letter or digit (e.g. `my-job`, `abc-123`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeploymentName(String);

impl DeploymentName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Self, NameError> {
        let err = |reason: &str| NameError {
            name: name.to_string(),
            reason: format!(
                "{reason}; use 1 to {MAX_DEPLOYMENT_NAME_LEN} lower-case letters, digits or '-', \
                 starting with a letter and ending with a letter or digit (e.g. 'my-job')"
            ),
        };
        let bytes = name.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(err("it is empty"));
        };
        if name.len() > MAX_DEPLOYMENT_NAME_LEN {
            return Err(err(&format!("it is {} characters long", name.len())));
        }
        if !first.is_ascii_lowercase() {
            return Err(err("it must start with a lower-case letter"));
        }
        if !(last.is_ascii_lowercase() || last.is_ascii_digit()) {
            return Err(err("it must end with a lower-case letter or digit"));
        }
        if let Some(bad) = name
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(err(&format!("it contains '{bad}'")));
        }
        Ok(Self(name.to_string()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeploymentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for DeploymentName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("a")]
    #[case("basic-example")]
    #[case("abc-123")]
    #[case("a23456789012345678901234567890123456789012345")]
    fn valid_names(#[case] name: &str) {
        assert_eq!(DeploymentName::parse(name).unwrap().as_str(), name);
    }

    #[rstest]
    #[case("", "empty")]
    #[case("a234567890123456789012345678901234567890123456", "46 characters")]
    #[case("1abc", "start with")]
    #[case("abc-", "end with")]
    #[case("My-Job", "start with")]
    #[case("my_job", "contains '_'")]
    #[case("my.job", "contains '.'")]
    fn invalid_names_say_why(#[case] name: &str, #[case] why: &str) {
        let e = DeploymentName::parse(name).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }
}
