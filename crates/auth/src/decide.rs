//! Access decisions: what a principal wants to do ([`Action`]) and the answer ([`Decision`]).

use std::collections::BTreeMap;

use model::{AppDefinition, PathId};

use crate::{Policy, PolicySet, Principal, Role, Subject};

/// Something a principal wants to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Any read-only request (GET on apps, groups, deployments, tasks, info, events).
    Read,
    /// Create, update, scale, restart, delete or kill tasks of the app `app` with `labels`.
    ///
    /// For updates the server must authorize both the stored and the new definition (else a
    /// label or id change could move an app out of a strict environment), and for group
    /// operations every affected app.
    Deploy {
        /// The app (or group) id.
        app: PathId,
        /// The app's labels (empty for groups).
        labels: BTreeMap<String, String>,
    },
    /// Approve a release into the environment `env` (a [`Policy`] name).
    Approve {
        /// The environment name.
        env: String,
        /// The user who started the run being approved, if known.
        started_by: Option<String>,
    },
    /// User, token, policy and secret administration.
    Admin,
    /// Deploy the app `app` with `labels` although its definition asks for a privilege
    /// (a [`model::Privilege`]; `kind` is its policy key, `detail` names it).
    UsePrivilege {
        /// The app id.
        app: PathId,
        /// The app's labels.
        labels: BTreeMap<String, String>,
        /// The privilege's policy key.
        kind: String,
        /// What exactly is asked for, for the message.
        detail: String,
    },
}

impl Action {
    /// The [`Action::Deploy`] for an app definition (clones its id and labels).
    pub fn deploy(app: &AppDefinition) -> Self {
        Action::Deploy {
            app: app.id.clone(),
            labels: app.labels.clone(),
        }
    }
}

/// The answer to [`PolicySet::authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Refused, with a human-readable reason fit for a 403 body, e.g.
    /// `developer alice may not deploy to prod (needs role:deployer)`.
    Deny(String),
}

impl Decision {
    /// True for [`Decision::Allow`].
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow)
    }

    /// `Ok(())` for allow, `Err(reason)` for deny, for use with `?`.
    pub fn into_result(self) -> Result<(), String> {
        match self {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) => Err(reason),
        }
    }
}

impl PolicySet {
    /// Decides whether `who` may perform `action`:
    ///
    /// * admins may do everything except approve a run they started where the environment
    ///   forbids self-approval: the four-eyes rule holds for everyone (an admin who wants
    ///   otherwise changes the policy, which the audit log records);
    /// * [`Action::Read`] needs viewer, i.e. any authenticated user;
    /// * [`Action::Admin`] needs admin;
    /// * [`Action::Deploy`] needs a matching `deploy` subject in every environment returned by
    ///   [`PolicySet::environments_for`] (the label environment and the path environment);
    /// * [`Action::Approve`] needs a matching `approve` subject of that environment, and when
    ///   `started_by` is the principal, the environment must allow self-approval. Unknown
    ///   environments are denied.
    pub fn authorize(&self, who: &Principal, action: &Action) -> Decision {
        if who.role == Role::Admin {
            return match action {
                Action::Approve { env, started_by } => match self.environment(env) {
                    Some(policy) => self_approval(policy, who, started_by.as_deref()),
                    None => Decision::Allow,
                },
                _ => Decision::Allow,
            };
        }
        match action {
            // Every role is at least a viewer.
            Action::Read => Decision::Allow,
            Action::Admin => deny(who, "administer slipway", &[Subject::Role(Role::Admin)]),
            Action::Deploy { app, labels } => {
                for env in self.environments_for(app, labels) {
                    if !env.may_deploy(who) {
                        return deny(who, &format!("deploy to {}", env.name), &env.deploy);
                    }
                }
                Decision::Allow
            }
            Action::UsePrivilege {
                app,
                labels,
                kind,
                detail,
            } => {
                for env in self.environments_for(app, labels) {
                    let allowed = env.privileges.get(kind).map_or(&[][..], Vec::as_slice);
                    if !allowed.iter().any(|s| s.matches(who)) {
                        let what = format!("deploy apps with {detail} to {}", env.name);
                        return deny(who, &what, allowed);
                    }
                }
                Decision::Allow
            }
            Action::Approve { env, started_by } => {
                let Some(policy) = self.environment(env) else {
                    return Decision::Deny(format!("unknown environment {env:?}"));
                };
                approve(policy, who, started_by.as_deref())
            }
        }
    }
}

/// The approval rule of one environment for a non-admin.
fn approve(policy: &Policy, who: &Principal, started_by: Option<&str>) -> Decision {
    if !policy.may_approve(who) {
        let what = format!("approve releases into {}", policy.name);
        return deny(who, &what, &policy.approve);
    }
    self_approval(policy, who, started_by)
}

/// The four-eyes rule, for every role: where the environment forbids self-approval, the
/// person who started a run may not approve it.
fn self_approval(policy: &Policy, who: &Principal, started_by: Option<&str>) -> Decision {
    if started_by == Some(who.user.as_str()) && !policy.self_approval {
        return Decision::Deny(format!(
            "{} started this run and {} does not allow self-approval: someone else must approve",
            who.user, policy.name
        ));
    }
    Decision::Allow
}

impl PolicySet {
    /// The environment that asks for confirmation (`confirm: true`) before the app `app`
    /// with `labels` is changed by hand (scaled, rolled back, deleted, released), if any of
    /// the environments the app belongs to does. Interactive tools ask, or take `--yes`.
    pub fn confirmation_for(
        &self,
        app: &PathId,
        labels: &BTreeMap<String, String>,
    ) -> Option<&Policy> {
        self.environments_for(app, labels)
            .into_iter()
            .find(|env| env.confirm)
    }
}

/// `"<role> <user> may not <what> (needs <subjects>)"`; an empty list means admins only.
fn deny(who: &Principal, what: &str, needs: &[Subject]) -> Decision {
    let needs = if needs.is_empty() {
        Subject::Role(Role::Admin).to_string()
    } else {
        needs
            .iter()
            .map(Subject::to_string)
            .collect::<Vec<_>>()
            .join(" or ")
    };
    Decision::Deny(format!(
        "{} {} may not {what} (needs {needs})",
        who.role, who.user
    ))
}
