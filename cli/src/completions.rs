//! `ouk completions SHELL` and `ouk man`: shell completions and man pages generated from the
//! clap definitions of [`crate::Cli`], so they always list exactly the commands and options
//! this binary has. The package build runs both and installs the output; operators of a
//! hand-built `ouk` run them once (README, docs/operations.md).
//!
//! Invariants: nothing here touches a root (`--root` is ignored); the output depends only
//! on the clap definitions and the version string, so the same binary always writes the
//! same bytes (the package build relies on that to be reproducible).

use std::path::{Path, PathBuf};

use clap::Args;
use clap_complete::Shell;

use crate::Failure;
use crate::exit::ExitCode;

/// Arguments of `ouk completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Arguments of `ouk man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write ouk.1 and one page per subcommand (ouk-kit-import.1, ...) into this directory
    /// (created when missing). Without it, ouk.1 is printed to stdout.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

/// The clap command with the binary's name, as the generators need it.
fn command() -> clap::Command {
    crate::cli_command().name("ouk").bin_name("ouk")
}

/// Print the completion script for `args.shell` on stdout.
pub fn run_completions(args: &CompletionsArgs) -> Result<ExitCode, Failure> {
    let mut cmd = command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "ouk", &mut script);
    print_document(&script)?;
    Ok(ExitCode::Ok)
}

/// Write the man pages into `--output-dir`, or print ouk.1 on stdout.
pub fn run_man(ctx: &crate::Context, args: &ManArgs) -> Result<ExitCode, Failure> {
    let mut cmd = command();
    // Built as `generate_to` builds it (with the `help` subcommand listed), so the page on
    // stdout is the same as the ouk.1 written into a directory.
    cmd.build();
    match &args.output_dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| Failure::new(ExitCode::Failure, format!("rendering ouk.1: {e}")))?;
            print_document(&page)?;
        }
        Some(dir) => {
            let pages = write_pages(cmd, dir)?;
            let doc = serde_json::json!({"directory": dir, "pages": pages});
            ctx.out.emit(&doc, || {
                format!("wrote {} man pages to {}", pages.len(), dir.display())
            });
        }
    }
    Ok(ExitCode::Ok)
}

/// Every page clap_mangen makes for `cmd` (the command and each subcommand, recursively),
/// written into `dir`; returns the file names, sorted.
fn write_pages(cmd: clap::Command, dir: &Path) -> Result<Vec<String>, Failure> {
    let io = |e: std::io::Error| Failure::new(ExitCode::Failure, format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    clap_mangen::generate_to(cmd, dir).map_err(io)?;
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let name = entry
            .map_err(io)?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("ouk") && name.ends_with(".1") {
            pages.push(name);
        }
    }
    pages.sort();
    Ok(pages)
}

/// A generated document on stdout, whole (print_line adds the final newline back).
fn print_document(bytes: &[u8]) -> Result<(), Failure> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Failure::new(
            ExitCode::Failure,
            format!("generated text is not UTF-8: {e}"),
        )
    })?;
    crate::output::print_line(text.strip_suffix('\n').unwrap_or(text));
    Ok(())
}
