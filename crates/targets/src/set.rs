//! The set of targets a server knows, and which of them an app id belongs to.
//!
//! The first segment of an app id names a datacenter when a target of that name exists
//! (`/AA/prod/orders` → `AA`); every other app belongs to the default target, `local`
//! unless configured otherwise. Names are case-sensitive, as Marathon's id segments are.

use crate::spec::{DEFAULT_TARGET, TargetKind, TargetSpec};
use std::collections::BTreeMap;

/// Why a set of targets was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetsError {
    /// Two targets with one name.
    #[error("target {0} is given twice")]
    Duplicate(String),
    /// The default names no target.
    #[error("the default target {0} is not defined (targets: {1})")]
    UnknownDefault(String, String),
}

/// The targets of one server, by name; the default target is always among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets {
    by_name: BTreeMap<String, TargetSpec>,
    default: String,
    /// Whether `local` was added because no target had that name.
    implicit_local: bool,
}

impl Default for Targets {
    /// Only `local=local`, the default.
    fn default() -> Targets {
        Targets {
            by_name: BTreeMap::from([(DEFAULT_TARGET.to_string(), local().clone())]),
            default: DEFAULT_TARGET.to_string(),
            implicit_local: true,
        }
    }
}

impl Targets {
    /// The given targets plus `local=local` (unless a target is named `local`), with
    /// `local` as the default. A name given twice is an error.
    pub fn new(specs: impl IntoIterator<Item = TargetSpec>) -> Result<Targets, TargetsError> {
        Targets::with_default(specs, DEFAULT_TARGET)
    }

    /// Like [`Targets::new`], with `default` as the default target: `local` (added as
    /// `local=local` when no target has that name) or one of `specs`.
    pub fn with_default(
        specs: impl IntoIterator<Item = TargetSpec>,
        default: &str,
    ) -> Result<Targets, TargetsError> {
        let mut by_name = BTreeMap::new();
        for spec in specs {
            if by_name.contains_key(&spec.name) {
                return Err(TargetsError::Duplicate(spec.name));
            }
            by_name.insert(spec.name.clone(), spec);
        }
        let implicit_local = !by_name.contains_key(DEFAULT_TARGET) && default == DEFAULT_TARGET;
        if implicit_local {
            by_name.insert(DEFAULT_TARGET.to_string(), local().clone());
        }
        if !by_name.contains_key(default) {
            let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
            return Err(TargetsError::UnknownDefault(
                default.to_string(),
                names.join(", "),
            ));
        }
        Ok(Targets {
            by_name,
            default: default.to_string(),
            implicit_local,
        })
    }

    /// Adds one target (say, a `--target` flag on top of a targets file).
    pub fn insert(&mut self, spec: TargetSpec) -> Result<(), TargetsError> {
        if self.by_name.contains_key(&spec.name) {
            // The implicit `local=local` gives way to an explicit `local` target, once.
            if !(spec.name == DEFAULT_TARGET && self.implicit_local) {
                return Err(TargetsError::Duplicate(spec.name));
            }
            self.implicit_local = false;
        }
        self.by_name.insert(spec.name.clone(), spec);
        Ok(())
    }

    /// The target an app id belongs to: the one its first segment names, else the default.
    /// Relative ids (`AA/prod/orders`) are read as absolute.
    pub fn for_app(&self, app_id: &str) -> &TargetSpec {
        self.named_by(app_id)
            .unwrap_or_else(|| self.default_target())
    }

    /// The target the first segment of `app_id` names, if one does.
    pub fn named_by(&self, app_id: &str) -> Option<&TargetSpec> {
        let first = app_id.trim_start_matches('/').split('/').next()?;
        self.by_name.get(first)
    }

    /// The target apps go to when their id names none.
    pub fn default_target(&self) -> &TargetSpec {
        // The constructors keep the default among the targets; a fallback keeps this
        // total without a panic.
        self.by_name
            .get(&self.default)
            .or_else(|| self.by_name.values().next())
            .unwrap_or_else(|| local())
    }

    /// The target named `name`.
    pub fn get(&self, name: &str) -> Option<&TargetSpec> {
        self.by_name.get(name)
    }

    /// Every target, by name.
    pub fn iter(&self) -> impl Iterator<Item = &TargetSpec> {
        self.by_name.values()
    }

    /// The targets that were configured: every one but a `local` added because none was
    /// named so.
    pub fn configured(&self) -> impl Iterator<Item = &TargetSpec> {
        let implicit = self.implicit_local;
        self.by_name
            .values()
            .filter(move |t| !(implicit && t.name == DEFAULT_TARGET))
    }

    /// How many targets there are (the default included).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    /// Always false: the default target is always there.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

/// A `local=local` that lives for the whole program.
fn local() -> &'static TargetSpec {
    static LOCAL: std::sync::OnceLock<TargetSpec> = std::sync::OnceLock::new();
    LOCAL.get_or_init(|| TargetSpec {
        name: DEFAULT_TARGET.to_string(),
        kind: TargetKind::Local,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed() -> Targets {
        Targets::new(
            [
                "AA=local",
                "BB=swarm",
                "CC=marathon:http://127.0.0.1:9?secret=cc",
            ]
            .map(|s| TargetSpec::parse(s).unwrap()),
        )
        .unwrap()
    }

    #[track_caller]
    fn check(targets: &Targets, app_id: &str, want: &str) {
        assert_eq!(targets.for_app(app_id).name, want, "{app_id}");
    }

    #[test]
    fn the_first_segment_names_the_datacenter() {
        let t = seed();
        check(&t, "/AA/prod/orders", "AA");
        check(&t, "/BB/prod/orders", "BB");
        check(&t, "BB/qa/orders", "BB");
        check(&t, "/CC/x", "CC");
        check(&t, "/prod/orders", "local");
        check(&t, "/BBB/x", "local");
        check(&t, "/bb/x", "local");
        check(&t, "/", "local");
        check(&t, "", "local");
        check(&t, "/x/BB/y", "local");
        assert!(t.named_by("/prod/orders").is_none());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn the_default_can_be_another_target() {
        let specs = ["AA=local", "BB=swarm"].map(|s| TargetSpec::parse(s).unwrap());
        let t = Targets::with_default(specs.clone(), "BB").unwrap();
        check(&t, "/prod/orders", "BB");
        check(&t, "/AA/prod/orders", "AA");
        assert!(
            t.get("local").is_none(),
            "no implicit local when BB is the default"
        );
        assert_eq!(
            Targets::with_default(specs, "ZZ").unwrap_err().to_string(),
            "the default target ZZ is not defined (targets: AA, BB)"
        );
    }

    #[test]
    fn names_are_unique() {
        let twice = ["AA=local", "AA=swarm"].map(|s| TargetSpec::parse(s).unwrap());
        assert_eq!(
            Targets::new(twice).unwrap_err(),
            TargetsError::Duplicate("AA".into())
        );
        let mut t = seed();
        assert!(t.insert(TargetSpec::parse("BB=local").unwrap()).is_err());
        // An explicit `local` replaces the implicit one once.
        t.insert(TargetSpec::parse("local=swarm").unwrap()).unwrap();
        check(&t, "/prod/x", "local");
        assert_eq!(t.default_target().kind, TargetKind::Swarm { host: None });
        assert!(t.insert(TargetSpec::parse("local=local").unwrap()).is_err());
        // An explicit `local` is never replaced.
        let mut explicit = Targets::new([TargetSpec::parse("local=local").unwrap()]).unwrap();
        assert!(
            explicit
                .insert(TargetSpec::parse("local=swarm").unwrap())
                .is_err()
        );
    }

    proptest! {
        #[test]
        fn every_app_id_has_a_target(id in "\\PC{0,40}") {
            let t = seed();
            let name = &t.for_app(&id).name;
            prop_assert!(t.get(name).is_some());
        }
    }
}
