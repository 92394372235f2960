//! The orchestration over a fake fleet: which steps run in which order, what is on disk after
//! each, what Ctrl-C and an error leave behind. No process starts; each test takes milliseconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use super::fake::FakeFleet;
use super::fleet::{Context, Fleet, Known, Step, orchestrate, steps};
use super::progress::Progress;
use super::{finalize, header};
use crate::plan::{CpuPlacement, SuiteName, SuitePlan, select_variants};
use crate::results::{self, Fault, Results, ResultsWriter, Scenario};
use crate::scenario::Sink;

fn plan(variants: &[&str]) -> SuitePlan {
    let mut plan = SuitePlan::new(SuiteName::Default);
    let wanted: Vec<String> = variants.iter().map(|v| (*v).to_owned()).collect();
    plan.variants = select_variants(&plan.variants, &wanted).unwrap();
    plan
}

fn writer(plan: &SuitePlan) -> ResultsWriter {
    let dir = std::env::temp_dir().join(format!(
        "authbench-orchestration-{}-{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    ));
    let results = header::new_results(
        "default",
        None,
        plan,
        header::placement_of(&CpuPlacement::default()),
        Duration::from_secs(10),
    );
    ResultsWriter::new(dir, results).unwrap()
}

/// Runs `steps` over `fleet` as `run` does and finalizes; returns what is on disk after.
fn drive(
    steps: &[Step],
    fleet: &mut dyn Fleet,
    writer: ResultsWriter,
    cancel: &AtomicBool,
) -> (anyhow::Result<()>, Results) {
    let mut writer = writer;
    let path = writer.path();
    let progress = Progress::new(true, Duration::from_secs(1));
    let outcome = orchestrate(steps, fleet, &mut Context { writer: &mut writer, progress: &progress, cancel });
    let finished = finalize(writer, cancel, outcome);
    (finished.map(|_| ()), results::load(&path).unwrap())
}

/// Reads results.json at the start of every step, to see what the steps before it left there.
struct Watching {
    fake: FakeFleet,
    path: PathBuf,
    /// Per step: (run records, revocation records) on disk when it began.
    on_disk: Vec<(usize, usize)>,
}

impl Fleet for Watching {
    fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()> {
        let r = results::load(&self.path).unwrap();
        self.on_disk.push((r.runs.len(), r.revocation.len()));
        self.fake.measure(step, known, sink)
    }
}

#[test]
fn a_plan_runs_in_order_calibration_then_each_variant_then_the_faults_and_points() {
    let plan = plan(&["session", "jwt"]);
    let steps = steps(&plan, true);
    let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
    assert_eq!(
        names[..7],
        [
            "calibration: engine and wrk against baseline",
            "steady and cost in rounds: session, jwt",
            "session: sweep",
            "session: login flows",
            "session: stopping its servers",
            "session: revocation",
            "jwt: sweep",
        ]
    );
    // session's three faults, jwt's hang (no Redis on its request path).
    let outages: Vec<&Step> = steps.iter().filter(|s| matches!(s, Step::Outage(..))).collect();
    assert_eq!(outages.len(), 4, "{outages:?}");
    assert!(steps.contains(&Step::Outage("jwt".into(), Fault::Hang)));
    assert!(!steps.contains(&Step::Outage("jwt".into(), Fault::KillEmpty)));
    // Points come after every variant's own steps, scale last.
    let first_point = steps.iter().position(|s| matches!(s, Step::Rtt)).unwrap();
    assert!(steps.iter().position(|s| *s == Step::Revocation("jwt".into())).unwrap() < first_point);
    assert!(matches!(steps.last(), Some(Step::Scale(v, 100_000)) if v == "session"));

    let writer = writer(&plan);
    let mut fleet = Watching {
        path: writer.path(),
        fake: FakeFleet { steady_rps: 1000.0, ..FakeFleet::default() },
        on_disk: Vec::new(),
    };
    let cancel = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let (outcome, results) = drive(&steps, &mut fleet, writer, &cancel);
    outcome.unwrap();
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(fleet.fake.seen.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(), steps);
    assert!(results.complete && !results.interrupted);
    assert!(results.calibration.is_some());
    assert_eq!(results.steady("session").unwrap().throughput_rps.median, 1000.0);
    assert_eq!(results.runs_of("jwt", Scenario::Sweep).len(), 2);
    assert_eq!(results.sweeps.len(), 2);
    assert_eq!(results.revocation.len(), 14);
    assert_eq!(results.outage.len(), 4);
    assert_eq!(results.scale.len(), 2, "session's two sizes; jwt keeps no entries");
    // Every record was on disk before the next step began: the counts grow step by step.
    let rounds_at = steps.iter().position(|s| matches!(s, Step::Rounds(_))).unwrap();
    assert_eq!(fleet.on_disk[rounds_at + 1].0, 4, "steady and cost records are written before the sweeps");
    let revocation_at = steps.iter().position(|s| *s == Step::Revocation("session".into())).unwrap();
    assert_eq!(fleet.on_disk[revocation_at + 1].1, 7, "both revocation groups are written before jwt starts");
}

#[test]
fn later_steps_get_the_steady_maximum_of_their_variant() {
    let plan = plan(&["session"]);
    let steps = steps(&plan, false);
    let writer = writer(&plan);
    let mut fleet = FakeFleet { steady_rps: 4000.0, ..FakeFleet::default() };
    let (outcome, results) = drive(&steps, &mut fleet, writer, &AtomicBool::new(false));
    outcome.unwrap();
    for (step, known) in &fleet.seen {
        let expected = if step.variant().is_none() { None } else { Some(4000.0) };
        assert_eq!(known.max_rps, expected, "{step}");
    }
    assert_eq!(results.sweep("session").unwrap().max_rps, 4000.0);
    assert_eq!(results.outage("session", Fault::Hang).unwrap().offered_rps, 2000.0);
}

#[test]
fn ctrl_c_stops_after_the_current_step_and_keeps_what_was_measured() {
    let plan = plan(&["session", "jwt"]);
    let steps = steps(&plan, true);
    let cancel = Arc::new(AtomicBool::new(false));
    let mut fleet = FakeFleet {
        steady_rps: 1000.0,
        interrupt_at: Some((Step::Sweep("session".into()), cancel.clone())),
        ..FakeFleet::default()
    };
    let (outcome, results) = drive(&steps, &mut fleet, writer(&plan), &cancel);
    outcome.unwrap();
    assert_eq!(fleet.seen.last().map(|(s, _)| s.clone()), Some(Step::Sweep("session".into())));
    assert!(results.interrupted && !results.complete);
    assert!(results.steady("session").is_some());
    assert_eq!(results.sweeps.len(), 1, "the interrupted step's records are kept");
    assert!(results.sweep("jwt").is_none());
    assert!(results.finished_at.is_some());
}

#[test]
fn an_error_names_its_step_and_leaves_the_records_before_it() {
    let plan = plan(&["session", "jwt"]);
    let steps = steps(&plan, true);
    let mut fleet = FakeFleet {
        steady_rps: 1000.0,
        fail_at: Some(Step::Outage("jwt".into(), Fault::Hang)),
        ..FakeFleet::default()
    };
    let (outcome, results) = drive(&steps, &mut fleet, writer(&plan), &AtomicBool::new(false));
    let message = format!("{:#}", outcome.unwrap_err());
    assert!(message.starts_with("jwt: outage, hang: the fake fleet fails here"), "{message}");
    assert!(!results.complete && !results.interrupted);
    assert_eq!(results.outage.len(), 3, "session's three faults ran before");
    assert!(results.scale.is_empty());
}

#[test]
fn a_plan_without_load_scenarios_starts_no_shared_servers() {
    let mut plan = plan(&["session"]);
    plan.scenarios = vec![Scenario::Revocation];
    assert_eq!(steps(&plan, false), [Step::Revocation("session".into())]);
}

#[test]
fn rtt_controls_that_move_are_named_and_store_designs_are_not_controls() {
    use super::fake::run_record;
    use crate::results::Spread;
    let point = |variant: &str, rtt: f64, values: &[f64], commands: Option<f64>| {
        let mut r = run_record(variant, Scenario::Rtt, 0.0);
        r.redis_rtt_ms = Some(rtt);
        r.throughput_rps = Spread::of(values);
        r.redis_commands_per_request = commands;
        r
    };
    let base = [100.0, 80.0, 120.0, 90.0, 110.0, 100.0];
    let faster: Vec<f64> = base.iter().map(|v| v * 1.2).collect();
    let halved: Vec<f64> = base.iter().map(|v| v * 0.5).collect();
    // jwt at 1 ms moves round by round within 5 % either way: its ratio's interval holds 1.
    // versioned-g1 reads 1.2 in every round: a control that moved. session has a store path.
    let records = vec![
        point("jwt", 0.0, &base, Some(0.0)),
        point("jwt", 1.0, &[100.0, 84.0, 114.0, 90.0, 112.0, 98.0], Some(0.0)),
        point("versioned-g1", 0.0, &base, Some(0.0002)),
        point("versioned-g1", 1.0, &faster, Some(0.0002)),
        point("session", 0.0, &base, Some(1.0)),
        point("session", 1.0, &halved, Some(1.0)),
    ];
    let moved = crate::scenario::points::moved_controls(&records);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert!(moved[0].starts_with("versioned-g1 at 1 ms: 1.20"), "{moved:?}");
}
