//! A fleet that measures nothing and answers at once, so the orchestration is tested in
//! milliseconds: it hands back made-up records of the right kind, and can be told to fail
//! at a step or to behave as if Ctrl-C came during one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::fleet::{Fleet, Known, Step};
use crate::results::{
    BackgroundLoad, Calibration, Estimate, Kind, OutageRecord, Percentiles, PopulationRun, Record, RevocationRecord,
    RunRecord, ScaleRecord, Scenario, Spread, SweepSummary,
};
use crate::scenario::{Event, Sink};

#[derive(Debug, Default)]
pub struct FakeFleet {
    /// Every step asked for, with what it was told.
    pub seen: Vec<(Step, Known)>,
    /// Fail at this step (its records are not sent).
    pub fail_at: Option<Step>,
    /// Set this flag (as Ctrl-C would) after sending this step's records.
    pub interrupt_at: Option<(Step, Arc<AtomicBool>)>,
    /// Steady throughput handed back, per call.
    pub steady_rps: f64,
}

fn percentiles() -> Percentiles {
    Percentiles { p50: 100.0, p90: 150.0, p99: 200.0, p999: 300.0, p9999: 400.0, max: 500.0, mean: 110.0, stdev: 20.0 }
}

pub fn run_record(variant: &str, scenario: Scenario, rps: f64) -> RunRecord {
    RunRecord {
        scenario,
        strategy: variant.split('-').next().unwrap_or(variant).to_owned(),
        variant: variant.to_owned(),
        server_args: Vec::new(),
        capabilities: None,
        schedule: "closed".into(),
        connections: 4,
        offered_rps: None,
        achieved_rps: None,
        dropped: None,
        outcomes: Default::default(),
        latency_valid: true,
        peak_connections: None,
        connection_limit: None,
        repetitions: 1,
        warmup_s: 0.0,
        duration_s: 1.0,
        throughput_rps: Spread::of(&[rps]),
        latency_us: percentiles(),
        latency_basis: "service_time".into(),
        service_latency_us: None,
        pacer_lag_us: None,
        connection_wait_us: None,
        requests: rps as u64,
        errors: 0,
        status_counts: Default::default(),
        redis_commands_per_request: None,
        redis_bytes_per_request: None,
        redis_commands: Default::default(),
        server_cpu_us_per_request: None,
        redis_cpu_us_per_request: None,
        generator_cpu_us_per_request: None,
        generator_busy: None,
        token_bytes: None,
        server_peak_rss_bytes: None,
        generator_bound: false,
        login: None,
        redis_rtt_ms: None,
        redis_rtt_measured_ms: None,
        claims_padding_bytes: None,
        keyspace_entries: None,
        rate_rps: None,
        rounds: None,
        server_cpu_ns_per_request: None,
        redis_cpu_ns_per_request: None,
        generator_cpu_ns_per_request: None,
        latency_p50_us: None,
        latency_p99_us: None,
        noisy_windows: None,
        population: None,
        histogram: String::new(),
    }
}

fn revocation(variant: &str, kind: Kind) -> RevocationRecord {
    RevocationRecord {
        strategy: variant.to_owned(),
        variant: variant.to_owned(),
        kind,
        instances: 1,
        trial: 0,
        supported: true,
        operation_status: 204,
        ack_ms: 1.0,
        window_ms: Some(0.0),
        window_answer_ms: Some(0.5),
        expected_bound_ms: Some(0.0),
        revoke_after_login_ms: Some(600.0),
        accepted_after_ack: 0,
        accepted_before_revoke: 10,
        rejected_after_ack: 10,
        errors_after_ack: 0,
        probes: 20,
        cap_ms: 1000.0,
        token_lifetime_left_ms: 1000.0,
        timeline: Vec::new(),
        background: Some(BackgroundLoad { offered_rps: 100.0, achieved_rps: 100.0, failures: 0 }),
        refreshes_after_revoke: None,
        refreshed_after_revoke: None,
        adopted_tokens: Some(0),
    }
}

impl Fleet for FakeFleet {
    fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()> {
        self.seen.push((step.clone(), known));
        if self.fail_at.as_ref() == Some(step) {
            anyhow::bail!("the fake fleet fails here");
        }
        let mut send = |record: Record| sink(Event::Record(record));
        match step {
            Step::Calibration => send(Record::Calibration(Calibration {
                connections: 4,
                threads: 1,
                duration_s: 1.0,
                repetitions: 1,
                engine_rps: Spread::of(&[1000.0]),
                engine_latency_us: percentiles(),
                wrk_rps: Some(Spread::of(&[1000.0])),
                wrk_command: None,
                engine_to_wrk: Some(1.0),
                generator_bound_threshold: 0.9,
            }))?,
            Step::Rounds(vs) => {
                for v in vs {
                    send(Record::Run(Box::new(run_record(v, Scenario::Steady, self.steady_rps))))?;
                }
                for v in vs {
                    send(Record::Run(Box::new(run_record(v, Scenario::Cost, self.steady_rps / 2.0))))?;
                }
            }
            Step::Sweep(v) => {
                let max = known.max_rps.unwrap_or(1.0);
                for fraction in [0.5, 1.0] {
                    let mut r = run_record(v, Scenario::Sweep, max * fraction);
                    r.offered_rps = Some(max * fraction);
                    send(Record::Run(Box::new(r)))?;
                }
                send(Record::Sweep(SweepSummary {
                    strategy: v.clone(),
                    variant: v.clone(),
                    max_rps: max,
                    offered_rps: vec![max / 2.0, max],
                    p99_us: vec![200.0, 200.0],
                    knee_rps: None,
                }))?;
            }
            Step::Rate(v, rate) => {
                let mut r = run_record(v, Scenario::Rate, *rate);
                r.offered_rps = Some(*rate);
                send(Record::Run(Box::new(r)))?;
            }
            Step::Login(v) => send(Record::Run(Box::new(run_record(v, Scenario::Login, 10.0))))?,
            Step::Release(_) => {}
            Step::Revocation(v) => {
                send(Record::Revocation(
                    Kind::ALL.iter().filter(|k| **k != Kind::RevokeAll).map(|k| revocation(v, *k)).collect(),
                ))?;
                send(Record::Revocation(vec![revocation(v, Kind::RevokeAll)]))?;
            }
            Step::Outage(v, fault) => send(Record::Outage(OutageRecord {
                strategy: v.clone(),
                variant: v.clone(),
                fault: *fault,
                persistence: "none".into(),
                offered_rps: known.max_rps.unwrap_or(200.0) / 2.0,
                connections: 4,
                client_timeout_ms: 1000.0,
                dropped: 0,
                bucket_ms: 100.0,
                fault_start_ms: 0.0,
                redis_back_ms: 0.0,
                availability_before: 1.0,
                availability_during: 0.0,
                availability_after: 1.0,
                recovery_ms: Some(0.0),
                revoked_accepted: 0,
                revoked_probes: 0,
                sessions_lost: 0,
                keepers: 0,
                revocations_lost: Some(0),
                revoked_checked: 0,
                timeline: Vec::new(),
            }))?,
            Step::Rtt => {
                for rtt in [0.0, 1.0] {
                    let mut r = run_record("session", Scenario::Rtt, 900.0);
                    r.redis_rtt_ms = Some(rtt);
                    send(Record::Run(Box::new(r)))?;
                }
            }
            Step::Tokensize => {
                for pad in [0, 1024] {
                    let mut r = run_record("session", Scenario::Tokensize, 900.0);
                    r.claims_padding_bytes = Some(pad);
                    send(Record::Run(Box::new(r)))?;
                }
            }
            Step::Population(v) => {
                let mut r = run_record(v, Scenario::Population, 900.0);
                r.population = Some(PopulationRun {
                    users: 100,
                    user_rate_rps: 1.0,
                    access_ttl_s: 10.0,
                    requests_per_lifetime: 10.0,
                    user_requests: 900,
                    extra_calls: [("refresh".to_owned(), 82), ("login".to_owned(), 0), ("retry".to_owned(), 0)].into(),
                    extra_calls_failed: Default::default(),
                    extra_call_latency_us: Default::default(),
                    redis_commands_per_user_request: Estimate::of(&[0.09, 0.1, 0.08]),
                    expected_redis_commands_per_user_request: 1.0 / 11.0,
                    expected_basis: "1 command per refresh / (1 + requests per lifetime)".into(),
                    grace_s: None,
                    seeding: "seeded".into(),
                });
                send(Record::Run(Box::new(r)))?;
            }
            Step::Scale(v, entries) => {
                send(Record::Scale(ScaleRecord {
                    strategy: v.clone(),
                    variant: v.clone(),
                    entry_kind: "session".into(),
                    entries: *entries as u64,
                    used_memory_before: 0,
                    used_memory_after: 300 * *entries as u64,
                    bytes_per_entry: 300.0,
                    seed_seconds: 0.1,
                    tokens_sampled: 16,
                    throughput_rps: 900.0,
                    latency_p50_us: 100.0,
                    latency_p99_us: 200.0,
                    server_rss_bytes: None,
                    server_start_seconds: None,
                }))?;
                send(Record::Run(Box::new(run_record(v, Scenario::Scale, 900.0))))?;
            }
        }
        if let Some((at, flag)) = &self.interrupt_at
            && at == step
        {
            flag.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}
