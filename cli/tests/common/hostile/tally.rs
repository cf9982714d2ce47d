//! The [`Tally`] of a hostile run: outcome counts per family and exit code, the failures,
//! and the report printed at the end.

use std::collections::BTreeMap;

use super::sandbox::CaseResult;

/// Outcome counts: family -> exit code (or "FAIL") -> count.
#[derive(Debug, Default)]
pub struct Tally {
    /// Counts.
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Failures (first few kept in full).
    pub failures: Vec<String>,
    /// Total cases.
    pub total: u64,
}

impl Tally {
    /// Record one case.
    pub fn add(&mut self, family: &str, r: &CaseResult) {
        self.total += 1;
        let key = match r {
            Ok(c) => format!("exit {c}"),
            Err(e) => {
                if self.failures.len() < 20 {
                    self.failures.push(e.clone());
                }
                "FAIL".into()
            }
        };
        *self
            .counts
            .entry(family.to_string())
            .or_default()
            .entry(key)
            .or_default() += 1;
    }

    /// Add another tally's counts.
    pub fn merge(&mut self, other: Tally) {
        self.total += other.total;
        for (fam, m) in other.counts {
            let mine = self.counts.entry(fam).or_default();
            for (k, v) in m {
                *mine.entry(k).or_default() += v;
            }
        }
        self.failures.extend(other.failures);
    }

    /// A markdown table of the counts.
    pub fn table(&self) -> String {
        let mut codes: Vec<String> = self
            .counts
            .values()
            .flat_map(|m| m.keys().cloned())
            .collect();
        codes.sort();
        codes.dedup();
        let mut s = format!(
            "| family | {} | total |\n|---|{}---|\n",
            codes.join(" | "),
            "---|".repeat(codes.len())
        );
        let mut totals = vec![0u64; codes.len()];
        for (fam, m) in &self.counts {
            let row: Vec<u64> = codes.iter().map(|c| *m.get(c).unwrap_or(&0)).collect();
            for (t, r) in totals.iter_mut().zip(&row) {
                *t += r;
            }
            s.push_str(&format!(
                "| {fam} | {} | {} |\n",
                row.iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" | "),
                row.iter().sum::<u64>()
            ));
        }
        s.push_str(&format!(
            "| **all** | {} | {} |\n",
            totals
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" | "),
            self.total
        ));
        s
    }
}
