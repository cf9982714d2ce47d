//! How long work tells its caller how far it is.
//!
//! Libraries never draw anything: an operation that can take more than a second (build,
//! import, delta make and apply, mirror add, fsck) takes a `&mut dyn FnMut(Step)` and reports
//! its phases and the units done in each. The binary turns the steps into a bar on a
//! terminal, JSON events under `--json`, or nothing (`-q`, a pipe). It lives in the store
//! crate because that is the lowest crate every library shares.
//!
//! Invariants: a `Phase` comes before any `Advance` of that phase; `Advance` carries units
//! done since the previous step (a delta, not a running total), so a caller can sum them;
//! reporting never changes what the operation does (a sink that ignores everything is
//! always correct: [`ignore`]).

/// One report from long work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A new phase begins (`"verify"`, `"unpack"`, `"store"`, `"plan"`, `"encode"`, ...).
    /// `total` is its size in `unit`s when known in advance.
    Phase {
        name: &'a str,
        total: Option<u64>,
        unit: Unit,
    },
    /// `n` more units of the current phase are done.
    Advance(u64),
}

/// What a phase counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Files,
}

impl Unit {
    /// The name JSON progress events use.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Files => "files",
        }
    }
}

/// A sink that drops every step: for callers that do not show progress.
pub fn ignore(_: Step<'_>) {}

/// The signature every long operation takes.
pub type StepSink<'a> = &'a mut dyn FnMut(Step<'_>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sink_sums_advances_per_phase() {
        let mut seen: Vec<(String, u64)> = Vec::new();
        let mut sink = |s: Step<'_>| match s {
            Step::Phase { name, .. } => seen.push((name.to_string(), 0)),
            Step::Advance(n) => {
                if let Some(last) = seen.last_mut() {
                    last.1 += n;
                }
            }
        };
        let report: StepSink<'_> = &mut sink;
        report(Step::Phase {
            name: "verify",
            total: Some(10),
            unit: Unit::Bytes,
        });
        report(Step::Advance(4));
        report(Step::Advance(6));
        report(Step::Phase {
            name: "store",
            total: None,
            unit: Unit::Files,
        });
        report(Step::Advance(1));
        ignore(Step::Advance(1));
        assert_eq!(seen, vec![("verify".into(), 10), ("store".into(), 1)]);
        assert_eq!(Unit::Files.as_str(), "files");
    }
}
