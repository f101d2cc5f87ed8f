//! `alejandra [--check] FILE...`: formats Nix files with the alejandra library, the same
//! engine as the upstream `alejandra` CLI (which is not published on crates.io). With
//! `--check` nothing is written; the exit status is 2 if any file would change, 1 on a parse
//! or I/O error, 0 otherwise.

use std::process::ExitCode;

use alejandra::format::{Status, in_memory};

fn main() -> ExitCode {
    let mut check = false;
    let mut files = Vec::new();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--check" | "-c" => check = true,
            "--help" | "-h" => {
                println!("usage: alejandra [--check] FILE...");
                return ExitCode::SUCCESS;
            }
            _ => files.push(arg),
        }
    }
    if files.is_empty() {
        eprintln!("usage: alejandra [--check] FILE...");
        return ExitCode::from(1);
    }
    let mut failed = false;
    let mut unformatted = false;
    for file in files {
        let before = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("{file}: {e}");
                failed = true;
                continue;
            }
        };
        match in_memory(file.clone(), before) {
            (Status::Error(e), _) => {
                eprintln!("{file}: {e}");
                failed = true;
            }
            (Status::Changed(false), _) => {}
            (Status::Changed(true), _) if check => {
                eprintln!("{file}: not formatted (run alejandra {file})");
                unformatted = true;
            }
            (Status::Changed(true), after) => {
                if let Err(e) = std::fs::write(&file, after) {
                    eprintln!("{file}: {e}");
                    failed = true;
                } else {
                    eprintln!("{file}: formatted");
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else if unformatted {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}
