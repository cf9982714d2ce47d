//! Import policy: version ordering and the staleness window.
//!
//! Versions compare component by component, splitting on `.`, `-` and `+`: numeric
//! components numerically (`2025.10.10` > `2025.10.9`), others as text, and a version that
//! is a prefix of another is older (`2025.10` < `2025.10.1`).

use std::cmp::Ordering;

/// Compare two kit versions.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> { s.split(['.', '-', '+']).map(str::to_string).collect() };
    let (pa, pb) = (parts(a), parts(b));
    for (x, y) in pa.iter().zip(&pb) {
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(n), Ok(m)) => n.cmp(&m),
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    pa.len().cmp(&pb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_versions_order_numerically() {
        assert_eq!(
            compare_versions("2025.10.10", "2025.10.9"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("2025.10.0", "2025.10.0"), Ordering::Equal);
        assert_eq!(compare_versions("2025.10", "2025.10.1"), Ordering::Less);
        assert_eq!(
            compare_versions("2025.11.0", "2025.10.31"),
            Ordering::Greater
        );
        assert_eq!(compare_versions("1.0.0-rc1", "1.0.0-rc2"), Ordering::Less);
    }
}
