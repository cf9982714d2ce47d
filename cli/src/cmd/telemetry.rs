//! `ouk telemetry package`: the reproducible telemetry collector bundle.

use std::path::PathBuf;

use clap::Subcommand;

use crate::exit::ExitCode;
use crate::output::bytes;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum TelemetryCommand {
    /// Package collector config, overlays and notes from DIR into a reproducible tar.gz
    /// plus its .sha256 (put both under telemetry/ of the release tree).
    Package {
        /// The directory to package (regular files only).
        #[arg(long)]
        input: PathBuf,
        /// The bundle to write; OUTPUT.sha256 is written next to it.
        #[arg(long, default_value = ouk_kit::ops::telemetry::TELEMETRY_PATH)]
        output: PathBuf,
    },
}

pub fn run(ctx: &Context, cmd: TelemetryCommand) -> Result<ExitCode, Failure> {
    match cmd {
        TelemetryCommand::Package { input, output } => {
            let report = ouk_kit::ops::telemetry::package_telemetry(&input, &output)
                .map_err(|e| Failure::new(crate::exit::class_code(e.class()), e.to_string()))?;
            ctx.out.emit(&report, || {
                format!(
                    "packaged {} files into {} ({})\n  sha256 {}\n  {}",
                    report.files,
                    report.output.display(),
                    bytes(report.size),
                    report.sha256,
                    report.sidecar.display()
                )
            });
            Ok(ExitCode::Ok)
        }
    }
}
