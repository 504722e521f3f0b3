//! The targets file: one `NAME = SPEC` per line, as the `--target` flag takes them, plus an
//! optional `default = NAME`. Blank lines and lines starting with `#` are ignored.
//!
//! ```text
//! # The seed's datacenters.
//! AA = local
//! BB = swarm:unix:///run/bb-manager.sock
//! CC = marathon:http://10.0.0.9:8080?secret=cc-creds
//! default = AA
//! ```
//!
//! Every problem is reported at once, each as `line:column: message`.

use crate::set::{Targets, TargetsError};
use crate::spec::{DEFAULT_TARGET, TargetSpec};
use std::collections::BTreeMap;
use std::fmt;

/// One problem in a targets file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Every problem in a targets file, in line order (never empty).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct FileErrors(pub Vec<FileError>);

/// Parses a targets file into the set of targets (with `local=local` added unless a line
/// defines `local` or another default).
pub fn parse_file(text: &str) -> Result<Targets, FileErrors> {
    let mut errors = Vec::new();
    let mut specs: Vec<TargetSpec> = Vec::new();
    let mut lines_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut default: Option<(usize, usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let column = |byte: usize| line.get(..byte).map_or(1, |s| s.chars().count() + 1);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut error = |byte: usize, message: String| {
            errors.push(FileError {
                line: number,
                column: column(byte),
                message,
            });
        };
        if let Some((key, value)) = line.split_once('=')
            && key.trim() == "default"
        {
            let at = key.len() + 1 + (value.len() - value.trim_start().len());
            if let Some((first, ..)) = &default {
                error(
                    line.len() - trimmed.len(),
                    format!("the default is already set on line {first}"),
                );
            } else {
                default = Some((number, at, value.trim().to_string()));
            }
            continue;
        }
        match TargetSpec::parse(line) {
            Ok(spec) => {
                if let Some(first) = lines_of.get(&spec.name) {
                    error(
                        line.len() - trimmed.len(),
                        format!("target {} is already defined on line {first}", spec.name),
                    );
                } else {
                    lines_of.insert(spec.name.clone(), number);
                    specs.push(spec);
                }
            }
            Err(e) => error(e.offset(), e.to_string()),
        }
    }
    let (default_line, default_at, default_name) =
        default.unwrap_or((0, 0, DEFAULT_TARGET.to_string()));
    let targets = match Targets::with_default(specs, &default_name) {
        Ok(t) => Some(t),
        Err(e @ TargetsError::UnknownDefault(..)) => {
            let line = text
                .lines()
                .nth(default_line.saturating_sub(1))
                .unwrap_or("");
            errors.push(FileError {
                line: default_line,
                column: line.get(..default_at).map_or(1, |s| s.chars().count() + 1),
                message: e.to_string(),
            });
            None
        }
        // Duplicates were reported per line above.
        Err(TargetsError::Duplicate(_)) => None,
    };
    match targets {
        Some(t) if errors.is_empty() => Ok(t),
        _ => {
            errors.sort_by_key(|e| (e.line, e.column));
            Err(FileErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_seeds_datacenters() {
        let t = parse_file(
            "# The seed's datacenters.\n\
             AA = local\n\
             \n\
             BB = swarm:unix:///run/bb-manager.sock\n\
             CC = marathon:http://10.0.0.9:8080?secret=cc-creds\n\
             default = AA\n",
        )
        .unwrap();
        assert_eq!(t.for_app("/BB/prod/orders").name, "BB");
        assert_eq!(t.for_app("/prod/orders").name, "AA");
        assert!(t.get("local").is_none());
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn without_a_default_line_local_is_added() {
        let t = parse_file("BB = swarm\n").unwrap();
        assert_eq!(t.for_app("/qa/x").name, "local");
    }

    #[track_caller]
    fn check_errors(text: &str, want: &[&str]) {
        let got = parse_file(text).unwrap_err().to_string();
        let want = want.join("\n");
        assert_eq!(got, want);
    }

    #[test]
    fn every_problem_at_once_with_line_and_column() {
        check_errors(
            "AA = local\n\
             B_B = swarm\n\
             CC = marathon:http://h:1?token=x\n\
             AA = swarm\n\
             just words\n\
             default = ZZ\n\
             default = AA\n",
            &[
                "2:1: target name 'B_B': a target name is letters, digits and '-' (it is the first segment of its apps' ids)",
                "3:26: target CC: unknown option 'token' (only secret=SECRET)",
                "4:1: target AA is already defined on line 1",
                "5:1: a target is NAME=local, NAME=swarm[:DOCKER_HOST] or NAME=marathon:URL[?secret=SECRET] (no '=' found)",
                "6:11: the default target ZZ is not defined (targets: AA)",
                "7:1: the default is already set on line 6",
            ],
        );
    }

    #[test]
    fn columns_count_characters() {
        check_errors(
            "  ÄÄ = local\n",
            &[
                "1:3: target name 'ÄÄ': a target name is letters, digits and '-' (it is the first segment of its apps' ids)",
            ],
        );
        check_errors(
            "é=x\n",
            &[
                "1:1: target name 'é': a target name is letters, digits and '-' (it is the first segment of its apps' ids)",
            ],
        );
    }

    proptest! {
        #[test]
        fn parsing_a_file_never_panics(text in "(\\PC{0,40}\n){0,6}") {
            let _ = parse_file(&text);
        }
    }
}
