//! Property targets for the two parsers of untrusted analysis output: SARIF documents
//! (`gate` steps read whatever a step wrote) and cargo's JSON diagnostics (`slipway sarif
//! cargo` reads whatever a tool printed). Arbitrary bytes, arbitrary JSON in SARIF's
//! shape, and well-formed documents whose answers are known. Failing cases are kept in
//! `proptest-regressions/` (the corpus, in the repository).

use pipeline::sarif::{findings, from_cargo_json, judge};
use proptest::prelude::*;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("2.1.0"),
            Just("error"),
            Just("warning"),
            Just("note"),
            Just("none")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("version".to_string()),
                    Just("runs".to_string()),
                    Just("results".to_string()),
                    Just("tool".to_string()),
                    Just("driver".to_string()),
                    Just("rules".to_string()),
                    Just("level".to_string()),
                    Just("ruleId".to_string()),
                    Just("message".to_string()),
                    Just("text".to_string()),
                    Just("locations".to_string()),
                    Just("partialFingerprints".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A well-formed result: rule, level (or none, or the rule's default), file, line,
/// message, maybe a fingerprint.
fn result() -> impl Strategy<Value = (Value, Option<&'static str>)> {
    (
        "[a-z]{1,8}",
        prop_oneof![
            Just(Some("error")),
            Just(Some("warning")),
            Just(Some("note")),
            Just(Some("none")),
            Just(None)
        ],
        "[a-z/]{1,12}\\.rs",
        1u64..5000,
        ".{0,30}",
        proptest::option::of("[0-9a-f]{8}"),
    )
        .prop_map(|(rule, level, file, line, message, print)| {
            let mut r = json!({
                "ruleId": rule,
                "message": {"text": message},
                "locations": [{"physicalLocation": {
                    "artifactLocation": {"uri": file},
                    "region": {"startLine": line}}}],
            });
            if let Some(l) = level {
                r["level"] = json!(l);
            }
            if let Some(p) = print {
                r["partialFingerprints"] = json!({"primaryLocationLineHash": p});
            }
            (r, level)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_either_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = findings(&text);
        let converted = from_cargo_json(&text);
        // Whatever it read, the converter writes a document the gate can read.
        prop_assert!(findings(&converted).is_ok(), "{converted}");
    }

    #[test]
    fn arbitrary_json_in_sarifs_shape_is_read_or_refused_never_a_panic(doc in any_json(), version in any::<bool>()) {
        let mut doc = doc;
        if version && let Some(o) = doc.as_object_mut() {
            o.insert("version".into(), json!("2.1.0"));
        }
        let _ = findings(&doc.to_string());
        // The same bytes as cargo output, a line each.
        let lines: String = doc
            .as_array()
            .map(|a| a.iter().map(|v| v.to_string() + "\n").collect())
            .unwrap_or_else(|| doc.to_string());
        prop_assert!(findings(&from_cargo_json(&lines)).is_ok());
    }

    #[test]
    fn well_formed_documents_give_every_result_but_none_and_judge_against_themselves(
        results in proptest::collection::vec(result(), 0..40),
    ) {
        let expected = results.iter().filter(|(_, l)| *l != Some("none")).count();
        let doc = json!({"version": "2.1.0", "runs": [{
            "tool": {"driver": {"name": "t", "rules": []}},
            "results": results.iter().map(|(r, _)| r.clone()).collect::<Vec<_>>(),
        }]});
        let found = findings(&doc.to_string()).expect("a well-formed document");
        prop_assert_eq!(found.len(), expected);
        // Deterministic: the same document, the same findings.
        prop_assert_eq!(&found, &findings(&doc.to_string()).unwrap());
        // Nothing is new against itself; everything is new against an empty baseline,
        // each fingerprint counted once.
        let limits: BTreeMap<_, _> = BTreeMap::new();
        let prints: BTreeSet<String> = found.iter().map(|f| f.fingerprint.clone()).collect();
        prop_assert!(judge(&found, &prints, &limits).new.is_empty());
        let all_new: usize = judge(&found, &BTreeSet::new(), &limits).new.values().map(Vec::len).sum();
        prop_assert_eq!(all_new, prints.len());
    }
}
