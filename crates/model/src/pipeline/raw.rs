//! The pipeline file as written: serde types that keep each node's line and column, so
//! validation can point at the value it rejects.

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;

/// A string, number or boolean as written (parameter defaults, variables).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum Scalar {
    Bool(bool),
    Int(i64),
    Text(String),
}

impl Scalar {
    pub(crate) fn as_text(&self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Text(s) => s.clone(),
        }
    }
}

/// One string or a list of them (`run: make` or `run: [make, make test]`). List items keep
/// their own locations; a single string takes the location of the field's value.
#[derive(Debug, Clone)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_string()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    items.push(item);
                }
                Ok(OneOrMany::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// The strings of a [`OneOrMany`] field, each with a location.
pub(crate) fn strings(field: &Spanned<OneOrMany>) -> Vec<Spanned<String>> {
    match &field.value {
        OneOrMany::One(s) => vec![Spanned::new(s.clone(), field.referenced, field.defined)],
        OneOrMany::Many(v) => v.clone(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) version: Spanned<u32>,
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) description: Option<String>,
    #[serde(default, rename = "on")]
    pub(crate) triggers: Option<Spanned<RawTriggers>>,
    #[serde(default)]
    pub(crate) params: BTreeMap<String, Spanned<RawParam>>,
    #[serde(default)]
    pub(crate) vars: BTreeMap<String, Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) repos: BTreeMap<String, Spanned<RawRepo>>,
    pub(crate) steps: Spanned<BTreeMap<String, Spanned<RawStep>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTriggers {
    #[serde(default)]
    pub(crate) push: Option<RawPush>,
    #[serde(default)]
    pub(crate) manual: Option<RawManual>,
    #[serde(default)]
    pub(crate) cron: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPush {
    pub(crate) branches: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) poll: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManual {
    #[serde(default)]
    pub(crate) allowed: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawParam {
    #[serde(rename = "type")]
    pub(crate) kind: Spanned<String>,
    #[serde(default)]
    pub(crate) options: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) default: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) required: bool,
    #[serde(default)]
    pub(crate) description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    #[serde(default)]
    pub(crate) needs: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) when: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) timeout: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) retry: Option<Spanned<u32>>,
    #[serde(default)]
    pub(crate) env: BTreeMap<String, Spanned<Scalar>>,
    #[serde(default)]
    pub(crate) secrets: Vec<Spanned<String>>,
    /// Runs the step's commands in a container of this image instead of on the host.
    #[serde(default)]
    pub(crate) image: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) run: Option<Spanned<OneOrMany>>,
    #[serde(default)]
    pub(crate) gate: Option<Spanned<RawGate>>,
    #[serde(default)]
    pub(crate) docker: Option<Spanned<RawDocker>>,
    #[serde(default)]
    pub(crate) promote: Option<Spanned<RawPromote>>,
    #[serde(default)]
    pub(crate) deploy: Option<Spanned<RawDeploy>>,
    #[serde(default)]
    pub(crate) approve: Option<Spanned<RawApprove>>,
    #[serde(default)]
    pub(crate) merge: Option<Spanned<RawMerge>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRepo {
    pub(crate) url: Spanned<String>,
    #[serde(default)]
    pub(crate) branch: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMerge {
    #[serde(default)]
    pub(crate) from: Option<Spanned<String>>,
    pub(crate) into: Spanned<String>,
    #[serde(default)]
    pub(crate) fast_forward_only: bool,
    #[serde(default)]
    pub(crate) secret: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGate {
    pub(crate) sarif: Spanned<OneOrMany>,
    #[serde(default)]
    pub(crate) baseline: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) max_new: BTreeMap<String, Spanned<u32>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDocker {
    pub(crate) build: Spanned<String>,
    #[serde(default)]
    pub(crate) dockerfile: Option<Spanned<String>>,
    pub(crate) push: Spanned<String>,
    #[serde(default)]
    pub(crate) tags: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPromote {
    pub(crate) image: Spanned<String>,
    pub(crate) to: Spanned<String>,
    #[serde(default)]
    pub(crate) require_approval: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) force: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeploy {
    pub(crate) env: Spanned<String>,
    #[serde(default)]
    pub(crate) repo: Option<Spanned<String>>,
    pub(crate) app: Spanned<String>,
    #[serde(default)]
    pub(crate) overlay: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) image: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApprove {
    pub(crate) message: Spanned<String>,
    #[serde(default)]
    pub(crate) approvers: Vec<Spanned<String>>,
    #[serde(default)]
    pub(crate) env: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) timeout: Option<Spanned<String>>,
}
