//! The local resource store: one YAML file per object under
//! `<state-dir>/resources/<namespace>/<plural>/<name>.yaml`, holding the whole object
//! (apiVersion, kind, metadata, spec, status).
//!
//! It keeps the Kubernetes API semantics the engine relies on, so the engine's flow is the same
//! on both backends:
//! - `metadata.generation` starts at 1 and grows only when the spec changes (and when deletion
//!   starts, as the API server does);
//! - `metadata.resourceVersion` grows with every write; a status write can be made conditional
//!   on it (a conflict, like HTTP 409);
//! - deleting an object with finalizers only sets `deletionTimestamp`; the object disappears
//!   when the last finalizer is removed, and no finalizer can be added meanwhile.
//!
//! Every read-modify-write runs under one exclusive store lock (`resources/.lock`, an `flock`
//! shared by threads and processes), so the CLI (spec writes) and the controller (status
//! writes) never lose each other's updates. Every file is replaced atomically (temp file,
//! fsync, rename, fsync of the directory): a crash leaves the old object or the new one, never
//! a torn file.

mod error;
mod events;
mod lock;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use engine::ResourceKey;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube_core::object::{HasSpec, HasStatus};
use kube_core::{NamespaceResourceScope, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use error::StoreError;
pub use events::{Event, EventType, MAX_EVENTS};
pub use lock::ControllerLock;

use crate::fsutil::{self, TEMP_PREFIX};
use crate::layout::{StateDir, is_valid_name};

/// Namespace of objects whose manifest names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Anything the store can hold: the three `flink.apache.org` kinds (`FlinkDeployment`,
/// `FlinkSessionJob`, `FlinkStateSnapshot`).
pub trait StoredObject:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasSpec<Spec: Serialize + Clone>
    + HasStatus<Status: Serialize>
    + Serialize
    + DeserializeOwned
    + Clone
{
}

impl<T> StoredObject for T where
    T: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasSpec<Spec: Serialize + Clone>
        + HasStatus<Status: Serialize>
        + Serialize
        + DeserializeOwned
        + Clone
{
}

/// What [`LocalStore::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The object did not exist and was created.
    Created,
    /// The object existed and its spec, labels or annotations changed.
    Configured,
    /// The object existed exactly like this; nothing was written.
    Unchanged,
}

/// What [`LocalStore::mark_deleted`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum DeleteOutcome<K> {
    /// There was no such object.
    NotFound,
    /// The object had no finalizers and is gone.
    Removed,
    /// The object has finalizers: it now carries a `deletionTimestamp` and stays until they
    /// are removed.
    Terminating(K),
}

/// The file store of `flinkpilot local`. Cheap to clone; all state is on disk.
#[derive(Clone, Debug)]
pub struct LocalStore {
    state: StateDir,
    dir: PathBuf,
}

/// What a transaction does with the object after looking at it.
enum Write {
    Nothing,
    Put,
    Remove,
}

impl LocalStore {
    /// A store in `state` (directories are created on first write).
    pub fn new(state: StateDir) -> Self {
        let dir = state.resources();
        LocalStore { state, dir }
    }

    /// The state dir.
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// Creates the object, or replaces the spec, labels and annotations of the existing one
    /// (keeping its status, uid, finalizers and creation time). A missing namespace means
    /// [`DEFAULT_NAMESPACE`]. `generation` grows only when the spec changed; an identical
    /// object is not written at all. Returns what happened and the stored object.
    pub fn apply<K: StoredObject>(&self, object: K) -> Result<(ApplyOutcome, K), StoreError> {
        let namespace = object
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let name = object.meta().name.clone().unwrap_or_default();
        let key = ResourceKey::new(namespace, name);
        let mut outcome = ApplyOutcome::Unchanged;
        let stored = self.transact::<K>(&key, |current| {
            match current {
                None => {
                    *current = Some(fresh(object, &key));
                    outcome = ApplyOutcome::Created;
                }
                Some(existing) => {
                    let spec_changed = !same_json(existing.spec(), object.spec(), &key)?;
                    let incoming = object.meta();
                    let meta_changed = existing.meta().labels != incoming.labels
                        || existing.meta().annotations != incoming.annotations;
                    if !spec_changed && !meta_changed {
                        return Ok(Write::Nothing);
                    }
                    existing.meta_mut().labels = incoming.labels.clone();
                    existing.meta_mut().annotations = incoming.annotations.clone();
                    if spec_changed {
                        *existing.spec_mut() = object.spec().clone();
                        bump_generation(existing.meta_mut());
                    }
                    outcome = ApplyOutcome::Configured;
                }
            }
            Ok(Write::Put)
        })?;
        Ok((outcome, stored.ok_or_else(|| not_found::<K>(&key))?))
    }

    /// Creates the object unless one of that name exists, which is left exactly as it is
    /// (the operator's own snapshot resources: creating one twice is harmless). Returns
    /// whether it was created.
    pub fn create<K: StoredObject>(&self, object: K) -> Result<bool, StoreError> {
        let namespace = object
            .meta()
            .namespace
            .clone()
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let name = object.meta().name.clone().unwrap_or_default();
        let key = ResourceKey::new(namespace, name);
        let mut created = false;
        self.transact::<K>(&key, |current| {
            if current.is_some() {
                return Ok(Write::Nothing);
            }
            *current = Some(fresh(object, &key));
            created = true;
            Ok(Write::Put)
        })?;
        Ok(created)
    }

    /// The object, or `None` when it does not exist.
    pub fn get<K: StoredObject>(&self, key: &ResourceKey) -> Result<Option<K>, StoreError> {
        let path = self.path::<K>(key)?;
        read_object::<K>(&path)
    }

    /// Every object of kind `K`, in all namespaces, ordered by namespace and name.
    pub fn list<K: StoredObject>(&self) -> Result<Vec<K>, StoreError> {
        let mut out = Vec::new();
        for namespace in list_names(&self.dir, "")? {
            out.extend(self.list_namespace::<K>(&namespace)?);
        }
        Ok(out)
    }

    /// Every object of kind `K` in `namespace`, ordered by name.
    pub fn list_namespace<K: StoredObject>(&self, namespace: &str) -> Result<Vec<K>, StoreError> {
        let dir = self.dir.join(namespace).join(K::plural(&()).as_ref());
        let mut out = Vec::new();
        for name in list_names(&dir, ".yaml")? {
            if let Some(object) = read_object::<K>(&dir.join(format!("{name}.yaml")))? {
                out.push(object);
            }
        }
        Ok(out)
    }

    /// Replaces the status. With `expected_resource_version`, fails with
    /// [`StoreError::Conflict`] when the object was written since that version was read.
    /// The spec and `generation` are untouched.
    pub fn update_status<K: StoredObject>(
        &self,
        key: &ResourceKey,
        expected_resource_version: Option<&str>,
        status: K::Status,
    ) -> Result<K, StoreError> {
        let stored = self.transact::<K>(key, |current| {
            let object = current.as_mut().ok_or_else(|| not_found::<K>(key))?;
            if let Some(expected) = expected_resource_version {
                let actual = object.meta().resource_version.clone().unwrap_or_default();
                if actual != expected {
                    return Err(StoreError::Conflict {
                        kind: K::kind(&()).into_owned(),
                        key: key.clone(),
                        expected: expected.to_string(),
                        actual,
                    });
                }
            }
            *object.status_mut() = Some(status);
            Ok(Write::Put)
        })?;
        stored.ok_or_else(|| not_found::<K>(key))
    }

    /// Changes the status in place under the store lock (never a conflict). Nothing is written
    /// when `change` leaves it as it was.
    pub fn modify_status<K: StoredObject>(
        &self,
        key: &ResourceKey,
        change: impl FnOnce(&mut Option<K::Status>),
    ) -> Result<K, StoreError> {
        let stored = self.transact::<K>(key, |current| {
            let object = current.as_mut().ok_or_else(|| not_found::<K>(key))?;
            let before = to_json(&object.status(), key)?;
            change(object.status_mut());
            if before == to_json(&object.status(), key)? {
                return Ok(Write::Nothing);
            }
            Ok(Write::Put)
        })?;
        stored.ok_or_else(|| not_found::<K>(key))
    }

    /// Replaces the labels (the controller keeps a snapshot's state labels current). Neither
    /// the spec nor `generation` changes; nothing is written when they are the same.
    pub fn set_labels<K: StoredObject>(
        &self,
        key: &ResourceKey,
        labels: std::collections::BTreeMap<String, String>,
    ) -> Result<K, StoreError> {
        let stored = self.transact::<K>(key, |current| {
            let object = current.as_mut().ok_or_else(|| not_found::<K>(key))?;
            let labels = (!labels.is_empty()).then_some(labels);
            if object.meta().labels == labels {
                return Ok(Write::Nothing);
            }
            object.meta_mut().labels = labels;
            Ok(Write::Put)
        })?;
        stored.ok_or_else(|| not_found::<K>(key))
    }

    /// Changes the spec in place (suspend, resume, a savepoint or restart nonce), bumping
    /// `generation` when it changed. Nothing is written when `change` leaves it as it was.
    pub fn patch_spec<K: StoredObject>(
        &self,
        key: &ResourceKey,
        change: impl FnOnce(&mut K::Spec),
    ) -> Result<K, StoreError> {
        let stored = self.transact::<K>(key, |current| {
            let object = current.as_mut().ok_or_else(|| not_found::<K>(key))?;
            let before = to_json(object.spec(), key)?;
            change(object.spec_mut());
            if before == to_json(object.spec(), key)? {
                return Ok(Write::Nothing);
            }
            bump_generation(object.meta_mut());
            Ok(Write::Put)
        })?;
        stored.ok_or_else(|| not_found::<K>(key))
    }

    /// Deletes the object the way the API server does: without finalizers it is removed at
    /// once; with finalizers it gets a `deletionTimestamp` (and a new `generation`) and stays
    /// until the last finalizer is removed with [`LocalStore::remove_finalizer`].
    pub fn mark_deleted<K: StoredObject>(
        &self,
        key: &ResourceKey,
    ) -> Result<DeleteOutcome<K>, StoreError> {
        let mut found = false;
        let stored = self.transact::<K>(key, |current| {
            let Some(object) = current.as_mut() else {
                return Ok(Write::Nothing);
            };
            found = true;
            if object.meta().finalizers.as_ref().is_none_or(Vec::is_empty) {
                return Ok(Write::Remove);
            }
            if object.meta().deletion_timestamp.is_some() {
                return Ok(Write::Nothing);
            }
            object.meta_mut().deletion_timestamp = Some(now());
            bump_generation(object.meta_mut());
            Ok(Write::Put)
        })?;
        Ok(match (found, stored) {
            (false, _) => DeleteOutcome::NotFound,
            (true, None) => DeleteOutcome::Removed,
            (true, Some(object)) => DeleteOutcome::Terminating(object),
        })
    }

    /// Adds `finalizer` (no-op when present). Refused while the object is being deleted.
    pub fn add_finalizer<K: StoredObject>(
        &self,
        key: &ResourceKey,
        finalizer: &str,
    ) -> Result<K, StoreError> {
        let stored = self.transact::<K>(key, |current| {
            let object = current.as_mut().ok_or_else(|| not_found::<K>(key))?;
            let finalizers = object.meta().finalizers.clone().unwrap_or_default();
            if finalizers.iter().any(|f| f == finalizer) {
                return Ok(Write::Nothing);
            }
            if object.meta().deletion_timestamp.is_some() {
                return Err(StoreError::Terminating {
                    kind: K::kind(&()).into_owned(),
                    key: key.clone(),
                });
            }
            object
                .meta_mut()
                .finalizers
                .get_or_insert_with(Vec::new)
                .push(finalizer.to_string());
            Ok(Write::Put)
        })?;
        stored.ok_or_else(|| not_found::<K>(key))
    }

    /// Removes `finalizer`. When the object is being deleted and this was its last finalizer,
    /// the object is removed and `None` returned. A missing object is `Ok(None)`.
    pub fn remove_finalizer<K: StoredObject>(
        &self,
        key: &ResourceKey,
        finalizer: &str,
    ) -> Result<Option<K>, StoreError> {
        self.transact::<K>(key, |current| {
            let Some(object) = current.as_mut() else {
                return Ok(Write::Nothing);
            };
            let mut finalizers = object.meta().finalizers.clone().unwrap_or_default();
            let before = finalizers.len();
            finalizers.retain(|f| f != finalizer);
            if finalizers.len() == before {
                return Ok(Write::Nothing);
            }
            let deleting = object.meta().deletion_timestamp.is_some();
            if deleting && finalizers.is_empty() {
                return Ok(Write::Remove);
            }
            object.meta_mut().finalizers = (!finalizers.is_empty()).then_some(finalizers);
            Ok(Write::Put)
        })
    }

    /// Removes the object regardless of finalizers. Returns whether it existed.
    pub fn remove<K: StoredObject>(&self, key: &ResourceKey) -> Result<bool, StoreError> {
        let mut existed = false;
        self.transact::<K>(key, |current| {
            existed = current.is_some();
            Ok(if existed {
                Write::Remove
            } else {
                Write::Nothing
            })
        })?;
        Ok(existed)
    }

    /// A number that grows with every write to the store, for a cheap "did anything change?"
    /// poll: read it, and list objects only when it differs from the last value seen.
    pub fn revision(&self) -> Result<u64, StoreError> {
        read_revision(&self.revision_path())
    }

    /// Takes the controller lock of this state dir, so two controllers never drive the same
    /// clusters. Held until the returned guard drops (or the process ends).
    pub fn lock_controller(&self) -> Result<ControllerLock, StoreError> {
        ControllerLock::acquire(self.state.root())
    }

    /// The file of an object (it may not exist).
    pub fn path<K: StoredObject>(&self, key: &ResourceKey) -> Result<PathBuf, StoreError> {
        for (what, value) in [("namespace", &key.namespace), ("name", &key.name)] {
            if !is_valid_name(value) {
                return Err(StoreError::InvalidName {
                    kind: K::kind(&()).into_owned(),
                    key: key.to_string(),
                    reason: format!(
                        "{what} {value:?} is not a valid name (lowercase letters, digits, `-` \
                         and `.`, starting and ending with a letter or digit)"
                    ),
                });
            }
        }
        Ok(self
            .dir
            .join(&key.namespace)
            .join(K::plural(&()).as_ref())
            .join(format!("{}.yaml", key.name)))
    }

    fn revision_path(&self) -> PathBuf {
        self.dir.join(".revision")
    }

    /// Read-modify-write of one object under the store lock. `f` sees the current object (or
    /// `None`) and says what to do; a `Put` gets the next resourceVersion. Returns the object
    /// as stored afterwards (`None` when absent or removed).
    fn transact<K: StoredObject>(
        &self,
        key: &ResourceKey,
        f: impl FnOnce(&mut Option<K>) -> Result<Write, StoreError>,
    ) -> Result<Option<K>, StoreError> {
        let path = self.path::<K>(key)?;
        let _lock = lock::StoreLock::acquire(&self.dir)?;
        let mut current = read_object::<K>(&path)?;
        let previous_version = current
            .as_ref()
            .and_then(|o| o.meta().resource_version.as_deref()?.parse::<u64>().ok())
            .unwrap_or(0);
        match f(&mut current)? {
            Write::Nothing => Ok(current),
            Write::Remove => {
                fsutil::remove_durably(&path).map_err(StoreError::io("remove", &path))?;
                // Events belong to this object; a new object of the same name starts afresh.
                let events = self.events_path::<K>(key)?;
                fsutil::remove_durably(&events).map_err(StoreError::io("remove", &events))?;
                let revision = read_revision(&self.revision_path())? + 1;
                self.write_revision(revision)?;
                Ok(None)
            }
            Write::Put => {
                let Some(object) = current.as_mut() else {
                    return Ok(None);
                };
                // Normally the store-wide counter; the max guards against a crash between the
                // object write and the counter write, which would otherwise reuse a version.
                let revision = read_revision(&self.revision_path())?.max(previous_version) + 1;
                object.meta_mut().resource_version = Some(revision.to_string());
                let yaml =
                    serde_saphyr::to_string(&*object).map_err(|e| StoreError::Serialize {
                        kind: K::kind(&()).into_owned(),
                        key: key.clone(),
                        message: e.to_string(),
                    })?;
                fsutil::write_atomic(&path, yaml.as_bytes())
                    .map_err(StoreError::io("write", &path))?;
                // After the object: a poller that sees the new revision also sees the object.
                self.write_revision(revision)?;
                Ok(current)
            }
        }
    }

    fn write_revision(&self, revision: u64) -> Result<(), StoreError> {
        let path = self.revision_path();
        fsutil::write_atomic(&path, format!("{revision}\n").as_bytes())
            .map_err(StoreError::io("write", &path))
    }
}

/// A new object as the API server stores it: name and namespace from `key`, labels,
/// annotations and finalizers from the request, a fresh uid, creation time and generation 1,
/// no status.
fn fresh<K: StoredObject>(mut object: K, key: &ResourceKey) -> K {
    let incoming = object.meta().clone();
    let meta = object.meta_mut();
    *meta = Default::default();
    meta.name = Some(key.name.clone());
    meta.namespace = Some(key.namespace.clone());
    meta.labels = incoming.labels;
    meta.annotations = incoming.annotations;
    meta.finalizers = incoming.finalizers.filter(|f| !f.is_empty());
    meta.uid = Some(new_uid());
    meta.creation_timestamp = Some(now());
    meta.generation = Some(1);
    *object.status_mut() = None;
    object
}

fn read_object<K: StoredObject>(path: &Path) -> Result<Option<K>, StoreError> {
    let Some(bytes) = fsutil::read_optional(path).map_err(StoreError::io("read", path))? else {
        return Ok(None);
    };
    let corrupt = |message: String| StoreError::Corrupt {
        kind: K::kind(&()).into_owned(),
        path: path.to_path_buf(),
        message,
    };
    let text = String::from_utf8(bytes).map_err(|e| corrupt(e.to_string()))?;
    serde_saphyr::from_str::<K>(&text)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

fn read_revision(path: &Path) -> Result<u64, StoreError> {
    let bytes = fsutil::read_optional(path).map_err(StoreError::io("read", path))?;
    Ok(bytes
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
        .unwrap_or(0))
}

/// Sorted names in `dir` ending in `suffix` (the suffix removed), skipping hidden and
/// temporary files. A missing directory has none.
fn list_names(dir: &Path, suffix: &str) -> Result<Vec<String>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io("list", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(StoreError::io("list", dir))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.starts_with('.') || file_name.starts_with(TEMP_PREFIX) {
            continue;
        }
        if let Some(name) = file_name.strip_suffix(suffix).filter(|n| is_valid_name(n)) {
            names.push(name.to_string());
        }
    }
    names.sort();
    Ok(names)
}

fn not_found<K: StoredObject>(key: &ResourceKey) -> StoreError {
    StoreError::NotFound {
        kind: K::kind(&()).into_owned(),
        key: key.clone(),
    }
}

fn to_json<T: Serialize>(value: &T, key: &ResourceKey) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::Serialize {
        kind: String::new(),
        key: key.clone(),
        message: e.to_string(),
    })
}

/// Specs are compared as JSON so that field order or representation never counts as a change.
fn same_json<T: Serialize>(a: &T, b: &T, key: &ResourceKey) -> Result<bool, StoreError> {
    Ok(to_json(a, key)? == to_json(b, key)?)
}

fn bump_generation(meta: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    meta.generation = Some(meta.generation.unwrap_or(0) + 1);
}

/// Now, in whole seconds: the precision Kubernetes timestamps are written with, so the object
/// returned by a write equals the one read back.
fn now() -> Time {
    let now = k8s_openapi::jiff::Timestamp::now();
    Time(k8s_openapi::jiff::Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// A random RFC 4122 version-4 UUID, as the API server assigns to every object.
fn new_uid() -> String {
    use std::hash::{BuildHasher, RandomState};
    // Each RandomState has fresh random keys; two 64-bit hashes give 128 random bits.
    let high = RandomState::new().hash_one(std::process::id());
    let low = RandomState::new().hash_one(std::time::SystemTime::now());
    let bytes =
        (u128::from(high) << 64 | u128::from(low)) & !(0xF000u128 << 64) | (0x4000u128 << 64);
    let bytes = bytes & !(0xC000u128 << 48) | (0x8000u128 << 48);
    let hex = format!("{bytes:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}
