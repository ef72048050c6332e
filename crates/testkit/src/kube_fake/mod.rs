//! A CRUD fake of the Kubernetes API server, for tests only.
//!
//! [`FakeApiServer::start`] serves plain HTTP on a free 127.0.0.1 port; [`FakeApiServer::client`]
//! is a real `kube::Client` for it, so the real kube-rs client and `kube::runtime` (watcher,
//! reflector, Controller, server-side apply, status subresource, leases) run unchanged against it.
//!
//! # Semantics kept
//! - Discovery (`/version`, `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`, aggregated v2) from a
//!   data table of types ([`registry::builtin_types`]); applying a `CustomResourceDefinition`
//!   registers its types, deleting it removes them and their objects.
//! - `metadata.resourceVersion` from one global counter; `uid`, `creationTimestamp`,
//!   `generateName`; `generation` counts changes outside `metadata` (and outside `status` for
//!   types with the status subresource) and the start of deletion.
//! - create (409 AlreadyExists), get, list (label selectors `=`/`==`/`!=`/`in`/`notin`/exists,
//!   field selectors on `metadata.name`, `metadata.namespace` and per-type fields, `limit` and
//!   `continue` from a consistent snapshot), update with the `resourceVersion` precondition
//!   (409 Conflict), merge / JSON / strategic / apply patches, delete with `preconditions` and
//!   `propagationPolicy`, deletecollection, `dryRun=All`.
//! - Watch: ADDED/MODIFIED/DELETED/BOOKMARK lines from a resourceVersion, namespaced or across
//!   namespaces, `allowWatchBookmarks`, `sendInitialEvents` (streaming lists), `timeoutSeconds`;
//!   label-selector watches see an object leaving or entering the selection as DELETED/ADDED;
//!   a resume from before the bounded history gets an ERROR event with 410 (`Expired`).
//! - Writes that change nothing are no-ops: no new resourceVersion and no event.
//! - Status subresource: `/status` writes change only `.status`; main-resource writes (and
//!   create) ignore `.status`. Scale subresource maps `Scale.spec.replicas` onto the type's
//!   `specReplicasPath`.
//! - Finalizers: deleting an object with finalizers sets `deletionTimestamp` (+
//!   `deletionGracePeriodSeconds: 0`) and emits MODIFIED; it is removed (DELETED) when its last
//!   finalizer goes; new finalizers are refused (422) once deletion started.
//! - Owner references: see the `delete` module for garbage collection; `blockOwnerDeletion` holds a
//!   foreground owner.
//! - `managedFields` on every write, server-side apply with conflicts and `force`: see
//!   the `managed` module.
//! - Errors are `kind: Status` objects with the real reasons and codes.
//! - Optional bearer-token authentication ([`FakeApiServerBuilder::bearer_token`]): 401
//!   without the token.
//! - The service proxy (`services/<[scheme:]name[:port]>/proxy/…`) forwarding to a target the
//!   test registers per Service ([`FakeApiServer::service_proxy`]): 404 for an unknown Service,
//!   503 for an undeclared port, no registered endpoints or an unreachable backend; the
//!   caller's `Authorization` header is not forwarded.
//!
//! # Simplifications (deliberate)
//! - Lists are atomic for field ownership (except `metadata.finalizers`, a set): two managers
//!   cannot own different items of one list. A `null` in an applied configuration is ignored.
//!   Client-sent `managedFields` are ignored (the server always computes them). Fields a manager
//!   stops applying are removed and emptied parent maps pruned.
//! - Strategic merge patch is applied as a JSON merge patch (lists replaced, not merged by key);
//!   patches using strategic directives (`$patch`, `$setElementOrder`, …) are refused with 400.
//! - No schemas: objects are not validated or pruned beyond names, labels and the metadata rules
//!   above. Namespaces need not exist (but a terminating namespace refuses new objects).
//! - Garbage collection and namespace clean-up happen synchronously in the deleting request
//!   (foreground deletion still waits for blocking dependents' finalizers); an object created
//!   with owner references to absent uids is collected right after its create succeeds (the
//!   response still shows it). Owners are matched by uid only.
//! - Lists serve the latest state only: `resourceVersionMatch=Exact` with an older version
//!   answers 410; a version newer than the current one answers 504 like the real server.
//! - No controllers run: Deployments get no pods or status unless a test writes them.
//! - Server-side apply on the scale subresource is refused; `Scale` is read and written with
//!   GET/PUT/merge/JSON patch.
//!
//! Test helpers on [`FakeApiServer`]: direct store reads ([`FakeApiServer::get`],
//! [`FakeApiServer::list`]), seeding, the request log ([`RequestRecord`]), fault injection
//! ([`Fault`]), watch disconnects and history compaction, and [`FakeApiServer::wait_for`].

mod apply;
mod delete;
mod discovery;
mod error;
mod fieldset;
mod http;
mod listing;
mod managed;
mod meta;
mod observe;
mod patch;
mod proxy;
pub mod registry;
mod route;
mod scale;
mod selector;
mod server;
mod store;
mod watch;
mod write;

pub use error::ApiError;
pub use observe::{Fault, RequestRecord, Verb};
pub use proxy::ServiceProxy;
pub use registry::{ResourceType, ScaleSpec};
pub use server::{FakeApiError, FakeApiServer, FakeApiServerBuilder};
