//! `ouk authority check FILE`: the Authority scope sanity check of an `authority.yaml`
//! (or the kit's `etc/authority.yaml.sample`) against the Aggregation-Only guardrails.
//! Exit 0 when they hold, 11 when one is broken or the YAML does not parse (naming the
//! client and scope, or the line), 1 when the file cannot be read.

use std::path::PathBuf;

use clap::Subcommand;

use crate::exit::ExitCode;
use crate::{Context, Failure};

#[derive(Debug, Subcommand)]
pub enum AuthorityCommand {
    /// Check an Authority configuration's client scopes against the guardrails.
    Check {
        /// The Authority YAML, e.g. etc/authority.yaml.sample.
        file: PathBuf,
    },
}

pub fn run(ctx: &Context, cmd: AuthorityCommand) -> Result<ExitCode, Failure> {
    match cmd {
        AuthorityCommand::Check { file } => {
            if !file.is_file() {
                return Err(Failure::new(
                    ExitCode::Failure,
                    format!("{}: not found", file.display()),
                ));
            }
            let shown = file.display().to_string();
            let report = ouk_kit::ops::authority::check_file(&shown, &file)
                .map_err(|e| Failure::new(crate::exit::class_code(e.class()), e.to_string()))?;
            let ok = report.violations.is_empty();
            let doc = serde_json::json!({
                "path": report.path,
                "ok": ok,
                "clients": report.clients,
                "violations": report.violations,
            });
            if ok {
                ctx.out.emit(&doc, || {
                    format!(
                        "OK {shown}: {} client(s), Authority scope guardrails hold",
                        report.clients
                    )
                });
                return Ok(ExitCode::Ok);
            }
            ctx.out.emit(&doc, String::new);
            let message = report.into_result().err().map(|e| e.to_string());
            if let Some(m) = message {
                eprintln!("ouk: {m}");
            }
            Ok(ExitCode::Validation)
        }
    }
}
