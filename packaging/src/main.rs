//! `ouk-package`: signs ouk's packages with the package role of a release key and checks
//! them, for `packaging/build.sh` and for anyone who wants to check a package without cosign.
//!
//! ```text
//! ouk-package public-key --key release.key [--output ouk-packages.pub]
//! ouk-package sign --key release.key PACKAGE...     # PACKAGE.sha256 + PACKAGE.sig
//! ouk-package verify --key ouk-packages.pub PACKAGE...
//! ```
//!
//! The release key's password comes from COSIGN_PASSWORD, as for `ouk kit build`. Exit 0 ok,
//! 1 failure, 2 usage (clap), 5 a signature or digest does not match.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ouk_packaging::{PackageError, load_public_key, load_release_key, package_key};

/// Sign and check ouk's .deb and .rpm packages (the package role of a release key).
#[derive(Debug, Parser)]
#[command(name = "ouk-package", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print (or write) the package public key: what operators verify packages against.
    PublicKey {
        /// The release key (cosign encrypted PEM; password from COSIGN_PASSWORD).
        #[arg(long)]
        key: PathBuf,
        /// Write the PEM here instead of stdout.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Write PACKAGE.sha256 and PACKAGE.sig (cosign blob signature) for each package.
    Sign {
        /// The release key (cosign encrypted PEM; password from COSIGN_PASSWORD).
        #[arg(long)]
        key: PathBuf,
        /// .deb or .rpm files.
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
    /// Check each package against its .sha256 and .sig and the package public key.
    Verify {
        /// The package public key (from `ouk-package public-key`).
        #[arg(long)]
        key: PathBuf,
        /// .deb or .rpm files.
        #[arg(required = true)]
        packages: Vec<PathBuf>,
    },
}

fn password() -> Option<Vec<u8>> {
    std::env::var_os("COSIGN_PASSWORD").map(|p| p.into_encoded_bytes())
}

fn run(cli: Cli) -> Result<(), PackageError> {
    match cli.command {
        Command::PublicKey { key, output } => {
            let release = load_release_key(&key, password().as_deref())?;
            let pem = package_key(&release)
                .verifying_key()
                .to_pem()
                .map_err(|source| PackageError::Key {
                    path: key.clone(),
                    source,
                })?;
            match output {
                Some(path) => std::fs::write(&path, pem)
                    .map_err(|source| PackageError::Io { path, source })?,
                None => print!("{pem}"),
            }
        }
        Command::Sign { key, packages } => {
            let signer = package_key(&load_release_key(&key, password().as_deref())?);
            for p in packages {
                let signed = ouk_packaging::sign_package(&signer, &p)?;
                println!("{}  {}", signed.sha256, p.display());
            }
        }
        Command::Verify { key, packages } => {
            let public = load_public_key(&key)?;
            for p in packages {
                let sha256 = ouk_packaging::verify_package(&public, &p)?;
                println!("{}: verified ({sha256})", p.display());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ouk-package: {e}");
            let code = match e {
                PackageError::Signature { .. } | PackageError::DigestMismatch { .. } => 5,
                _ => 1,
            };
            ExitCode::from(code)
        }
    }
}
