//! Roles, policy subjects (`role:deployer`, `user:alice`) and the authenticated principal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::AuthError;

/// A user's global role. Ordered: `Viewer < Developer < Deployer < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read everything (apps, deployments, logs without secrets).
    Viewer,
    /// May deploy where policies allow `role:developer` (by default qa and unlisted paths).
    Developer,
    /// May deploy and approve everywhere the defaults allow, including prod.
    Deployer,
    /// May do everything, including user, token, policy and secret administration.
    Admin,
}

impl Role {
    /// All roles, lowest first.
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Developer, Role::Deployer, Role::Admin];

    /// The lowercase name (`viewer`, `developer`, `deployer`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Developer => "developer",
            Role::Deployer => "deployer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    /// Parses a role name, ignoring ASCII case and surrounding whitespace.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim();
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(trimmed))
            .ok_or_else(|| AuthError::UnknownRole(s.to_string()))
    }
}

/// Who a policy rule grants something to. Serialized as `role:<role>` or `user:<name>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// `role:deployer`: users with that role or a higher one.
    Role(Role),
    /// `user:alice`: exactly that user (case-sensitive), whatever their role.
    User(String),
}

impl Subject {
    /// True when the principal is covered by this subject.
    pub fn matches(&self, who: &Principal) -> bool {
        match self {
            Subject::Role(role) => who.role >= *role,
            Subject::User(name) => *name == who.user,
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Role(role) => write!(f, "role:{role}"),
            Subject::User(name) => write!(f, "user:{name}"),
        }
    }
}

impl FromStr for Subject {
    type Err = AuthError;

    /// Parses `role:<role>` or `user:<name>` (kind case-insensitive, name non-empty without
    /// whitespace or control characters).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || AuthError::InvalidSubject(s.to_string());
        let (kind, value) = s.trim().split_once(':').ok_or_else(invalid)?;
        if kind.eq_ignore_ascii_case("role") {
            value.parse().map(Subject::Role).map_err(|_| invalid())
        } else if kind.eq_ignore_ascii_case("user")
            && !value.is_empty()
            && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            Ok(Subject::User(value.to_string()))
        } else {
            Err(invalid())
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An authenticated user as far as decisions are concerned.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Principal {
    /// The user name (for tokens: the token's owner).
    pub user: String,
    /// The user's role.
    pub role: Role,
}

impl Principal {
    /// Convenience constructor.
    pub fn new(user: impl Into<String>, role: Role) -> Self {
        Principal {
            user: user.into(),
            role,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_and_names() {
        assert!(Role::Viewer < Role::Developer);
        assert!(Role::Developer < Role::Deployer);
        assert!(Role::Deployer < Role::Admin);
        for role in Role::ALL {
            assert_eq!(role.to_string().parse::<Role>().unwrap(), role);
            let json = serde_json::to_string(&role).unwrap();
            assert_eq!(json, format!("\"{role}\""));
            assert_eq!(serde_json::from_str::<Role>(&json).unwrap(), role);
        }
        assert_eq!(" Deployer ".parse::<Role>().unwrap(), Role::Deployer);
        assert!("root".parse::<Role>().is_err());
        assert!(serde_json::from_str::<Role>("\"Admin\"").is_err());
    }

    #[test]
    fn subjects_parse_and_match() {
        let dev = Principal::new("alice", Role::Developer);
        let cases = [
            ("role:developer", Some(Subject::Role(Role::Developer)), true),
            ("ROLE:Deployer", Some(Subject::Role(Role::Deployer)), false),
            ("role:viewer", Some(Subject::Role(Role::Viewer)), true),
            ("user:alice", Some(Subject::User("alice".into())), true),
            ("user:bob", Some(Subject::User("bob".into())), false),
            ("user:", None, false),
            ("user:a b", None, false),
            ("role:root", None, false),
            ("group:ops", None, false),
            ("alice", None, false),
        ];
        for (raw, want, matches) in cases {
            let got = raw.parse::<Subject>().ok();
            assert_eq!(got, want, "{raw}");
            if let Some(subject) = got {
                assert_eq!(subject.matches(&dev), matches, "{raw}");
                let json = serde_json::to_value(&subject).unwrap();
                assert_eq!(serde_json::from_value::<Subject>(json).unwrap(), subject);
            }
        }
        assert_eq!(Subject::Role(Role::Admin).to_string(), "role:admin");
        assert!(serde_json::from_str::<Subject>("\"role:nope\"").is_err());
    }
}
