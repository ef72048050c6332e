//! The `flink.apache.org/v1beta1` resources (`FlinkDeployment`, `FlinkSessionJob`,
//! `FlinkStateSnapshot`), their defaults, validation and spec diff. No I/O.
