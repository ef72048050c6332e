//! The in-memory store: objects per type, the global resourceVersion counter, uid and owner
//! indexes, and a bounded per-type history of watch events. Everything sits behind one lock
//! (held briefly, never across an await); watchers are woken per type.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

use super::error::ApiError;
use super::meta::{IdGen, meta_str, owner_uids};
use super::registry::{Registry, ResourceType};
use super::selector::{FieldSelector, LabelSelector};

/// A stored object. Writes replace the `Arc`, so readers never see a half-written object.
pub type Obj = Arc<Value>;

/// Identifies one object: type index, namespace (`""` when cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    pub ty: usize,
    pub ns: String,
    pub name: String,
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change in the history.
#[derive(Debug)]
pub struct StoredEvent {
    pub rv: u64,
    pub kind: EventType,
    pub object: Obj,
    /// The previous version, for MODIFIED (label-selector watches turn a change of labels into
    /// ADDED/DELETED like the real watch cache).
    pub prev: Option<Obj>,
}

/// Objects and history of one type.
#[derive(Debug)]
pub struct Table {
    pub objects: BTreeMap<(String, String), Obj>,
    pub events: VecDeque<Arc<StoredEvent>>,
    /// Events with a resourceVersion ≤ this have been dropped: a watch from an older version
    /// gets 410 Gone.
    pub compacted_through: u64,
    pub notify: watch::Sender<u64>,
}

impl Table {
    fn new() -> Self {
        Self {
            objects: BTreeMap::new(),
            events: VecDeque::new(),
            compacted_through: 0,
            notify: watch::channel(0).0,
        }
    }

    /// Events newer than `rv`, in order.
    pub fn events_after(&self, rv: u64) -> Vec<Arc<StoredEvent>> {
        let start = self.events.partition_point(|e| e.rv <= rv);
        self.events.range(start..).cloned().collect()
    }
}

/// A list snapshot kept for `continue` tokens, so every page comes from one consistent view.
#[derive(Debug)]
struct Snapshot {
    items: Arc<Vec<Obj>>,
    rv: u64,
}

const MAX_SNAPSHOTS: usize = 64;

/// The whole server state.
#[derive(Debug)]
pub struct State {
    pub registry: Registry,
    pub types: Vec<Arc<ResourceType>>,
    pub tables: Vec<Table>,
    pub rv: u64,
    pub uids: HashMap<String, ObjKey>,
    /// owner uid → objects naming it in `ownerReferences`.
    pub dependents: HashMap<String, BTreeSet<ObjKey>>,
    pub ids: IdGen,
    history: usize,
    snapshots: HashMap<String, Snapshot>,
    snapshot_order: VecDeque<String>,
    /// Wakes anyone waiting for any change (test helpers).
    pub changed: watch::Sender<u64>,
}

/// Filters of a list or watch.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub namespace: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    /// Whether `obj` passes the namespace, label and field filters.
    pub fn matches(&self, obj: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && meta_str(obj, "namespace").unwrap_or_default() != ns
        {
            return false;
        }
        self.labels.matches(&obj["metadata"]["labels"]) && self.fields.matches(obj)
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct ListPage {
    pub items: Vec<Obj>,
    pub rv: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

impl State {
    /// An empty store serving `registry`, keeping `history` watch events per type.
    pub fn new(registry: Registry, history: usize) -> Self {
        let types: Vec<Arc<ResourceType>> =
            registry.types().iter().cloned().map(Arc::new).collect();
        let tables = types.iter().map(|_| Table::new()).collect();
        Self {
            registry,
            types,
            tables,
            rv: 1,
            uids: HashMap::new(),
            dependents: HashMap::new(),
            ids: IdGen::new(),
            history: history.max(1),
            snapshots: HashMap::new(),
            snapshot_order: VecDeque::new(),
            changed: watch::channel(1).0,
        }
    }

    /// Adds or redefines a type; returns its index.
    pub fn register(&mut self, rt: ResourceType) -> usize {
        let idx = self.registry.register(rt);
        let defined = self.registry.get(idx).cloned();
        if let Some(defined) = defined {
            if idx < self.types.len() {
                self.types[idx] = Arc::new(defined);
            } else {
                self.types.push(Arc::new(defined));
                self.tables.push(Table::new());
            }
        }
        idx
    }

    /// The type at `ty`.
    pub fn rt(&self, ty: usize) -> Arc<ResourceType> {
        Arc::clone(&self.types[ty])
    }

    /// Resolves `group/version/plural` to a served type.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<usize> {
        self.registry.find(group, version, plural)
    }

    /// The next resourceVersion.
    pub fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    /// The object, if present.
    pub fn lookup(&self, key: &ObjKey) -> Option<Obj> {
        self.tables[key.ty]
            .objects
            .get(&(key.ns.clone(), key.name.clone()))
            .cloned()
    }

    /// The object, or 404.
    pub fn get(&self, key: &ObjKey) -> Result<Obj, ApiError> {
        self.lookup(key)
            .ok_or_else(|| ApiError::not_found(&self.types[key.ty], &key.name))
    }

    /// Stores a new version of an object, keeping the uid and owner indexes current, and
    /// records the event.
    pub fn put(&mut self, key: &ObjKey, obj: Obj, kind: EventType, prev: Option<Obj>) {
        if let Some(old) = &prev {
            self.unindex(key, old);
        }
        self.index(key, &obj);
        self.tables[key.ty]
            .objects
            .insert((key.ns.clone(), key.name.clone()), Arc::clone(&obj));
        self.emit(key.ty, kind, obj, prev);
    }

    /// Removes an object (its final version `last` already carries the deletion's
    /// resourceVersion) and records DELETED.
    pub fn take_out(&mut self, key: &ObjKey, last: Obj) {
        if let Some(old) = self.tables[key.ty]
            .objects
            .remove(&(key.ns.clone(), key.name.clone()))
        {
            self.unindex(key, &old);
        }
        self.emit(key.ty, EventType::Deleted, last, None);
    }

    fn index(&mut self, key: &ObjKey, obj: &Value) {
        if let Some(uid) = meta_str(obj, "uid") {
            self.uids.insert(uid.to_string(), key.clone());
        }
        for (owner, _) in owner_uids(obj) {
            self.dependents
                .entry(owner)
                .or_default()
                .insert(key.clone());
        }
    }

    fn unindex(&mut self, key: &ObjKey, obj: &Value) {
        if let Some(uid) = meta_str(obj, "uid") {
            self.uids.remove(uid);
        }
        for (owner, _) in owner_uids(obj) {
            if let Some(set) = self.dependents.get_mut(&owner) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&owner);
                }
            }
        }
    }

    fn emit(&mut self, ty: usize, kind: EventType, object: Obj, prev: Option<Obj>) {
        let rv = meta_str(&object, "resourceVersion")
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.rv);
        let table = &mut self.tables[ty];
        table.events.push_back(Arc::new(StoredEvent {
            rv,
            kind,
            object,
            prev,
        }));
        while table.events.len() > self.history {
            if let Some(old) = table.events.pop_front() {
                table.compacted_through = old.rv;
            }
        }
        table.notify.send_replace(rv);
        self.changed.send_replace(rv);
    }

    /// Drops all watch history: later watches from any version older than now get 410.
    pub fn compact(&mut self) {
        let rv = self.rv;
        for table in &mut self.tables {
            table.events.clear();
            table.compacted_through = rv;
        }
    }

    /// Objects of a type passing `filter` (namespace uses a range scan).
    pub fn select(&self, ty: usize, filter: &Filter) -> Vec<Obj> {
        let table = &self.tables[ty];
        let iter: Box<dyn Iterator<Item = &Obj>> = match &filter.namespace {
            Some(ns) => Box::new(
                table
                    .objects
                    .range((ns.clone(), String::new())..)
                    .take_while(move |((n, _), _)| n == ns)
                    .map(|(_, o)| o),
            ),
            None => Box::new(table.objects.values()),
        };
        iter.filter(|o| filter.matches(o)).cloned().collect()
    }

    /// A list, honouring `limit`/`continue` with a consistent snapshot, and the
    /// `resourceVersion`/`resourceVersionMatch` rules (the fake serves only the latest state).
    pub fn list(
        &mut self,
        ty: usize,
        filter: &Filter,
        limit: Option<usize>,
        continue_token: Option<&str>,
        min_rv: Option<(u64, bool)>,
    ) -> Result<ListPage, ApiError> {
        if let Some(token) = continue_token {
            return self.continue_list(token, limit);
        }
        if let Some((rv, exact)) = min_rv {
            if rv > self.rv {
                return Err(ApiError::new(
                    504,
                    "Timeout",
                    format!("Too large resource version: {rv}, current: {}", self.rv),
                ));
            }
            if exact && rv != self.rv {
                return Err(ApiError::expired(format!(
                    "resourceVersion {rv} is too old: the fake API server serves exact lists only at the current version {}",
                    self.rv
                )));
            }
        }
        let items = self.select(ty, filter);
        let rv = self.rv;
        Ok(self.page(Arc::new(items), rv, 0, limit))
    }

    fn page(
        &mut self,
        items: Arc<Vec<Obj>>,
        rv: u64,
        offset: usize,
        limit: Option<usize>,
    ) -> ListPage {
        let end = match limit {
            Some(l) if l > 0 => (offset + l).min(items.len()),
            _ => items.len(),
        };
        let page: Vec<Obj> = items[offset.min(end)..end].to_vec();
        if end >= items.len() {
            return ListPage {
                items: page,
                rv,
                continue_token: None,
                remaining: None,
            };
        }
        let id = format!("{rv}-{}", self.ids.name_suffix());
        let remaining = items.len() - end;
        self.snapshots.insert(id.clone(), Snapshot { items, rv });
        self.snapshot_order.push_back(id.clone());
        while self.snapshot_order.len() > MAX_SNAPSHOTS {
            if let Some(old) = self.snapshot_order.pop_front() {
                self.snapshots.remove(&old);
            }
        }
        ListPage {
            items: page,
            rv,
            continue_token: Some(format!("{id}/{end}")),
            remaining: Some(remaining),
        }
    }

    fn continue_list(&mut self, token: &str, limit: Option<usize>) -> Result<ListPage, ApiError> {
        let expired = || {
            ApiError::expired(
                "The provided continue parameter is too old to display a consistent list result. \
                 You can start a new list without the continue parameter.",
            )
        };
        let (id, offset) = token.rsplit_once('/').ok_or_else(expired)?;
        let offset: usize = offset.parse().map_err(|_| expired())?;
        let snap = self.snapshots.get(id).ok_or_else(expired)?;
        let (items, rv) = (Arc::clone(&snap.items), snap.rv);
        Ok(self.page(items, rv, offset, limit))
    }

    /// True when a namespaced object of any type exists in `ns`.
    pub fn namespace_has_objects(&self, ns: &str) -> bool {
        self.types.iter().zip(&self.tables).any(|(rt, table)| {
            rt.namespaced
                && table
                    .objects
                    .range((ns.to_string(), String::new())..)
                    .next()
                    .is_some_and(|((n, _), _)| n == ns)
        })
    }

    /// Keys of all objects in namespace `ns`.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjKey> {
        let mut keys = Vec::new();
        for (ty, (rt, table)) in self.types.iter().zip(&self.tables).enumerate() {
            if !rt.namespaced {
                continue;
            }
            for ((n, name), _) in table.objects.range((ns.to_string(), String::new())..) {
                if n != ns {
                    break;
                }
                keys.push(ObjKey {
                    ty,
                    ns: n.clone(),
                    name: name.clone(),
                });
            }
        }
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn state_with(n: usize) -> (State, usize) {
        let mut st = State::new(Registry::builtin(), 3);
        let ty = st.find("", "v1", "configmaps").unwrap();
        for i in 0..n {
            let rv = st.next_rv();
            let key = ObjKey {
                ty,
                ns: "ns".into(),
                name: format!("cm{i}"),
            };
            let obj = json!({"metadata": {"name": key.name, "namespace": "ns", "uid": format!("u{i}"),
                                          "resourceVersion": rv.to_string()}});
            st.put(&key, Arc::new(obj), EventType::Added, None);
        }
        (st, ty)
    }

    #[test]
    fn history_is_bounded_and_remembers_what_it_dropped() {
        let (st, ty) = state_with(5);
        let table = &st.tables[ty];
        assert_eq!(table.events.len(), 3);
        assert_eq!(table.compacted_through, 3);
        assert_eq!(table.events_after(4).len(), 2);
    }

    #[test]
    fn paged_lists_come_from_one_snapshot() {
        let (mut st, ty) = state_with(5);
        let filter = Filter {
            namespace: Some("ns".into()),
            ..Filter::default()
        };
        let first = st.list(ty, &filter, Some(2), None, None).unwrap();
        assert_eq!(first.items.len(), 2);
        assert_eq!(first.remaining, Some(3));
        // a write between pages does not leak into the snapshot
        let key = ObjKey {
            ty,
            ns: "ns".into(),
            name: "zz".into(),
        };
        st.put(
            &key,
            Arc::new(json!({"metadata": {"name": "zz", "namespace": "ns"}})),
            EventType::Added,
            None,
        );
        let token = first.continue_token.unwrap();
        let second = st.list(ty, &filter, Some(10), Some(&token), None).unwrap();
        assert_eq!(second.items.len(), 3);
        assert_eq!(second.rv, first.rv);
        assert!(second.continue_token.is_none());
        assert!(st.list(ty, &filter, None, Some("nope/1"), None).is_err());
    }
}
