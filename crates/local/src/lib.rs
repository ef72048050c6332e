//! The local process backend: Flink JobManagers and TaskManagers as supervised local
//! processes, and a file store for local resources.
