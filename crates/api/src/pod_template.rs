//! `podTemplate`: a Kubernetes `Pod` merged into the Flink pods, kept exactly as written.
//!
//! k8s-openapi's `Pod` always writes `apiVersion`, `kind`, `metadata` and `spec.containers`,
//! so a template like `{spec: {initContainers: [...]}}` would come back with fields the user
//! never wrote. The template is therefore stored as the JSON the user wrote, checked once to be a
//! valid `Pod`, and handed out typed on demand.

use k8s_openapi::api::core::v1::Pod;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A pod template (`spec.podTemplate`, `spec.jobManager.podTemplate`, …).
#[derive(Clone, Debug, PartialEq)]
pub struct PodTemplate(Value);

impl PodTemplate {
    /// A template from a typed pod (all fields it sets, as k8s-openapi writes them).
    pub fn from_pod(pod: &Pod) -> Self {
        // A `Pod` always serializes; `Null` is unreachable but keeps this infallible.
        Self(serde_json::to_value(pod).unwrap_or(Value::Null))
    }

    /// A template from JSON, if it is a valid `Pod`.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value::<Pod>(value.clone())?;
        Ok(Self(value))
    }

    /// The template exactly as written.
    pub fn as_value(&self) -> &Value {
        &self.0
    }

    /// The template as a typed pod. Fields it does not set are empty.
    pub fn pod(&self) -> Pod {
        // checked on construction, so this parse succeeds
        serde_json::from_value(self.0.clone()).unwrap_or_default()
    }
}

impl Serialize for PodTemplate {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ser)
    }
}

impl<'de> Deserialize<'de> for PodTemplate {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(de)?;
        Self::from_value(value)
            .map_err(|e| serde::de::Error::custom(format!("not a valid Kubernetes Pod: {e}")))
    }
}

impl JsonSchema for PodTemplate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        Pod::schema_name()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        Pod::json_schema(generator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_round_trips_without_added_fields() {
        let v = serde_json::json!({"spec": {"initContainers": [{"name": "fetch", "image": "busybox"}]}});
        let t: PodTemplate = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(serde_json::to_value(&t).unwrap(), v);
        let pod = t.pod();
        assert_eq!(pod.spec.unwrap().init_containers.unwrap()[0].name, "fetch");
    }

    #[test]
    fn a_template_that_is_not_a_pod_is_rejected() {
        let v = serde_json::json!({"spec": {"containers": "flink-main-container"}});
        let err = serde_json::from_value::<PodTemplate>(v).unwrap_err();
        assert!(
            err.to_string().contains("not a valid Kubernetes Pod"),
            "{err}"
        );
    }
}
