//! Environments (qa, yz, prod, …) and their policies: which apps belong where and who may act.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use model::PathId;
use serde::{Deserialize, Serialize};

use crate::{AuthError, Principal, Role, Subject};

/// Name of the environment every app falls into when no other environment claims it.
pub const DEFAULT_ENV: &str = "default";

/// One environment and its rules. Serialized in camelCase; unknown fields are rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Environment name such as `qa`, `yz`, `prod` or `default` (unique, case-insensitive).
    pub name: String,
    /// Path prefixes claiming apps: an app matches when its id equals the prefix or lies below
    /// it (segment-wise, ASCII case-insensitive). E.g. `["/qa", "/AA/qa", "/BB/qa"]`.
    #[serde(default)]
    pub path_prefixes: Vec<String>,
    /// App labels claiming apps (any one matching label suffices; keys exact, values ASCII
    /// case-insensitive), e.g. `{"SLIPWAY_ENV": "prod"}`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Who may create, update, scale, restart, delete or kill apps here (admins always may).
    #[serde(default)]
    pub deploy: Vec<Subject>,
    /// Who may approve releases into this environment (admins always may).
    #[serde(default)]
    pub approve: Vec<Subject>,
    /// Whether the person who started a run may approve it (the rule binds admins too).
    #[serde(default)]
    pub self_approval: bool,
    /// Whether interactive tools (release jobs, CLI) must ask for confirmation.
    #[serde(default)]
    pub confirm: bool,
    /// Who may deploy apps here that ask for a privilege (keys from [`model::PRIVILEGES`]:
    /// `user`, `privileged`, `hostPath`, `capAdd`, `hostNetwork`, `securityOpt`,
    /// `lowPorts`); a privilege not listed is for admins only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub privileges: BTreeMap<String, Vec<Subject>>,
    /// Quotas of the environment: what all its apps together may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<EnvLimits>,
}

/// What all apps of one environment together may ask for (each optional).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvLimits {
    /// Instances in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// `cpus × instances` in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// `mem × instances` in total, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<f64>,
}

// Validation refuses non-finite limits, so equality is total.
impl Eq for EnvLimits {}

impl Policy {
    /// Number of segments of the longest of this policy's prefixes that contains `app_id`.
    pub fn path_match(&self, app_id: &PathId) -> Option<usize> {
        let app = app_id.segments();
        self.path_prefixes
            .iter()
            .filter_map(|prefix| {
                let segs: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
                let contained = segs.len() <= app.len()
                    && segs.iter().zip(app).all(|(p, a)| p.eq_ignore_ascii_case(a));
                contained.then_some(segs.len())
            })
            .max()
    }

    /// True when any of this policy's labels is present on the app with the same value.
    pub fn label_match(&self, labels: &BTreeMap<String, String>) -> bool {
        self.labels.iter().any(|(k, v)| {
            labels
                .get(k)
                .is_some_and(|have| have.eq_ignore_ascii_case(v))
        })
    }

    /// True when the principal may deploy here.
    pub fn may_deploy(&self, who: &Principal) -> bool {
        who.role == Role::Admin || self.deploy.iter().any(|s| s.matches(who))
    }

    /// True when the principal may approve releases here, ignoring the self-approval rule.
    pub fn may_approve(&self, who: &Principal) -> bool {
        who.role == Role::Admin || self.approve.iter().any(|s| s.matches(who))
    }

    /// An environment named `name` claimed by `/<name>` and `/<dc>/<name>` for each datacenter
    /// and by the label `SLIPWAY_ENV=<name>`.
    fn standard(name: &str, datacenters: &[String], deploy: Role, approve: Role) -> Self {
        let mut path_prefixes = vec![format!("/{name}")];
        path_prefixes.extend(datacenters.iter().map(|dc| format!("/{dc}/{name}")));
        Policy {
            name: name.to_string(),
            path_prefixes,
            labels: BTreeMap::from([("SLIPWAY_ENV".to_string(), name.to_string())]),
            deploy: vec![Subject::Role(deploy)],
            approve: vec![Subject::Role(approve)],
            self_approval: false,
            confirm: false,
            privileges: BTreeMap::new(),
            limits: None,
        }
    }
}

/// The environment a deploy target names: `prod` for `prod` and for `BB/prod` (a
/// datacenter, then the environment), the policy whose approvers and label apply.
pub fn environment_name(target: &str) -> &str {
    target.rsplit('/').next().unwrap_or(target)
}

/// Used when a (not validated) set lacks a `default` environment: fail closed, admins only.
static FALLBACK: LazyLock<Policy> = LazyLock::new(|| Policy {
    name: DEFAULT_ENV.to_string(),
    path_prefixes: Vec::new(),
    labels: BTreeMap::new(),
    deploy: Vec::new(),
    approve: Vec::new(),
    self_approval: false,
    confirm: true,
    privileges: BTreeMap::new(),
    limits: None,
});

/// All environments plus the known datacenters. Serialized in camelCase; unknown fields are
/// rejected; `datacenters` defaults to `["AA", "BB"]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySet {
    /// The environments, including `default` (the fallback for unclaimed apps).
    pub environments: Vec<Policy>,
    /// Datacenter names that may appear as the first path segment (`/AA/prod/web`).
    #[serde(default = "default_datacenters")]
    pub datacenters: Vec<String>,
}

fn default_datacenters() -> Vec<String> {
    vec!["AA".to_string(), "BB".to_string()]
}

impl Default for PolicySet {
    /// The embedded defaults: `qa` (developers deploy and approve, self-approval),
    /// `yz` (deployers, no self-approval), `prod` (deployers, no self-approval, confirm) and
    /// `default` (developers deploy, deployers approve, self-approval).
    fn default() -> Self {
        let dcs = default_datacenters();
        let mut qa = Policy::standard("qa", &dcs, Role::Developer, Role::Developer);
        qa.self_approval = true;
        let yz = Policy::standard("yz", &dcs, Role::Deployer, Role::Deployer);
        let mut prod = Policy::standard("prod", &dcs, Role::Deployer, Role::Deployer);
        prod.confirm = true;
        let default = Policy {
            name: DEFAULT_ENV.to_string(),
            path_prefixes: Vec::new(),
            labels: BTreeMap::new(),
            deploy: vec![Subject::Role(Role::Developer)],
            approve: vec![Subject::Role(Role::Deployer)],
            self_approval: true,
            confirm: false,
            privileges: BTreeMap::new(),
            limits: None,
        };
        PolicySet {
            environments: vec![qa, yz, prod, default],
            datacenters: dcs,
        }
    }
}

impl PolicySet {
    /// Parses a JSON policy document and [validates](Self::validate) it.
    pub fn from_json(json: &str) -> Result<Self, AuthError> {
        let set: PolicySet =
            serde_json::from_str(json).map_err(|e| AuthError::InvalidPolicy(e.to_string()))?;
        set.validate()
            .map_err(|problems| AuthError::InvalidPolicy(problems.join("; ")))?;
        Ok(set)
    }

    /// The environment with this name (ASCII case-insensitive).
    pub fn environment(&self, name: &str) -> Option<&Policy> {
        self.environments
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// The `default` environment; a fail-closed admin-only policy if the set lacks one.
    pub fn default_environment(&self) -> &Policy {
        self.environment(DEFAULT_ENV).unwrap_or(&FALLBACK)
    }

    /// The environment an app belongs to: the first environment (in declaration order) with a
    /// matching label wins; otherwise the environment with the longest matching path prefix
    /// (ties: first declared); otherwise `default`. Total and deterministic.
    pub fn environment_for(&self, app_id: &PathId, labels: &BTreeMap<String, String>) -> &Policy {
        self.environments
            .iter()
            .find(|p| p.label_match(labels))
            .or_else(|| self.path_environment(app_id))
            .unwrap_or_else(|| self.default_environment())
    }

    /// Every environment whose rules apply to a deployment: the [label or path
    /// environment](Self::environment_for) and, when different, the environment the path
    /// alone selects. Deploying requires permission in all of them, so a label cannot move
    /// an app out of a stricter path environment (e.g. `/prod/web` labelled `qa`).
    pub fn environments_for(
        &self,
        app_id: &PathId,
        labels: &BTreeMap<String, String>,
    ) -> Vec<&Policy> {
        let primary = self.environment_for(app_id, labels);
        let by_path = self
            .path_environment(app_id)
            .unwrap_or_else(|| self.default_environment());
        if std::ptr::eq(primary, by_path) {
            vec![primary]
        } else {
            vec![primary, by_path]
        }
    }

    /// The environment with the longest path prefix containing the app, if any.
    fn path_environment(&self, app_id: &PathId) -> Option<&Policy> {
        let mut best: Option<(usize, &Policy)> = None;
        for policy in &self.environments {
            if let Some(len) = policy.path_match(app_id)
                && best.is_none_or(|(best_len, _)| len > best_len)
            {
                best = Some((len, policy));
            }
        }
        best.map(|(_, policy)| policy)
    }

    /// The datacenter of an app or group: its first segment when that is a known datacenter
    /// (ASCII case-insensitive), spelled as configured.
    pub fn datacenter_of(&self, app_id: &PathId) -> Option<String> {
        let first = app_id.segments().first()?;
        self.datacenters
            .iter()
            .find(|dc| dc.eq_ignore_ascii_case(first))
            .cloned()
    }

    /// Checks the set: non-empty unique names, a `default` environment, prefixes that start
    /// with '/' and contain no `.`/`..`, no prefix or label claimed by two environments,
    /// well-formed user subjects and datacenter names. Returns every problem found.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let mut names = BTreeSet::new();
        let mut prefixes: BTreeMap<String, &str> = BTreeMap::new();
        let mut labels: BTreeMap<(&str, String), &str> = BTreeMap::new();
        for p in &self.environments {
            let name = p.name.as_str();
            if name.trim().is_empty() {
                problems.push("environment names must not be empty".to_string());
            } else if !names.insert(name.to_ascii_lowercase()) {
                problems.push(format!("duplicate environment name {name:?}"));
            }
            for prefix in &p.path_prefixes {
                let segs: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
                if !prefix.starts_with('/') {
                    problems.push(format!(
                        "{name}: path prefix {prefix:?} must start with '/'"
                    ));
                } else if segs.iter().any(|s| *s == "." || *s == "..") {
                    problems.push(format!(
                        "{name}: path prefix {prefix:?} must not contain . or .."
                    ));
                }
                let key = segs.join("/").to_ascii_lowercase();
                if let Some(other) = prefixes.insert(key, name) {
                    problems.push(format!(
                        "path prefix {prefix:?} is claimed by {other} and {name}"
                    ));
                }
            }
            for (k, v) in &p.labels {
                if let Some(other) = labels.insert((k.as_str(), v.to_ascii_lowercase()), name) {
                    problems.push(format!("label {k}={v} is claimed by {other} and {name}"));
                }
            }
            if let Some(l) = &p.limits {
                for (what, v) in [("cpus", l.cpus), ("mem", l.mem)] {
                    if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                        problems.push(format!("{name}: limits.{what} must be a number >= 0"));
                    }
                }
            }
            for kind in p.privileges.keys() {
                if !model::PRIVILEGES.contains(&kind.as_str()) {
                    problems.push(format!(
                        "{name}: unknown privilege {kind:?} (known: {})",
                        model::PRIVILEGES.join(", ")
                    ));
                }
            }
            for subject in p
                .deploy
                .iter()
                .chain(&p.approve)
                .chain(p.privileges.values().flatten())
            {
                if let Subject::User(user) = subject
                    && subject.to_string().parse::<Subject>().is_err()
                {
                    problems.push(format!("{name}: invalid user subject {user:?}"));
                }
            }
        }
        if !names.contains(DEFAULT_ENV) {
            problems.push(format!("an environment named {DEFAULT_ENV:?} is required"));
        }
        let mut dcs = BTreeSet::new();
        for dc in &self.datacenters {
            if dc.is_empty() || dc.contains('/') || dc.chars().any(char::is_whitespace) {
                problems.push(format!("invalid datacenter name {dc:?}"));
            } else if !dcs.insert(dc.to_ascii_lowercase()) {
                problems.push(format!("duplicate datacenter {dc:?}"));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}
