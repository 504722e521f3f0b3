//! Who a run acts as: one identity for "who started this run" whatever the trigger, used
//! by the self-approval rule and by deploy authority alike.
//!
//! Stored in a run's `triggered_by` as `user:NAME` (a person: by hand, a retry, or the
//! push hook called with their token) or `service:NAME` (a service principal with the
//! developer role: signed forge webhooks, polling, cron). Runs started by a push deploy at
//! most as a developer, whoever pushed.

/// The service principal signed forge webhooks start runs as.
pub const FORGE_PRINCIPAL: &str = "forge-webhook";

/// Who a step acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// A person, with their own role, capped at `at_most` when set.
    User {
        /// The user name.
        name: String,
        /// The highest role this action may use (a push deploys as a developer).
        at_most: Option<auth::Role>,
    },
    /// A service principal with the developer role.
    Service(String),
}

impl Actor {
    /// Who run with `triggered_by` and `event` acts as.
    pub fn of_run(triggered_by: &str, event: &str) -> Actor {
        let push = event == "push";
        if let Some(name) = triggered_by.strip_prefix("user:") {
            return Actor::User {
                name: name.to_string(),
                at_most: push.then_some(auth::Role::Developer),
            };
        }
        // Runs recorded before this identity existed (`webhook:NAME`): a push by that user.
        if let Some(name) = triggered_by.strip_prefix("webhook:") {
            return Actor::User {
                name: name.to_string(),
                at_most: Some(auth::Role::Developer),
            };
        }
        let name = triggered_by
            .strip_prefix("service:")
            .unwrap_or(triggered_by);
        Actor::Service(name.to_string())
    }

    /// The person who decided an approval (`user:NAME`), with their own role.
    pub fn approver(by: &str) -> Actor {
        match by.strip_prefix("user:") {
            Some(name) => Actor::User {
                name: name.to_string(),
                at_most: None,
            },
            None => Actor::Service(by.to_string()),
        }
    }

    /// The user who started a run, when a person did (for the self-approval rule).
    pub fn starter_user(triggered_by: &str) -> Option<String> {
        triggered_by
            .strip_prefix("user:")
            .or_else(|| triggered_by.strip_prefix("webhook:"))
            .map(str::to_string)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::User {
                name,
                at_most: None,
            } => write!(f, "user:{name}"),
            Actor::User {
                name,
                at_most: Some(role),
            } => write!(f, "user:{name} (a push: at most {role})"),
            Actor::Service(name) => write!(f, "service:{name} (developer)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_act_as_one_identity_whatever_the_trigger() {
        let dana = |at_most| Actor::User {
            name: "dana".into(),
            at_most,
        };
        assert_eq!(Actor::of_run("user:dana", "manual"), dana(None));
        assert_eq!(Actor::of_run("user:dana", "retry"), dana(None));
        assert_eq!(
            Actor::of_run("user:dana", "push"),
            dana(Some(auth::Role::Developer))
        );
        assert_eq!(
            Actor::of_run("webhook:dana", "push"),
            dana(Some(auth::Role::Developer))
        );
        assert_eq!(
            Actor::of_run("service:forge-webhook", "push"),
            Actor::Service("forge-webhook".into())
        );
        assert_eq!(Actor::of_run("poll", "push"), Actor::Service("poll".into()));
        assert_eq!(Actor::starter_user("webhook:dana").as_deref(), Some("dana"));
        assert_eq!(Actor::starter_user("user:dana").as_deref(), Some("dana"));
        assert_eq!(Actor::starter_user("service:forge-webhook"), None);
        assert_eq!(
            dana(Some(auth::Role::Developer)).to_string(),
            "user:dana (a push: at most developer)"
        );
    }
}
