//! How commands talk to people and scripts: human text on stdout, one JSON document with
//! `--json`, nothing but errors with `-q`, and progress on stderr for work that runs longer
//! than a second: a bar (phase, percent, ETA) when stderr is a terminal, or one JSON event
//! per line with `--progress json`, for a script or a UI that drives ouk.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ouk_store::progress::{Step, Unit};
use serde::Serialize;

/// A command's JSON report plus, for an object-storage store, the requests the command
/// sent (so a benchmark can count requests per GiB ingested).
#[derive(Serialize)]
pub struct WithRequests<'a, T: Serialize> {
    /// The report's own fields.
    #[serde(flatten)]
    pub report: &'a T,
    /// GET/PUT/LIST/HEAD counts and bytes moved (absent for a local store).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<ouk_store::RequestCounts>,
}

impl<'a, T: Serialize> WithRequests<'a, T> {
    /// `report` with the requests `store` sent.
    pub fn of(report: &'a T, store: &ouk_store::Store) -> Self {
        WithRequests {
            report,
            requests: store.requests(),
        }
    }
}

/// Print `text` and a newline on stdout. A reader that went away (`ouk delta show D | head`)
/// is not an error: the rest is dropped quietly instead of panicking as `println!` does.
/// The command's exit code is unchanged: its work is done by the time it prints.
pub fn print_line(text: &str) {
    let written = match OWN_STDOUT.get() {
        Some(file) => {
            let mut out = file;
            writeln!(out, "{text}").and_then(|_| out.flush())
        }
        None => {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").and_then(|_| out.flush())
        }
    };
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => eprintln!("ouk: cannot write to stdout: {e}"),
    }
}

/// ouk's own stdout, kept aside by [`guard_stdout`].
static OWN_STDOUT: std::sync::OnceLock<std::fs::File> = std::sync::OnceLock::new();

/// Keep stdout for ouk's own output. A library may print debugging lines to stdout
/// (preflate-rs does, when `delta make` meets a deflate stream it cannot model): file
/// descriptor 1 is kept aside (close-on-exec) for [`print_line`], and pointed at stderr, so
/// a `--json` document or a script's parsed output is never interleaved with such lines.
/// Best effort: if the descriptors cannot be arranged, output goes to stdout as before.
pub fn guard_stdout() {
    use std::os::fd::FromRawFd;
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) and dup2 take plain descriptor numbers and touch no
    // memory; the descriptor fcntl returns is new and owned by nobody else, so the File
    // made from it is its only owner.
    unsafe {
        let kept = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if kept < 0 {
            return;
        }
        let file = std::fs::File::from_raw_fd(kept);
        if libc::dup2(2, 1) < 0 {
            return;
        }
        let _ = OWN_STDOUT.set(file);
    }
}

/// Where progress goes (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on stderr when it is a terminal and `-q` is not given; nothing otherwise.
    #[default]
    Auto,
    /// One JSON object per line on stderr: `{"event":"phase"|"progress", "operation",
    /// "phase", "unit", "done", "total"}` (at most about four a second per operation).
    Json,
    /// Nothing.
    None,
}

/// Output settings from the global flags.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// One JSON document on stdout.
    pub json: bool,
    /// No human output.
    pub quiet: bool,
    /// Where progress goes.
    pub progress: ProgressMode,
}

impl Output {
    /// Print `human` unless quiet or JSON; print `value` as JSON when JSON.
    pub fn emit<T: Serialize>(&self, value: &T, human: impl FnOnce() -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => print_line(&s),
                Err(e) => eprintln!("ouk: cannot encode JSON output: {e}"),
            }
        } else if !self.quiet {
            let text = human();
            if !text.is_empty() {
                print_line(text.trim_end());
            }
        }
    }

    /// A note for people on stderr (suppressed by `-q` and `--json`).
    pub fn note(&self, text: &str) {
        if !self.quiet && !self.json {
            eprintln!("{text}");
        }
    }

    /// A progress reporter for `total` bytes (0 = unknown until [`Progress::set_total`]).
    /// It draws on stderr, only when stderr is a terminal and not `-q`, and only after a
    /// second of work (short runs print nothing); with `--progress json` it writes events.
    pub fn progress(&self, what: &str, total: u64) -> Progress {
        let draw = match self.progress {
            ProgressMode::Auto => !self.quiet && std::io::stderr().is_terminal(),
            ProgressMode::Json | ProgressMode::None => false,
        };
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
        bar.set_message(what.to_string());
        let mut p = Progress {
            bar,
            draw,
            json: self.progress == ProgressMode::Json,
            shown: false,
            started: Instant::now(),
            operation: what.to_string(),
            phase: what.to_string(),
            unit: Unit::Bytes,
            total: 0,
            done: 0,
            last_event: None,
            last_done: None,
        };
        p.set_total(total);
        p
    }
}

/// The bar's look: phase, bar, done of total, percent, speed and ETA when the total is
/// known; phase, done and speed when it is not.
fn style(total: u64, unit: Unit) -> Option<ProgressStyle> {
    let template = match (total > 0, unit) {
        (true, Unit::Bytes) => {
            "{msg} [{bar:30}] {bytes}/{total_bytes} {percent}% {bytes_per_sec} eta {eta}"
        }
        (false, Unit::Bytes) => "{msg} {bytes} {bytes_per_sec}",
        (true, Unit::Files) => "{msg} [{bar:30}] {pos}/{len} files {percent}% eta {eta}",
        (false, Unit::Files) => "{msg} {pos} files",
    };
    ProgressStyle::with_template(template)
        .ok()
        .map(|s| s.progress_chars("=> "))
}

/// How often JSON progress events may be written (phase changes are always written).
const EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// Progress of one operation: a bar that appears only after a second of work, or JSON
/// events. Library steps ([`Step`]) feed it through [`Progress::step`]; byte counters
/// through [`Progress::inc`].
pub struct Progress {
    bar: ProgressBar,
    draw: bool,
    json: bool,
    shown: bool,
    started: Instant,
    operation: String,
    phase: String,
    unit: Unit,
    total: u64,
    done: u64,
    last_event: Option<Instant>,
    /// The count of the last progress event written (none twice for the same count).
    last_done: Option<u64>,
}

impl Progress {
    /// The total, once known (0: unknown): the bar then shows percent and ETA.
    pub fn set_total(&mut self, total: u64) {
        self.total = total;
        if total > 0 {
            self.bar.set_length(total);
        } else {
            self.bar.unset_length();
        }
        if let Some(style) = style(total, self.unit) {
            self.bar.set_style(style);
        }
    }

    /// Count `n` more units done.
    pub fn inc(&mut self, n: u64) {
        self.bar.inc(n);
        self.done = self.done.saturating_add(n);
        self.reveal();
        if self.json
            && self
                .last_event
                .is_none_or(|t| t.elapsed() >= EVENT_INTERVAL)
        {
            self.event("progress");
        }
    }

    /// Draw on stderr once the work has run a second (short runs print nothing).
    fn reveal(&mut self) {
        if self.draw && !self.shown && self.started.elapsed() > Duration::from_secs(1) {
            self.bar
                .set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
            self.shown = true;
        }
    }

    /// One step reported by a library: a new phase resets the count and the total.
    pub fn step(&mut self, step: Step<'_>) {
        match step {
            Step::Phase { name, total, unit } => {
                if self.json && self.done > 0 {
                    // The last count of the phase that ends, whatever the throttle said.
                    self.event("progress");
                }
                self.phase = name.to_string();
                self.last_done = None;
                self.unit = unit;
                self.done = 0;
                self.bar.set_position(0);
                self.bar.set_message(format!("{}: {name}", self.operation));
                self.set_total(total.unwrap_or(0));
                if self.json {
                    self.event("phase");
                }
                // A phase may run long before its first count (the delta planner indexes
                // the baseline before it counts the files it plans): once the work
                // has passed a second, the bar shows at the phase change and keeps ticking.
                if self.draw {
                    self.bar.enable_steady_tick(Duration::from_millis(250));
                    self.reveal();
                }
            }
            Step::Advance(n) => self.inc(n),
        }
    }

    fn event(&mut self, event: &str) {
        if event == "progress" && self.last_done == Some(self.done) {
            return;
        }
        self.last_done = (event == "progress").then_some(self.done);
        let doc = serde_json::json!({
            "event": event,
            "operation": self.operation,
            "phase": self.phase,
            "unit": self.unit.as_str(),
            "done": self.done,
            "total": (self.total > 0).then_some(self.total),
        });
        eprintln!("{doc}");
        self.last_event = Some(Instant::now());
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if self.json && self.done > 0 {
            self.event("progress");
        }
        self.bar.finish_and_clear();
    }
}

/// `1.5 GiB`-style sizes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// RFC 3339 UTC time of a Unix timestamp.
pub fn rfc3339(secs: i64) -> String {
    jiff::Timestamp::from_second(secs).map_or_else(|_| secs.to_string(), |t| t.to_string())
}

/// `3h 5m`-style age.
pub fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}
