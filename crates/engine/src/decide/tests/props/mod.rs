//! Properties of `decide` over random sequences of user edits, Flink behaviour, faults and
//! controller crashes, against a small simulated Flink (checkpoints subsumed as in Flink,
//! savepoint triggers that take a while or fail, REST that does not answer).
//!
//! Invariants (DESIGN.md):
//! - at most one destructive action per pass;
//! - no action ends a job in savepoint/last-state mode unless the persisted status records
//!   where its state is; a stop-with-savepoint's trigger id is persisted before it is sent;
//! - a deploy restores from exactly the recorded path, which exists, and after a stateful stop
//!   it is the stop's savepoint (savepoint mode) or the newest checkpoint (last-state);
//! - an invalid spec never starts anything;
//! - when the world behaves, every sequence converges to the desired spec, running and stable
//!   (or suspended).

use api::{FlinkJobState, JobState, ResourceLifecycleState, UpgradeMode};
use proptest::prelude::*;

mod world;

use super::*;
use crate::action::Action;
use world::World;

#[derive(Clone, Debug)]
enum Op {
    ChangeArgs(u8),
    SetMode(UpgradeMode),
    Suspend,
    Resume,
    Invalidate,
    Fix,
    RestartNonce,
    ManualSavepoint,
    Nothing,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    None,
    CrashAfterStatusWrite,
    CrashBeforeOutcome,
    RestSilent,
    SavepointFails,
    KillJobManager,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4).prop_map(Op::ChangeArgs),
        2 => prop_oneof![
            Just(UpgradeMode::Savepoint),
            Just(UpgradeMode::LastState),
            Just(UpgradeMode::Stateless)
        ]
        .prop_map(Op::SetMode),
        1 => Just(Op::Suspend),
        2 => Just(Op::Resume),
        1 => Just(Op::Invalidate),
        2 => Just(Op::Fix),
        1 => Just(Op::RestartNonce),
        1 => Just(Op::ManualSavepoint),
        6 => Just(Op::Nothing),
    ]
}

fn fault(kill: bool) -> impl Strategy<Value = Fault> {
    let kill_weight = if kill { 1 } else { 0 };
    prop_oneof![
        20 => Just(Fault::None),
        2 => Just(Fault::CrashAfterStatusWrite),
        2 => Just(Fault::CrashBeforeOutcome),
        2 => Just(Fault::RestSilent),
        1 => Just(Fault::SavepointFails),
        kill_weight => Just(Fault::KillJobManager),
    ]
}

fn apply_op(d: &mut FlinkDeployment, op: &Op, nonce: &mut i64) {
    let job = d.spec.job.as_mut().expect("job");
    match op {
        Op::ChangeArgs(n) => job.args = Some(vec!["--rate".into(), n.to_string()]),
        Op::SetMode(m) => job.upgrade_mode = Some(*m),
        Op::Suspend => job.state = Some(JobState::Suspended),
        Op::Resume => job.state = Some(JobState::Running),
        Op::Invalidate => job.parallelism = Some(-1),
        Op::Fix => job.parallelism = Some(1),
        Op::RestartNonce => {
            *nonce += 1;
            d.spec.restart_nonce = Some(*nonce);
        }
        Op::ManualSavepoint => {
            *nonce += 1;
            job.savepoint_trigger_nonce = Some(*nonce);
        }
        Op::Nothing => {}
    }
    d.metadata.generation = Some(d.metadata.generation.unwrap_or(1) + 1);
}

/// One reconcile pass against the world, checking the per-pass invariants.
fn pass(d: &mut FlinkDeployment, world: &mut World, fault: Fault, now: i64, ids: &FreshIds) {
    world.rest_silent = matches!(fault, Fault::RestSilent);
    if matches!(fault, Fault::SavepointFails) {
        world.fail_next_savepoint = true;
    }
    if matches!(fault, Fault::KillJobManager)
        && let Some(c) = world.cluster.as_mut()
    {
        c.jm_failed = true;
    }
    let needs = observe_needs(d, &settings());
    let obs = world.observe(&needs);
    let before_state = d
        .status
        .as_ref()
        .and_then(|s| s.reconciliation_status.as_ref())
        .map(|r| r.state());
    let decision = decide(DecideInput {
        resource: d,
        observation: &obs,
        settings: &settings(),
        now_ms: now,
        fresh: ids,
    });
    check_pass(d, &decision, before_state);
    d.status = Some(decision.status.clone());
    world.persisted(&decision.status);
    if matches!(fault, Fault::CrashAfterStatusWrite) {
        return;
    }
    if world.seq.is_multiple_of(3) {
        world.tick(); // the world moves between observing and acting
    }
    let mut status = decision.status.clone();
    for action in &decision.actions {
        let outcome = world.execute(action, &status);
        status = apply_outcome(&status, action, &outcome, now).0;
    }
    if matches!(fault, Fault::CrashBeforeOutcome) {
        return;
    }
    world.persisted(&status);
    d.status = Some(status);
}

fn check_pass(d: &FlinkDeployment, decision: &Decision, before: Option<api::ReconciliationState>) {
    let destructive = decision
        .actions
        .iter()
        .filter(|a| a.is_destructive())
        .count();
    assert!(destructive <= 1, "{:?}", decision.actions);
    let status = &decision.status;
    let path = status
        .job_status
        .as_ref()
        .and_then(|j| j.upgrade_savepoint_path.clone());
    let deleting = d.metadata.deletion_timestamp.is_some();
    let target = target_spec(status);
    let mode = target.as_ref().map(super::super::upgrade_mode);
    // Deleting the cluster of a running target is a recovery or rollback: it records the
    // newest state there is, which may be none (a job that never completed a checkpoint);
    // the world checks that the redeploy restores at least the newest checkpoint.
    let recovering = target
        .as_ref()
        .is_some_and(|t| !super::super::is_suspended(t));
    for action in &decision.actions {
        match action {
            Action::DeleteCluster if recovering && !deleting => {}
            Action::CancelJob { .. } | Action::DeleteCluster if !deleting => {
                if matches!(mode, Some(UpgradeMode::Savepoint | UpgradeMode::LastState)) {
                    assert!(
                        path.is_some(),
                        "{} in {mode:?} mode without a recorded state path",
                        action.name()
                    );
                }
            }
            Action::StopWithSavepoint(call) | Action::TriggerSavepoint(call) => {
                let recorded = status
                    .job_status
                    .as_ref()
                    .and_then(|j| j.savepoint_info.as_ref())
                    .and_then(|s| s.trigger_id.clone());
                assert_eq!(recorded.as_deref(), Some(call.trigger_id.as_str()));
            }
            _ => {}
        }
    }
    let invalid = !api::validate::deployment(d).is_empty();
    let settled = matches!(before, None | Some(api::ReconciliationState::Deployed));
    if invalid && settled && !deleting {
        assert!(
            decision.actions.is_empty(),
            "invalid spec acted: {:?}",
            decision.actions
        );
    }
}

fn ids(n: u64) -> FreshIds {
    FreshIds {
        job_id: format!("{n:032x}"),
        trigger_id: format!("{:032x}", n + (1 << 40)),
    }
}

fn run_sequence(
    initial: UpgradeMode,
    steps: &[(Op, Fault)],
    converge: bool,
) -> (FlinkDeployment, World) {
    let mut d = app(initial);
    let mut world = World::default();
    let mut nonce = 0;
    let mut n = 0u64;
    for (op, fault) in steps {
        apply_op(&mut d, op, &mut nonce);
        n += 1;
        pass(&mut d, &mut world, *fault, NOW + n as i64 * 1000, &ids(n));
        world.tick();
    }
    if converge {
        let mut nonce_unused = nonce;
        apply_op(&mut d, &Op::Fix, &mut nonce_unused);
        for _ in 0..80 {
            n += 1;
            pass(
                &mut d,
                &mut world,
                Fault::None,
                NOW + n as i64 * 1000,
                &ids(n),
            );
            world.tick();
        }
    }
    (d, world)
}

/// Cases per property: `FP_CASES`, else `PROPTEST_CASES`, else 200 (the suite's usual time).
/// `PROPTEST_RNG_SEED` fixes the seed (it is random otherwise). A long run:
/// `FP_CASES=20000 PROPTEST_RNG_SEED=1 cargo test -p flinkpilot-engine --release props`.
fn config() -> ProptestConfig {
    let cases = ["FP_CASES", "PROPTEST_CASES"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.trim().parse().ok())
        .unwrap_or(200);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn invariants_hold_under_faults_and_crashes(
        initial in prop_oneof![Just(UpgradeMode::Savepoint), Just(UpgradeMode::LastState), Just(UpgradeMode::Stateless)],
        steps in proptest::collection::vec((op(), fault(true)), 1..40),
    ) {
        run_sequence(initial, &steps, false);
    }

    #[test]
    fn converges_to_the_desired_spec_when_the_world_behaves(
        initial in prop_oneof![Just(UpgradeMode::Savepoint), Just(UpgradeMode::LastState), Just(UpgradeMode::Stateless)],
        steps in proptest::collection::vec((op(), fault(false)), 1..30),
    ) {
        let (d, world) = run_sequence(initial, &steps, true);
        let status = d.status.clone().unwrap();
        let target = target_spec(&status).unwrap();
        let diff = api::diff(&target, &d.spec);
        prop_assert_eq!(diff.kind, api::ChangeKind::Ignore, "target {:?} vs desired {:?}", target, d.spec);
        let lifecycle = status.lifecycle_state.unwrap();
        if super::super::is_suspended(&d.spec) {
            prop_assert_eq!(lifecycle, ResourceLifecycleState::Suspended);
            prop_assert!(world.cluster.is_none(), "a suspended job leaves no cluster");
        } else {
            prop_assert_eq!(lifecycle, ResourceLifecycleState::Stable, "status {:?}", status);
            let c = world.cluster.as_ref().unwrap();
            prop_assert_eq!(c.job.state, FlinkJobState::Running);
        }
        prop_assert!(
            status.error.as_deref().is_none_or(|e| e.starts_with(SAVEPOINT_FAILED)),
            "{:?}", status.error
        );
    }
}

/// The simulator itself: a stateless resume, once recorded, drops the suspend savepoint on
/// purpose. Turning the spec stateful again before that deploy happened deploys the new spec
/// with empty state — what the user chose, not lost state (the simulator used to expect the
/// suspend savepoint there).
#[test]
fn a_recorded_stateless_resume_owes_the_suspend_savepoint_nothing() {
    use Fault::CrashAfterStatusWrite as Crash;
    let ok = Fault::None;
    let mut steps = vec![(Op::Nothing, ok); 6];
    steps.push((Op::Suspend, ok)); // stop with a savepoint, recorded
    steps.extend(vec![(Op::Nothing, ok); 8]);
    steps.push((Op::SetMode(UpgradeMode::Stateless), ok));
    steps.push((Op::Resume, Crash)); // stateless deploy recorded, not done
    steps.push((Op::SetMode(UpgradeMode::Savepoint), Crash));
    steps.push((Op::ChangeArgs(2), ok)); // the new spec is deployed instead, empty
    let (d, world) = run_sequence(UpgradeMode::Savepoint, &steps, true);
    let status = d.status.unwrap();
    assert_eq!(
        status.job_status.and_then(|j| j.upgrade_savepoint_path),
        None
    );
    assert_eq!(
        world.cluster.map(|c| c.job.state),
        Some(FlinkJobState::Running)
    );
}
