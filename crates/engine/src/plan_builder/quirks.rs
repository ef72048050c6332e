//! Differences between Flink versions in the configuration the engine renders, in one place:
//! which keys a version reads for the state directories and the restore path, and which keys
//! written for Flink 1.x a Flink 2.x cluster no longer reads.

use std::collections::BTreeMap;

use api::FlinkVersion;

/// Keys Flink 2.0 removed, with the key that replaced each. A manifest written for 1.x (the
/// Apache operator's examples use `state.savepoints.dir`) keeps its meaning on 2.x when these are
/// translated. Verified against the option classes of the 2.3.0 distribution.
const RENAMED_IN_2_0: &[(&str, &str)] = &[
    ("state.checkpoints.dir", "execution.checkpointing.dir"),
    (
        "state.savepoints.dir",
        "execution.checkpointing.savepoint-dir",
    ),
    (
        "state.checkpoints.num-retained",
        "execution.checkpointing.num-retained",
    ),
    (
        "state.backend.incremental",
        "execution.checkpointing.incremental",
    ),
    (
        "state.checkpoint-storage",
        "execution.checkpointing.storage",
    ),
    (
        "state.backend.local-recovery",
        "execution.state-recovery.from-local",
    ),
    ("state.backend", "state.backend.type"),
    ("execution.savepoint.path", "execution.state-recovery.path"),
    (
        "execution.savepoint.ignore-unclaimed-state",
        "execution.state-recovery.ignore-unclaimed-state",
    ),
    (
        "execution.savepoint-restore-mode",
        "execution.state-recovery.claim-mode",
    ),
];

fn is_2x(version: FlinkVersion) -> bool {
    version.major_minor().0 >= 2
}

/// Rewrites keys a Flink 2.x cluster no longer reads to their new names. A key the user wrote
/// under its new name wins over the old spelling. Other versions are left alone.
pub fn translate_deprecated(version: FlinkVersion, config: &mut BTreeMap<String, String>) {
    if !is_2x(version) {
        return;
    }
    for (old, new) in RENAMED_IN_2_0 {
        if let Some(value) = config.remove(*old) {
            config.entry((*new).to_string()).or_insert(value);
        }
    }
}

/// Keys under which `version` reads the checkpoint directory, preferred first.
pub fn checkpoint_dir_keys(version: FlinkVersion) -> &'static [&'static str] {
    if is_2x(version) {
        &["execution.checkpointing.dir"]
    } else if version.is_at_least(FlinkVersion::v1_20) {
        &["execution.checkpointing.dir", "state.checkpoints.dir"]
    } else {
        &["state.checkpoints.dir"]
    }
}

/// Keys under which `version` reads the default savepoint directory, preferred first.
pub fn savepoint_dir_keys(version: FlinkVersion) -> &'static [&'static str] {
    if is_2x(version) {
        &["execution.checkpointing.savepoint-dir"]
    } else if version.is_at_least(FlinkVersion::v1_20) {
        &[
            "execution.checkpointing.savepoint-dir",
            "state.savepoints.dir",
        ]
    } else {
        &["state.savepoints.dir"]
    }
}

/// `(path key, ignore-unclaimed-state key)` of the state a job starts from.
pub fn restore_keys(version: FlinkVersion) -> (&'static str, &'static str) {
    if is_2x(version) {
        (
            "execution.state-recovery.path",
            "execution.state-recovery.ignore-unclaimed-state",
        )
    } else {
        (
            "execution.savepoint.path",
            "execution.savepoint.ignore-unclaimed-state",
        )
    }
}

/// The first of `keys` set to a non-empty value.
pub fn first_set<'a>(config: &'a BTreeMap<String, String>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| config.get(*k))
        .map(String::as_str)
        .filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flink_2_gets_the_new_names_of_removed_keys() {
        let mut c = config(&[
            ("state.savepoints.dir", "file:///sp"),
            ("state.checkpoints.dir", "file:///cp"),
            ("state.backend", "rocksdb"),
        ]);
        translate_deprecated(FlinkVersion::v2_3, &mut c);
        assert_eq!(
            c,
            config(&[
                ("execution.checkpointing.savepoint-dir", "file:///sp"),
                ("execution.checkpointing.dir", "file:///cp"),
                ("state.backend.type", "rocksdb"),
            ])
        );
    }

    #[test]
    fn an_explicit_new_key_wins_over_the_old_spelling() {
        let mut c = config(&[
            ("state.checkpoints.dir", "file:///old"),
            ("execution.checkpointing.dir", "file:///new"),
        ]);
        translate_deprecated(FlinkVersion::v2_0, &mut c);
        assert_eq!(c, config(&[("execution.checkpointing.dir", "file:///new")]));
    }

    #[test]
    fn flink_1_keeps_its_keys() {
        let original = config(&[("state.savepoints.dir", "file:///sp")]);
        let mut c = original.clone();
        translate_deprecated(FlinkVersion::v1_20, &mut c);
        assert_eq!(c, original);
    }

    #[test]
    fn restore_keys_differ_between_1_x_and_2_x() {
        assert_eq!(
            restore_keys(FlinkVersion::v1_20).0,
            "execution.savepoint.path"
        );
        assert_eq!(
            restore_keys(FlinkVersion::v2_3).0,
            "execution.state-recovery.path"
        );
        assert_eq!(
            restore_keys(FlinkVersion::v1_18).1,
            "execution.savepoint.ignore-unclaimed-state"
        );
    }

    #[test]
    fn state_dir_keys_follow_the_version() {
        assert_eq!(
            checkpoint_dir_keys(FlinkVersion::v1_19),
            &["state.checkpoints.dir"]
        );
        assert_eq!(
            savepoint_dir_keys(FlinkVersion::v1_20),
            &[
                "execution.checkpointing.savepoint-dir",
                "state.savepoints.dir"
            ]
        );
        assert_eq!(
            checkpoint_dir_keys(FlinkVersion::v2_3),
            &["execution.checkpointing.dir"]
        );
    }
}
