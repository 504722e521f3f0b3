//! What a caller may change, decided on the definitions that would run: the engine shows
//! every change of an operation (normalised, before and after) to a [`Gate`] for the
//! requesting principal before it commits anything.
//!
//! A change must pass, in order:
//! 1. the environment policy of the app before and after the change (a partial update,
//!    a rollback or a deployment cancel cannot move an app into or out of an environment
//!    its caller may not deploy to);
//! 2. every privilege the new definition asks for (another `user`, `privileged`, host
//!    paths outside `--allow-host-path`, `cap-add`, the host's network, `security-opt`,
//!    ports below 1024), each granted per environment by the policy, else admins only —
//!    unless the change keeps the configuration as it is (a scale or a restart);
//! 3. every secret it references is scoped to the app's environment (and app);
//! 4. ownership: a virtual host name belongs to the environment of the app that claimed it
//!    first (whatever path another app adds to it); another environment's claim is a 409
//!    naming the owner (service ports are never shared by two apps at all);
//! 5. limits: instances per app, the environment's quotas from its policy, and the
//!    machine's capacity times `--overcommit`.

use auth::{Action, Decision, PolicySet, Principal};
use engine::{Admission, ProposedChange, Refusal};
use model::AppDefinition;

/// Server-wide settings of the admission checks.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// The account tasks run as anyway (asking for it is no privilege).
    pub task_user: String,
    /// Host paths container volumes may mount without the `hostPath` privilege.
    pub allowed_host_paths: Vec<String>,
    /// Most instances one app may ask for.
    pub max_instances_per_app: u32,
    /// CPUs and MiB of memory the machine has.
    pub machine_cpus: f64,
    /// Memory of the machine, MiB.
    pub machine_mem_mib: f64,
    /// How far the sum of all apps' `cpus × instances` (and `mem × instances`) may exceed
    /// the machine: 1.0 = not at all.
    pub overcommit: f64,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            task_user: "slipway-task".into(),
            allowed_host_paths: Vec::new(),
            max_instances_per_app: 200,
            machine_cpus: std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64),
            machine_mem_mib: machine_mem_mib().unwrap_or(1024.0),
            overcommit: 4.0,
        }
    }
}

/// `MemTotal` of `/proc/meminfo`, in MiB.
fn machine_mem_mib() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .to_owned();
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What an app asks for by one measure (instances, cpus, memory).
type Measure = dyn Fn(&AppDefinition) -> f64;

/// The admission checks for one principal.
pub struct Gate<'a> {
    /// The policies in force.
    pub policies: PolicySet,
    /// Who asks.
    pub who: &'a Principal,
    /// Server-wide settings.
    pub config: &'a AdmissionConfig,
    /// Where each secret may be used.
    pub store: &'a store::Store,
}

impl Gate<'_> {
    fn deploy(&self, def: &AppDefinition) -> Result<(), Refusal> {
        match self.policies.authorize(self.who, &Action::deploy(def)) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(Refusal::Forbidden(reason)),
        }
    }

    fn privileges(&self, def: &AppDefinition) -> Result<(), Refusal> {
        let cfg = self.config;
        for p in def.privileges(&cfg.task_user, &cfg.allowed_host_paths) {
            let action = Action::UsePrivilege {
                app: def.id.clone(),
                labels: def.labels.clone(),
                kind: p.kind.to_string(),
                detail: p.detail.clone(),
            };
            if let Decision::Deny(reason) = self.policies.authorize(self.who, &action) {
                return Err(Refusal::Forbidden(reason));
            }
        }
        Ok(())
    }

    /// Every secret the definition references must be scoped to its environment (and app).
    fn secrets(&self, def: &AppDefinition) -> Result<(), Refusal> {
        let env = self.env_of(def);
        for reference in def.secrets.values() {
            let Some(name) = reference.get("source").and_then(|v| v.as_str()) else {
                continue;
            };
            let scope = match self.store.secret_scope(name) {
                // Unknown secrets fail the launch with "no such secret", as before.
                Ok(None) => continue,
                Ok(Some(None)) => auth::SecretScope::default(),
                Ok(Some(Some(json))) => serde_json::from_str(&json).unwrap_or_default(),
                Err(e) => {
                    return Err(Refusal::Forbidden(format!(
                        "cannot check secret {name}: {e}"
                    )));
                }
            };
            scope
                .allows_app(name, &env, &def.id)
                .map_err(Refusal::Forbidden)?;
        }
        Ok(())
    }

    /// The environment an app belongs to, for ownership.
    fn env_of(&self, def: &AppDefinition) -> String {
        self.policies
            .environment_for(&def.id, &def.labels)
            .name
            .clone()
    }

    fn ownership(&self, def: &AppDefinition, apps: &[&AppDefinition]) -> Result<(), Refusal> {
        let env = self.env_of(def);
        let hosts = vhosts(def);
        if hosts.is_empty() {
            return Ok(());
        }
        for other in apps.iter().filter(|o| o.id != def.id) {
            let other_env = self.env_of(other);
            if other_env == env {
                continue;
            }
            if let Some(host) = vhosts(other).into_iter().find(|h| hosts.contains(h)) {
                return Err(Refusal::Conflict(format!(
                    "the virtual host {host} belongs to {other_env}: {} serves it (an app in {env} cannot)",
                    other.id
                )));
            }
        }
        Ok(())
    }

    fn limits(
        &self,
        before: Option<&AppDefinition>,
        def: &AppDefinition,
        apps: &[&AppDefinition],
    ) -> Result<(), Refusal> {
        let cfg = self.config;
        let grows = |f: fn(&AppDefinition) -> f64| before.is_none_or(|b| f(def) > f(b));
        let cpus = |d: &AppDefinition| d.cpus * f64::from(d.instances);
        let mem = |d: &AppDefinition| d.mem * f64::from(d.instances);
        let instances = |d: &AppDefinition| f64::from(d.instances);
        if grows(instances) && def.instances > cfg.max_instances_per_app {
            return Err(Refusal::Limit(format!(
                "instances {} exceeds the limit of {} per app (--max-instances-per-app)",
                def.instances, cfg.max_instances_per_app
            )));
        }
        // Every app after the change.
        let after: Vec<&AppDefinition> = apps
            .iter()
            .copied()
            .filter(|o| o.id != def.id)
            .chain([def])
            .collect();
        let total = |f: &Measure, within: Option<&str>| -> f64 {
            after
                .iter()
                .filter(|d| within.is_none_or(|env| self.env_of(d) == env))
                .map(|d| f(d))
                .sum()
        };
        let env = self.policies.environment_for(&def.id, &def.labels);
        if let Some(q) = &env.limits {
            let checks: [(&str, Option<f64>, &Measure); 3] = [
                ("instances", q.instances.map(f64::from), &instances),
                ("cpus", q.cpus, &cpus),
                ("mem", q.mem, &mem),
            ];
            for (what, limit, f) in checks {
                if let Some(limit) = limit
                    && before.is_none_or(|b| f(def) > f(b))
                {
                    let used = total(f, Some(&env.name));
                    if used > limit + 1e-9 {
                        return Err(Refusal::Limit(format!(
                            "{} would use {used} {what} in total, over its limit of {limit} (policy limits.{what})",
                            env.name
                        )));
                    }
                }
            }
        }
        let capacity = [
            ("cpus", cfg.machine_cpus, &cpus as &Measure, ""),
            ("mem", cfg.machine_mem_mib, &mem, " MiB"),
        ];
        for (what, machine, f, unit) in capacity {
            let limit = machine * cfg.overcommit;
            if before.is_none_or(|b| f(def) > f(b)) {
                let used = total(f, None);
                if used > limit + 1e-9 {
                    return Err(Refusal::Limit(format!(
                        "all apps together would need {used}{unit} {what}, more than this machine's \
                         {machine}{unit} times the overcommit of {} (--overcommit)",
                        cfg.overcommit
                    )));
                }
            }
        }
        Ok(())
    }
}

impl Admission for Gate<'_> {
    fn admit(&self, change: &ProposedChange<'_>) -> Result<(), Refusal> {
        for def in [change.before, change.after].into_iter().flatten() {
            self.deploy(def)?;
        }
        let Some(after) = change.after else {
            return Ok(());
        };
        // A scale or a restart keeps the configuration someone was allowed to deploy.
        let same_config = change.before.is_some_and(|b| {
            b.version_info.last_config_change_at == after.version_info.last_config_change_at
                || b.same_config(after)
        });
        if !same_config {
            self.privileges(after)?;
            self.secrets(after)?;
            self.ownership(after, change.apps)?;
        }
        self.limits(change.before, after, change.apps)
    }
}

/// The virtual host names an app claims (`HAPROXY_{n}_VHOST`, `SLIPWAY_{n}_VHOST`),
/// lowercased.
pub(crate) fn vhosts(def: &AppDefinition) -> Vec<String> {
    let mut out: Vec<String> = def
        .labels
        .iter()
        .filter(|(k, _)| {
            let rest = k
                .strip_prefix("HAPROXY_")
                .or_else(|| k.strip_prefix("SLIPWAY_"));
            rest.and_then(|r| r.strip_suffix("_VHOST"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .flat_map(|(_, v)| v.split(','))
        .map(|h| h.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}
