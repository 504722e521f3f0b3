//! Where a secret may be used: the environments (and optionally app-id prefixes and
//! pipelines) a deployer or an admin allowed it for. A reference from anywhere else is
//! refused when the app or pipeline is deployed or registered.

use model::PathId;
use serde::{Deserialize, Serialize};

/// Where one secret may be used. Serialized in camelCase; unknown fields are rejected.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretScope {
    /// Environments whose apps may use it (`qa`, `prod`, ...; ASCII case-insensitive).
    #[serde(default)]
    pub environments: Vec<String>,
    /// When not empty, only apps under one of these id prefixes (segment-wise) may.
    #[serde(default)]
    pub apps: Vec<String>,
    /// Pipelines whose steps may use it.
    #[serde(default)]
    pub pipelines: Vec<String>,
}

impl SecretScope {
    /// `Ok` when an app `app` in environment `env` may use the secret `name`, else the
    /// reason, naming the secret and the environment.
    pub fn allows_app(&self, name: &str, env: &str, app: &PathId) -> Result<(), String> {
        if !self
            .environments
            .iter()
            .any(|e| e.eq_ignore_ascii_case(env))
        {
            let allowed = if self.environments.is_empty() {
                "no environment".to_string()
            } else {
                self.environments.join(", ")
            };
            return Err(format!(
                "secret {name} may not be used by apps in {env} (it is for {allowed})"
            ));
        }
        let under = |prefix: &String| {
            let p = PathId::parse(prefix);
            let (p, a) = (p.segments(), app.segments());
            p.len() <= a.len() && p.iter().zip(a).all(|(x, y)| x == y)
        };
        if !self.apps.is_empty() && !self.apps.iter().any(under) {
            return Err(format!(
                "secret {name} may not be used by {app} (it is for apps under {})",
                self.apps.join(", ")
            ));
        }
        Ok(())
    }

    /// `Ok` when the pipeline `pipeline` may use the secret `name`, else the reason.
    pub fn allows_pipeline(&self, name: &str, pipeline: &str) -> Result<(), String> {
        if self.pipelines.iter().any(|p| p == pipeline) {
            Ok(())
        } else {
            Err(format!(
                "secret {name} may not be used by the pipeline {pipeline} (it is for {})",
                if self.pipelines.is_empty() {
                    "no pipeline".to_string()
                } else {
                    format!("the pipelines {}", self.pipelines.join(", "))
                }
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_prefixes_and_pipelines() {
        let s = SecretScope {
            environments: vec!["prod".into()],
            apps: vec!["/AA/prod/shop".into()],
            pipelines: vec!["orders".into()],
        };
        let app = PathId::parse("/AA/prod/shop/db");
        assert!(s.allows_app("db", "PROD", &app).is_ok());
        let qa = s
            .allows_app("db", "qa", &PathId::parse("/qa/evil"))
            .unwrap_err();
        assert_eq!(
            qa,
            "secret db may not be used by apps in qa (it is for prod)"
        );
        assert!(
            s.allows_app("db", "prod", &PathId::parse("/AA/prod/other"))
                .is_err()
        );
        assert!(s.allows_pipeline("db", "orders").is_ok());
        assert!(s.allows_pipeline("db", "release").is_err());
        let none = SecretScope::default();
        assert!(
            none.allows_app("x", "qa", &app)
                .unwrap_err()
                .contains("no environment")
        );
    }
}
