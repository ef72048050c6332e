//! Flink's identifiers as types, validated once where they enter the program.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

/// An identifier that is not 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a Flink {what} (32 hex digits)")]
pub struct InvalidId {
    what: &'static str,
    value: String,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as Flink spells it (lowercase hex).
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::try_from(s.to_string())
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Ok($name(s.to_ascii_lowercase()))
                } else {
                    Err(InvalidId { what: $what, value: s })
                }
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

hex_id!(
    /// Id of a Flink job.
    JobId,
    "job id"
);
hex_id!(
    /// Id of a job vertex (an operator chain).
    VertexId,
    "vertex id"
);
hex_id!(
    /// Id of one asynchronous operation (savepoint, checkpoint, disposal).
    TriggerId,
    "trigger id"
);

/// 128 unpredictable bits as 32 hex digits. Two independently seeded std hashers give the
/// randomness without an extra dependency; the clock and a counter rule out repeats within
/// a process.
fn random_hex() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let half = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(n);
        h.write_u64(salt);
        h.finish()
    };
    format!("{:016x}{:016x}", half(1), half(2))
}

impl TriggerId {
    /// A fresh random trigger id, for callers that record it before triggering.
    pub fn generate() -> Self {
        TriggerId(random_hex())
    }
}

impl JobId {
    /// A fresh random job id, for submitting a job under an id chosen in advance.
    pub fn generate() -> Self {
        JobId(random_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = TriggerId::generate();
        let b = TriggerId::generate();
        assert_ne!(a, b);
        assert_eq!(a.as_str().parse::<TriggerId>().unwrap(), a);
        assert_ne!(JobId::generate(), JobId::generate());
    }

    #[test]
    fn ids_must_be_32_hex_digits_and_are_lowercased() {
        let id: JobId = "0123456789ABCDEF0123456789abcdef".parse().unwrap();
        assert_eq!(id.as_str(), "0123456789abcdef0123456789abcdef");
        let err = "0123".parse::<JobId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "`0123` is not a Flink job id (32 hex digits)"
        );
        assert!(
            "zz23456789abcdef0123456789abcdef"
                .parse::<TriggerId>()
                .is_err()
        );
        assert!(serde_json::from_str::<VertexId>("\"../etc\"").is_err());
    }
}
