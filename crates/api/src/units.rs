//! Parsers for the unit syntaxes found in specs: Flink durations and memory sizes, and
//! Kubernetes quantities. They accept what Flink and Kubernetes accept, so validation rejects a
//! value exactly when the real component would.

use std::fmt;
use std::time::Duration;

/// A value that does not parse in the expected unit syntax.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind}: {hint}")]
pub struct UnitError {
    /// The text that failed to parse.
    pub value: String,
    /// What was expected ("duration", "memory size", "Kubernetes quantity").
    pub kind: &'static str,
    /// Examples of valid values.
    pub hint: &'static str,
}

const DURATION_HINT: &str = "use a whole number with a unit such as `500 ms`, `10 s`, `5 min`, \
                             `1 h`, `1 d` (no unit means milliseconds)";
const MEMORY_HINT: &str = "use a whole number with a unit such as `512m`, `1024mb`, `2g`, `1gb` \
                           (no unit means bytes)";
const QUANTITY_HINT: &str = "use a Kubernetes quantity such as `500m`, `2`, `1Gi`, `512Mi`, `1e3`";
const RESOURCE_MEMORY_HINT: &str =
    "use Flink syntax such as `2048m` or `2g`, or a Kubernetes quantity such as `2Gi`";

impl UnitError {
    /// What is wrong without repeating the value: "not a valid duration; use …".
    pub fn reason(&self) -> String {
        format!("not a valid {}; {}", self.kind, self.hint)
    }
}

/// A number of bytes, as Flink's `MemorySize`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemorySize(u64);

impl MemorySize {
    /// A size of `bytes` bytes.
    pub fn from_bytes(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size in whole mebibytes (rounded down).
    pub fn mebibytes(self) -> u64 {
        self.0 >> 20
    }
}

impl fmt::Display for MemorySize {
    /// Flink's canonical spelling: the largest unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(u32, &str); 4] = [(40, "tb"), (30, "gb"), (20, "mb"), (10, "kb")];
        for (shift, unit) in UNITS {
            if self.0 != 0 && self.0.is_multiple_of(1u64 << shift) {
                return write!(f, "{} {unit}", self.0 >> shift);
            }
        }
        write!(f, "{} bytes", self.0)
    }
}

/// Splits `"10 s"` into `(10, "s")`: leading digits, then the trimmed, lower-cased rest.
fn split_number(text: &str) -> Option<(u64, String)> {
    let t = text.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let number = t[..digits].parse().ok()?;
    Some((number, t[digits..].trim().to_lowercase()))
}

/// Parses a Flink duration: a whole number and an optional unit (`ms` when absent).
/// Units: `d`/`day(s)`, `h`/`hour(s)`, `min`/`m`/`minute(s)`, `s`/`sec(s)`/`second(s)`,
/// `ms`/`milli(s)`/`millisecond(s)`, `µs`/`micro(s)`/`microsecond(s)`, `ns`/`nano(s)`/`nanosecond(s)`.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let err = || UnitError {
        value: text.to_string(),
        kind: "duration",
        hint: DURATION_HINT,
    };
    let (n, unit) = split_number(text).ok_or_else(err)?;
    let nanos_per_unit: u128 = match unit.as_str() {
        "d" | "day" | "days" => 86_400_000_000_000,
        "h" | "hour" | "hours" => 3_600_000_000_000,
        "min" | "m" | "minute" | "minutes" => 60_000_000_000,
        "s" | "sec" | "secs" | "second" | "seconds" => 1_000_000_000,
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => 1_000_000,
        "µs" | "micro" | "micros" | "microsecond" | "microseconds" => 1_000,
        "ns" | "nano" | "nanos" | "nanosecond" | "nanoseconds" => 1,
        _ => return Err(err()),
    };
    let nanos = u128::from(n) * nanos_per_unit;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| err())?;
    // the remainder is below 10^9, so it fits in u32
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| err())?;
    Ok(Duration::new(secs, sub))
}

/// Parses a Flink memory size: a whole number and an optional binary unit (bytes when absent).
/// Units: `b`/`bytes`, `k`/`kb`/`kibibytes`, `m`/`mb`/`mebibytes`, `g`/`gb`/`gibibytes`,
/// `t`/`tb`/`tebibytes`.
pub fn parse_memory(text: &str) -> Result<MemorySize, UnitError> {
    let err = || UnitError {
        value: text.to_string(),
        kind: "memory size",
        hint: MEMORY_HINT,
    };
    let (n, unit) = split_number(text).ok_or_else(err)?;
    let shift = match unit.as_str() {
        "" | "b" | "bytes" => 0,
        "k" | "kb" | "kibibytes" => 10,
        "m" | "mb" | "mebibytes" => 20,
        "g" | "gb" | "gibibytes" => 30,
        "t" | "tb" | "tebibytes" => 40,
        _ => return Err(err()),
    };
    n.checked_mul(1u64 << shift).map(MemorySize).ok_or_else(err)
}

/// Parses a Kubernetes quantity (`500m`, `1.5`, `2Gi`, `1e3`) into its numeric value.
pub fn parse_quantity(text: &str) -> Result<f64, UnitError> {
    let err = || UnitError {
        value: text.to_string(),
        kind: "Kubernetes quantity",
        hint: QUANTITY_HINT,
    };
    let t = text.trim();
    let num_len = t
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_digit() || c == '.' || (i == 0 && (c == '+' || c == '-'))))
        .map_or(t.len(), |(i, _)| i);
    let (num, suffix) = t.split_at(num_len);
    if num.is_empty() || !num.bytes().any(|b| b.is_ascii_digit()) || num.matches('.').count() > 1 {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| err())?;
            10f64.powi(exp)
        }
        _ => return Err(err()),
    };
    Ok(value * factor)
}

/// Parses `spec.*.resource.memory` as the Apache operator does: Flink syntax first (`2048m`
/// is 2048 MiB), then a Kubernetes quantity (`2Gi`; a trailing `B` and a capital `I` are
/// tolerated, so `2GB` and `2GIB` also work).
pub fn parse_resource_memory(text: &str) -> Result<MemorySize, UnitError> {
    if let Ok(m) = parse_memory(text) {
        return Ok(m);
    }
    let mut q: String = text.split_whitespace().collect::<String>().to_uppercase();
    if q.ends_with('B') {
        q.pop();
    }
    if q.ends_with('I') {
        q.pop();
        q.push('i');
    }
    match parse_quantity(&q) {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(MemorySize(v as u64)),
        _ => Err(UnitError {
            value: text.to_string(),
            kind: "memory size",
            hint: RESOURCE_MEMORY_HINT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("10 s", Duration::from_secs(10))]
    #[case("10s", Duration::from_secs(10))]
    #[case("5min", Duration::from_secs(300))]
    #[case("5 m", Duration::from_secs(300))]
    #[case("1h", Duration::from_secs(3600))]
    #[case("2 days", Duration::from_secs(172_800))]
    #[case("1500", Duration::from_millis(1500))]
    #[case(" 30 seconds ", Duration::from_secs(30))]
    #[case("7 ns", Duration::from_nanos(7))]
    #[case("3 MS", Duration::from_millis(3))]
    fn flink_durations_parse(#[case] text: &str, #[case] expected: Duration) {
        assert_eq!(parse_duration(text), Ok(expected));
    }

    #[rstest]
    #[case("")]
    #[case("s")]
    #[case("10 parsecs")]
    #[case("1.5 s")]
    #[case("-1 s")]
    #[case("PT10S")]
    fn malformed_durations_are_rejected(#[case] text: &str) {
        let e = parse_duration(text).unwrap_err();
        assert!(e.to_string().contains("duration"), "{e}");
    }

    #[rstest]
    #[case("1024m", 1024 << 20)]
    #[case("2g", 2 << 30)]
    #[case("1gb", 1 << 30)]
    #[case("1 GB", 1 << 30)]
    #[case("512 mebibytes", 512 << 20)]
    #[case("100", 100)]
    #[case("64k", 64 << 10)]
    fn flink_memory_sizes_parse(#[case] text: &str, #[case] bytes: u64) {
        assert_eq!(parse_memory(text).map(MemorySize::bytes), Ok(bytes));
    }

    #[rstest]
    #[case("2Gi")]
    #[case("1.5g")]
    #[case("lots")]
    #[case("99999999999999999999t")]
    fn non_flink_memory_sizes_are_rejected(#[case] text: &str) {
        assert!(parse_memory(text).is_err());
    }

    #[rstest]
    #[case("2048m", 2048 << 20)]
    #[case("2Gi", 2 << 30)]
    #[case("2GI", 2 << 30)]
    #[case("1G", 1 << 30)] // Flink syntax first: its units are binary and case-insensitive
    #[case("1.5G", 1_500_000_000)]
    #[case("1gb", 1 << 30)]
    fn resource_memory_accepts_flink_and_kubernetes_syntax(#[case] text: &str, #[case] bytes: u64) {
        assert_eq!(
            parse_resource_memory(text).map(MemorySize::bytes),
            Ok(bytes)
        );
    }

    #[rstest]
    #[case("2 parsecs")]
    #[case("Gi")]
    #[case("")]
    fn bad_resource_memory_is_rejected(#[case] text: &str) {
        assert!(parse_resource_memory(text).is_err());
    }

    #[rstest]
    #[case("500m", 0.5)]
    #[case("2", 2.0)]
    #[case("1Ki", 1024.0)]
    #[case("1e3", 1000.0)]
    #[case("0.25", 0.25)]
    fn kubernetes_quantities_parse(#[case] text: &str, #[case] value: f64) {
        assert_eq!(parse_quantity(text), Ok(value));
    }

    #[test]
    fn memory_size_displays_like_flink() {
        assert_eq!(MemorySize::from_bytes(2 << 30).to_string(), "2 gb");
        assert_eq!(MemorySize::from_bytes(1536 << 20).to_string(), "1536 mb");
        assert_eq!(MemorySize::from_bytes(100).to_string(), "100 bytes");
    }
}
