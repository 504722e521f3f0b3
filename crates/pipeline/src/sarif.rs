//! The `gate` step's core: findings from SARIF 2.1.0 files, compared with the findings
//! of the baseline (the last good run of the target branch), against per-level limits of
//! new findings. The role of Sonar's quality gate, without a Sonar server.

use model::pipeline::SarifLevel;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    /// Identity across runs: the tool's `partialFingerprints` when it gives one, else the
    /// rule, the file and the message (not the line, which moves with unrelated edits).
    pub fingerprint: String,
    /// `error`, `warning` or `note`.
    pub level: SarifLevel,
    /// The rule id.
    pub rule: String,
    /// `file:line`, when known.
    pub location: String,
    /// The message text.
    pub message: String,
}

/// Reads the results of a SARIF 2.1.0 document.
pub fn findings(doc: &str) -> Result<Vec<Finding>, String> {
    let v: Value = serde_json::from_str(doc).map_err(|e| format!("not JSON: {e}"))?;
    if v["version"] != "2.1.0" {
        return Err(format!("SARIF version {} is not 2.1.0", v["version"]));
    }
    let runs = v["runs"].as_array().ok_or("no `runs` array")?;
    let mut out = Vec::new();
    for run in runs {
        // A rule's default level applies when a result has none (SARIF §3.27.10).
        let mut defaults: BTreeMap<String, SarifLevel> = BTreeMap::new();
        for rule in run["tool"]["driver"]["rules"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let (Some(id), Some(level)) = (
                rule["id"].as_str(),
                rule["defaultConfiguration"]["level"]
                    .as_str()
                    .and_then(SarifLevel::parse),
            ) {
                defaults.insert(id.to_string(), level);
            }
        }
        for r in run["results"].as_array().into_iter().flatten() {
            let rule = r["ruleId"].as_str().unwrap_or("").to_string();
            let level = match r["level"].as_str() {
                Some("none") => continue,
                Some(l) => SarifLevel::parse(l).ok_or_else(|| format!("unknown level `{l}`"))?,
                None => defaults.get(&rule).copied().unwrap_or(SarifLevel::Warning),
            };
            let message = r["message"]["text"].as_str().unwrap_or("").to_string();
            let loc = &r["locations"][0]["physicalLocation"];
            let uri = loc["artifactLocation"]["uri"].as_str().unwrap_or("");
            let location = match loc["region"]["startLine"].as_u64() {
                Some(line) => format!("{uri}:{line}"),
                None => uri.to_string(),
            };
            let fingerprint = r["partialFingerprints"]
                .as_object()
                .and_then(|m| m.values().find_map(Value::as_str))
                .map(str::to_string)
                .unwrap_or_else(|| format!("{rule}|{uri}|{message}"));
            out.push(Finding {
                fingerprint,
                level,
                rule,
                location,
                message,
            });
        }
    }
    Ok(out)
}

/// The gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// New findings (not in the baseline), by level.
    pub new: BTreeMap<SarifLevel, Vec<Finding>>,
    /// Levels whose new findings exceed their limit: (level, count, limit).
    pub over: Vec<(SarifLevel, usize, u32)>,
}

/// Compares `current` with the baseline's fingerprints under `max_new`.
pub fn judge(
    current: &[Finding],
    baseline: &BTreeSet<String>,
    max_new: &BTreeMap<SarifLevel, u32>,
) -> Verdict {
    let mut new: BTreeMap<SarifLevel, Vec<Finding>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for f in current {
        if !baseline.contains(&f.fingerprint) && seen.insert(f.fingerprint.clone()) {
            new.entry(f.level).or_default().push(f.clone());
        }
    }
    let over = max_new
        .iter()
        .filter_map(|(level, limit)| {
            let n = new.get(level).map_or(0, Vec::len);
            (n > *limit as usize).then_some((*level, n, *limit))
        })
        .collect();
    Verdict { new, over }
}

/// The level's name as SARIF writes it.
pub fn level_name(level: SarifLevel) -> &'static str {
    match level {
        SarifLevel::Error => "error",
        SarifLevel::Warning => "warning",
        SarifLevel::Note => "note",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "lint", "rules": [{"id": "R2", "defaultConfiguration": {"level": "error"}}]}},
        "results": [
          {"ruleId": "R1", "level": "warning", "message": {"text": "unused variable x"},
           "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/a.rs"}, "region": {"startLine": 3}}}]},
          {"ruleId": "R2", "message": {"text": "possible overflow"},
           "partialFingerprints": {"primaryLocationLineHash": "abc:1"},
           "locations": [{"physicalLocation": {"artifactLocation": {"uri": "src/b.rs"}, "region": {"startLine": 9}}}]},
          {"ruleId": "R3", "level": "none", "message": {"text": "ignored"}}
        ]}]}"#;

    #[test]
    fn results_are_read_with_default_levels_and_fingerprints() {
        let f = findings(DOC).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(
            (f[0].level, f[0].location.as_str()),
            (SarifLevel::Warning, "src/a.rs:3")
        );
        assert_eq!(f[0].fingerprint, "R1|src/a.rs|unused variable x");
        assert_eq!(
            (f[1].level, f[1].fingerprint.as_str()),
            (SarifLevel::Error, "abc:1")
        );
        assert!(findings("{}").unwrap_err().contains("2.1.0"));
        assert!(findings("nope").unwrap_err().starts_with("not JSON"));
    }

    #[test]
    fn only_new_findings_count_against_the_limits() {
        let f = findings(DOC).unwrap();
        let limits = BTreeMap::from([(SarifLevel::Error, 0), (SarifLevel::Warning, 1)]);
        let v = judge(&f, &BTreeSet::new(), &limits);
        assert_eq!(v.over, [(SarifLevel::Error, 1, 0)]);
        let baseline: BTreeSet<String> = f.iter().map(|x| x.fingerprint.clone()).collect();
        let v = judge(&f, &baseline, &limits);
        assert!(v.over.is_empty() && v.new.is_empty());
    }
}

/// A SARIF 2.1.0 document from cargo's JSON diagnostics (`cargo clippy
/// --message-format=json`, `cargo build --message-format=json`): one result per
/// `compiler-message` with a primary span, deduplicated (cargo repeats a message for every
/// target that compiles the file). Other lines (artifacts, build-finished, plain text) are
/// skipped, so a tool's output can be piped in as it is.
pub fn from_cargo_json(text: &str) -> String {
    let mut results = Vec::new();
    let mut seen = BTreeSet::new();
    let mut rules = BTreeSet::new();
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-message" {
            continue;
        }
        let m = &v["message"];
        let level = match m["level"].as_str() {
            Some("error" | "error: internal compiler error") => "error",
            Some("warning") => "warning",
            Some("note" | "help") => "note",
            _ => continue,
        };
        let Some(span) = m["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["is_primary"] == true))
        else {
            continue;
        };
        let rule = m["code"]["code"].as_str().unwrap_or("rustc").to_string();
        let message = m["message"].as_str().unwrap_or("").to_string();
        let file = span["file_name"].as_str().unwrap_or("").to_string();
        let (line_no, col) = (
            span["line_start"].as_u64().unwrap_or(1),
            span["column_start"].as_u64().unwrap_or(1),
        );
        if !seen.insert((rule.clone(), file.clone(), line_no, col, message.clone())) {
            continue;
        }
        rules.insert(rule.clone());
        results.push(serde_json::json!({
            "ruleId": rule,
            "level": level,
            "message": {"text": message},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": file},
                "region": {"startLine": line_no, "startColumn": col},
            }}],
        }));
    }
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|r| serde_json::json!({"id": r}))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "cargo", "informationUri": "https://doc.rust-lang.org/cargo/", "rules": rules}},
            "results": results,
        }],
    }))
    .unwrap_or_default()
}

#[cfg(test)]
mod cargo_tests {
    use super::*;

    #[test]
    fn cargo_diagnostics_become_sarif_findings_once_each() {
        let warning = r#"{"reason":"compiler-message","package_id":"x","target":{},"message":{"message":"unused variable: `x`","code":{"code":"unused_variables","explanation":null},"level":"warning","spans":[{"file_name":"src/main.rs","line_start":3,"column_start":9,"is_primary":true}],"children":[]}}"#;
        let lint = r#"{"reason":"compiler-message","message":{"message":"used `unwrap()` on a `Result` value","code":{"code":"clippy::unwrap_used"},"level":"error","spans":[{"file_name":"src/lib.rs","line_start":10,"column_start":5,"is_primary":false},{"file_name":"src/lib.rs","line_start":12,"column_start":7,"is_primary":true}]}}"#;
        let summary = r#"{"reason":"compiler-message","message":{"message":"1 warning emitted","code":null,"level":"warning","spans":[]}}"#;
        let input = [
            warning,
            warning,
            lint,
            summary,
            r#"{"reason":"build-finished","success":true}"#,
            "    Checking orders v0.1.0",
        ]
        .join("\n");
        let doc = from_cargo_json(&input);
        let found = findings(&doc).unwrap();
        assert_eq!(found.len(), 2, "{doc}");
        let lint = found
            .iter()
            .find(|f| f.rule == "clippy::unwrap_used")
            .unwrap();
        assert_eq!(lint.level, SarifLevel::Error);
        assert_eq!(lint.location, "src/lib.rs:12");
        let w = found.iter().find(|f| f.rule == "unused_variables").unwrap();
        assert_eq!(w.level, SarifLevel::Warning);
        assert!(findings(&from_cargo_json("")).unwrap().is_empty());
    }
}
