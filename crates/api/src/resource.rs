//! The root objects (`FlinkDeployment`, …) and their `CustomResourceDefinition`s.
//!
//! kube-derive's `#[derive(CustomResource)]` makes `spec` mandatory when reading. The Apache
//! operator's own canary resources (and any object created without a spec) have none, and one
//! such object would make a typed list of all `FlinkDeployment`s fail to parse. So the roots are
//! written here with the same traits kube-derive implements (`Resource`, `HasSpec`, `HasStatus`,
//! `CustomResourceExt`) and the same schema pipeline, but `spec` defaults to empty when missing
//! and is left out when empty.

use std::marker::PhantomData;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceScale,
    CustomResourceSubresourceStatus, CustomResourceSubresources, CustomResourceValidation,
    JSONSchemaProps,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::generate::SchemaSettings;
use schemars::transform::AddNullable;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// API group of all flinkpilot resources.
pub const GROUP: &str = "flink.apache.org";
/// API version of all flinkpilot resources.
pub const VERSION: &str = "v1beta1";
/// `apiVersion` of all flinkpilot resources.
pub const API_VERSION: &str = "flink.apache.org/v1beta1";

/// The static facts a CRD is built from.
#[derive(Clone, Copy, Debug)]
pub struct CrdInfo {
    /// `kind`, e.g. `FlinkDeployment`.
    pub kind: &'static str,
    /// Plural resource name, e.g. `flinkdeployments`.
    pub plural: &'static str,
    /// Singular resource name, e.g. `flinkdeployment`.
    pub singular: &'static str,
    /// Short names for kubectl, e.g. `flinkdep`.
    pub short_names: &'static [&'static str],
    /// Extra `kubectl get` columns: `(name, jsonPath)`, all strings.
    pub printer_columns: &'static [(&'static str, &'static str)],
    /// Scale subresource: `(specReplicasPath, statusReplicasPath, labelSelectorPath)`.
    pub scale: Option<(&'static str, &'static str, &'static str)>,
    /// Description of the whole object.
    pub description: &'static str,
}

/// The object schema `{spec, status}` that kube-derive would derive for a root type.
struct RootSchema<Spec, Status>(PhantomData<(Spec, Status)>);

impl<Spec: JsonSchema, Status: JsonSchema> JsonSchema for RootSchema<Spec, Status> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Root".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let spec = generator.subschema_for::<Spec>();
        let status = generator.subschema_for::<Status>();
        json_schema!({
            "type": "object",
            "properties": { "spec": spec, "status": status },
        })
    }
}

/// Removes every `required` list. The Apache operator's CRD has none, and Kubernetes' own types
/// inside pod templates would otherwise bring theirs: a JobManager pod template holding only
/// `initContainers` (no `containers`) is valid for the Apache operator, which merges it over the
/// base template, but would fail `PodSpec`'s `required: [containers]`.
#[derive(Clone, Copy, Debug, Default)]
struct RemoveRequired;

impl schemars::transform::Transform for RemoveRequired {
    fn transform(&mut self, schema: &mut Schema) {
        schemars::transform::transform_subschemas(self, schema);
        if let Some(obj) = schema.as_object_mut() {
            obj.remove("required");
        }
    }
}

/// Builds the OpenAPI v3 schema of a root type with the same settings and transforms as
/// kube-derive (inlined subschemas, `nullable` for options, structural-schema rewrites), minus
/// `required` lists (the Apache CRD has none; see `RemoveRequired`).
pub fn root_schema<Spec: JsonSchema, Status: JsonSchema>(description: &str) -> JSONSchemaProps {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(AddNullable::default())
        .with_transform(kube_core::schema::StructuralSchemaRewriter)
        .with_transform(kube_core::schema::OptionalEnum)
        .with_transform(kube_core::schema::OptionalIntOrString)
        .with_transform(RemoveRequired)
        .into_generator();
    let mut value = generator
        .into_root_schema_for::<RootSchema<Spec, Status>>()
        .to_value();
    strip_kubernetes_descriptions(&mut value, false);
    if let Some(obj) = value.as_object_mut() {
        obj.remove("title");
        obj.insert("description".into(), description.into());
    }
    // A schemars schema of our own types always converts; fall back to an open object rather
    // than panic, and let the schema parity test catch it.
    serde_json::from_value(value).unwrap_or_else(|_| JSONSchemaProps {
        type_: Some("object".into()),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    })
}

/// Properties whose schema comes from Kubernetes' own types (k8s-openapi), not ours.
const KUBERNETES_TYPED: &[&str] = &["podTemplate", "resources"];

/// Drops the descriptions inside Kubernetes-typed subtrees (pod templates, resource
/// requirements), keeping the description of the property itself. Kubernetes' docs would make the
/// `FlinkDeployment` CRD about 2 MB, over etcd's 1.5 MiB request limit, so the API server would
/// refuse it; the Apache operator's CRD carries no descriptions at all.
fn strip_kubernetes_descriptions(node: &mut serde_json::Value, inside: bool) {
    let Some(obj) = node.as_object_mut() else {
        return;
    };
    if inside {
        obj.remove("description");
    }
    if let Some(props) = obj.get_mut("properties").and_then(|p| p.as_object_mut()) {
        for (name, prop) in props.iter_mut() {
            if !inside && KUBERNETES_TYPED.contains(&name.as_str()) {
                // entering a Kubernetes type: keep our description of the property itself
                let ours = prop.get("description").cloned();
                strip_kubernetes_descriptions(prop, true);
                if let (Some(d), Some(p)) = (ours, prop.as_object_mut()) {
                    p.insert("description".into(), d);
                }
            } else {
                strip_kubernetes_descriptions(prop, inside);
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.get_mut(key) {
            strip_kubernetes_descriptions(child, inside);
        }
    }
}

/// Builds the CRD of a root type from its facts and schema.
pub fn build_crd(info: &CrdInfo, schema: JSONSchemaProps) -> CustomResourceDefinition {
    let columns = info
        .printer_columns
        .iter()
        .map(|(name, path)| CustomResourceColumnDefinition {
            name: (*name).into(),
            json_path: (*path).into(),
            type_: "string".into(),
            priority: Some(0),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    let scale = info
        .scale
        .map(|(spec, status, selector)| CustomResourceSubresourceScale {
            spec_replicas_path: spec.into(),
            status_replicas_path: status.into(),
            label_selector_path: Some(selector.into()),
        });
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(format!("{}.{GROUP}", info.plural)),
            ..Default::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: GROUP.into(),
            names: CustomResourceDefinitionNames {
                kind: info.kind.into(),
                plural: info.plural.into(),
                singular: Some(info.singular.into()),
                short_names: Some(info.short_names.iter().map(|s| s.to_string()).collect()),
                ..Default::default()
            },
            scope: "Namespaced".into(),
            versions: vec![CustomResourceDefinitionVersion {
                name: VERSION.into(),
                served: true,
                storage: true,
                additional_printer_columns: (!columns.is_empty()).then_some(columns),
                schema: Some(CustomResourceValidation {
                    open_api_v3_schema: Some(schema),
                }),
                subresources: Some(CustomResourceSubresources {
                    status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                    scale,
                }),
                ..Default::default()
            }],
            ..Default::default()
        },
        status: None,
    }
}

/// Defines a namespaced `flink.apache.org/v1beta1` root type with `metadata`, `spec` and an
/// optional `status`, plus the kube traits and its CRD.
macro_rules! custom_resource {
    (
        $(#[$meta:meta])*
        $root:ident {
            spec: $spec:ty,
            status: $status:ty,
            crd_name: $crd_name:literal,
            info: $info:expr $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $root {
            /// Standard object metadata.
            pub metadata: ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
            /// Desired state. Empty (and left out when written) if the object has no spec.
            pub spec: $spec,
            /// Observed state, written by the operator.
            pub status: ::std::option::Option<$status>,
        }

        impl $root {
            /// The facts its CRD is built from.
            pub const CRD_INFO: $crate::resource::CrdInfo = $info;

            /// A new object with a name and a spec.
            pub fn new(name: &str, spec: $spec) -> Self {
                Self {
                    metadata: ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                        name: Some(name.to_string()),
                        ..Default::default()
                    },
                    spec,
                    status: None,
                }
            }

            /// The object's name, or `""` when it has none.
            pub fn name(&self) -> &str {
                self.metadata.name.as_deref().unwrap_or("")
            }
        }

        impl ::serde::Serialize for $root {
            fn serialize<S: ::serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
                use ::serde::ser::SerializeMap;
                let mut map = ser.serialize_map(None)?;
                map.serialize_entry("apiVersion", $crate::resource::API_VERSION)?;
                map.serialize_entry("kind", Self::CRD_INFO.kind)?;
                map.serialize_entry("metadata", &self.metadata)?;
                if self.spec != <$spec>::default() {
                    map.serialize_entry("spec", &self.spec)?;
                }
                if let Some(status) = &self.status {
                    map.serialize_entry("status", status)?;
                }
                map.end()
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $root {
            fn deserialize<D: ::serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
                // apiVersion and kind are not checked here (kube-derive does not either);
                // callers that read mixed documents dispatch on them first.
                #[derive(::serde::Deserialize)]
                struct Wire {
                    #[serde(default)]
                    metadata: ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
                    #[serde(default)]
                    spec: ::std::option::Option<$spec>,
                    #[serde(default)]
                    status: ::std::option::Option<$status>,
                }
                let w = Wire::deserialize(de)?;
                Ok(Self { metadata: w.metadata, spec: w.spec.unwrap_or_default(), status: w.status })
            }
        }

        impl ::kube_core::Resource for $root {
            type DynamicType = ();
            type Scope = ::kube_core::NamespaceResourceScope;

            fn kind(_: &()) -> ::std::borrow::Cow<'_, str> {
                Self::CRD_INFO.kind.into()
            }
            fn group(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::resource::GROUP.into()
            }
            fn version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::resource::VERSION.into()
            }
            fn api_version(_: &()) -> ::std::borrow::Cow<'_, str> {
                $crate::resource::API_VERSION.into()
            }
            fn plural(_: &()) -> ::std::borrow::Cow<'_, str> {
                Self::CRD_INFO.plural.into()
            }
            fn meta(&self) -> &::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &self.metadata
            }
            fn meta_mut(
                &mut self,
            ) -> &mut ::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                &mut self.metadata
            }
        }

        impl ::kube_core::object::HasSpec for $root {
            type Spec = $spec;
            fn spec(&self) -> &$spec {
                &self.spec
            }
            fn spec_mut(&mut self) -> &mut $spec {
                &mut self.spec
            }
        }

        impl ::kube_core::object::HasStatus for $root {
            type Status = $status;
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn status_mut(&mut self) -> &mut Option<$status> {
                &mut self.status
            }
        }

        impl ::kube_core::crd::v1::CustomResourceExt for $root {
            fn crd() -> ::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
                let info = Self::CRD_INFO;
                let schema = $crate::resource::root_schema::<$spec, $status>(info.description);
                $crate::resource::build_crd(&info, schema)
            }
            fn crd_name() -> &'static str {
                $crd_name
            }
            fn api_resource() -> ::kube_core::discovery::ApiResource {
                ::kube_core::discovery::ApiResource::erase::<Self>(&())
            }
            fn shortnames() -> &'static [&'static str] {
                Self::CRD_INFO.short_names
            }
        }
    };
}
pub(crate) use custom_resource;
