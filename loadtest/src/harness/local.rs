//! The fleet of `authbench run`: servers and Redis on this machine that the harness starts,
//! owns and stops. Every variant's servers for the rounds (steady and cost), sweep and login
//! start once, each variant with a Redis of its own, and stop at the variant's `Release`; the
//! other scenarios start servers of their own on the run's shared Redis.

use std::path::PathBuf;
use std::time::Duration;

use authbench_server::StrategyName;
use authbench_server::redis_process::{RedisOptions, RedisServer};

use super::fleet::{Fleet, Known, Step, rounds_step, subject_step};
use crate::observe::cpus_allowed;
use crate::plan::{CpuPlacement, GENERATOR_BOUND, Variant, variant};
use crate::process::{Backing, Launcher, ServerProcess, further_instance_args, variant_args};
use crate::results::Record;
use crate::scenario::rounds::Cell;
use crate::scenario::{self, Event, Knobs, MeLoad, Sink, Subject, outage, points, population, revocation, scale};

/// A variant's servers while its steady, sweep and login run.
#[derive(Debug)]
struct Running {
    variant: &'static Variant,
    subject: Subject,
    load: MeLoad,
    /// Held for their lifetime: dropping them stops the servers (first) and their Redis.
    _servers: Vec<ServerProcess>,
    _redis: Option<Backing>,
    /// The signing key shared by further instances, removed on release.
    key_file: PathBuf,
}

/// Servers and Redis on this machine.
#[derive(Debug)]
pub struct LocalFleet {
    knobs: Knobs,
    placement: CpuPlacement,
    /// The cluster the run was pointed at, until the first step that needs Redis adopts it.
    cluster: Option<Backing>,
    /// The Redis the scenarios that start their own servers share (emptied before each),
    /// started when first needed; the cluster, when the run was given one.
    redis: Option<Backing>,
    /// Variants whose servers run, until their `Release`.
    running: Vec<Running>,
}

fn find(name: &str) -> anyhow::Result<&'static Variant> {
    variant(name).ok_or_else(|| anyhow::anyhow!("unknown variant {name}"))
}

impl LocalFleet {
    pub fn new(knobs: Knobs, placement: CpuPlacement, cluster: Option<Backing>) -> Self {
        Self { knobs, placement, cluster, redis: None, running: Vec::new() }
    }

    fn launcher(&self) -> anyhow::Result<&Launcher> {
        self.knobs.launcher()
    }

    /// Makes sure the run's Redis is up: the cluster it was given, or a redis-server started now.
    fn ensure_redis(&mut self, sink: Sink<'_>) -> anyhow::Result<()> {
        if self.redis.is_none() {
            let backing = match self.cluster.take() {
                Some(cluster) => cluster,
                None => Backing::Own(RedisServer::start_with(RedisOptions {
                    cpu: self.placement.redis,
                    ..RedisOptions::default()
                })?),
            };
            if let Some(cpus) = backing.pid().and_then(cpus_allowed) {
                sink(Event::Record(Record::Placement { process: "redis".into(), cpus }))?;
            }
            self.redis = Some(backing);
        }
        Ok(())
    }

    /// The run's Redis for `v`, started if `v` needs one.
    fn redis_for(&mut self, v: &Variant, sink: Sink<'_>) -> anyhow::Result<Option<&Backing>> {
        if !v.uses_redis() {
            return Ok(None);
        }
        self.ensure_redis(sink)?;
        Ok(self.redis.as_ref())
    }

    fn calibrate(&mut self, sink: Sink<'_>) -> anyhow::Result<()> {
        let baseline = find("baseline")?;
        let server = self.launcher()?.start(&variant_args(baseline, None))?;
        let calibration = scenario::calibrate(server.addr, &self.knobs)?;
        if let Some(cpus) = server.pid().and_then(cpus_allowed) {
            sink(Event::Record(Record::Placement { process: "server".into(), cpus }))?;
        }
        let cpus = cpus_allowed(std::process::id()).unwrap_or_default();
        sink(Event::Record(Record::Placement { process: "generator".into(), cpus }))?;
        sink(Event::Record(Record::Calibration(calibration)))
    }

    /// Starts `v`'s servers (every instance the plan asks for) on a Redis of their own (or the
    /// run's cluster, emptied), unless they already run.
    fn start(&mut self, v: &'static Variant, sink: Sink<'_>) -> anyhow::Result<()> {
        if self.running.iter().any(|r| r.variant.name == v.name) {
            return Ok(());
        }
        let cluster = self.cluster.is_some() || matches!(self.redis, Some(Backing::Cluster { .. }));
        let own = if v.uses_postgres() || (v.uses_redis() && !cluster) {
            Some(Backing::start_for(v, self.placement.redis)?)
        } else {
            None
        };
        if own.is_none() && v.uses_redis() {
            // A cluster is shared: emptied before the first variant that runs on it, not under
            // variants already running (the designs' keys have prefixes of their own).
            self.ensure_redis(sink)?;
            if let Some(redis) = &self.redis
                && self.running.iter().all(|r| !r.variant.uses_redis())
            {
                redis.flush()?;
            }
        }
        let backing = own.as_ref().or(if v.uses_redis() { self.redis.as_ref() } else { None });
        if let Some(own) = &own
            && let Some(cpus) = own.pid().and_then(cpus_allowed)
        {
            sink(Event::Record(Record::Placement { process: own.process_name().into(), cpus }))?;
        }
        let redis_flags = backing.map(|b| (b.server_args(), b.probe()));
        let mut args = variant_args(v, redis_flags.as_ref().map(|(f, _)| f.as_slice()));
        // These servers carry the rounds, the sweep and the logins: minutes, longer than
        // refresh's 60 s access tokens live. Its access lifetime never enters the request path
        // (a signature check), so they issue hour-long ones; the revocation scenario starts
        // servers of its own with short lifetimes.
        if v.strategy == StrategyName::Refresh {
            args.extend(["--access-ttl".into(), "1h".into()]);
        }
        // Further instances share Redis and, for the JWT designs, the signing key.
        let key_file = std::env::temp_dir().join(format!("authbench-key-{}-{}", std::process::id(), v.name));
        let _ = std::fs::remove_file(&key_file);
        let instances = self.knobs.plan.instances;
        if instances > 1 && v.uses_jwt() {
            args.extend(["--jwt-key-file".into(), key_file.display().to_string()]);
        }
        let launcher = self.launcher()?;
        let server = launcher.start(&args)?;
        let mut more = Vec::new();
        for _ in 1..instances {
            more.push(launcher.start(&further_instance_args(&args))?);
        }
        let probe = redis_flags.and_then(|(_, probe)| probe);
        let subject = Subject::started(v, &server, &more, args, probe, &self.knobs)?;
        let tokens = self.knobs.plan.connections.min(16);
        let load = self.knobs.runtime.block_on(MeLoad::login(&subject, tokens))?;
        let mut servers = vec![server];
        servers.extend(more);
        self.running.push(Running { variant: v, subject, load, _servers: servers, _redis: own, key_file });
        Ok(())
    }

    fn running(&self, name: &str) -> anyhow::Result<&Running> {
        self.running.iter().find(|r| r.variant.name == name).ok_or_else(|| anyhow::anyhow!("{name} did not start"))
    }

    /// Stops `name`'s servers (every variant's when `None`).
    fn release(&mut self, name: Option<&str>) {
        let (gone, kept): (Vec<Running>, Vec<Running>) =
            std::mem::take(&mut self.running).into_iter().partition(|r| name.is_none_or(|n| r.variant.name == n));
        self.running = kept;
        for running in gone {
            let key_file = running.key_file.clone();
            drop(running);
            let _ = std::fs::remove_file(key_file);
        }
    }
}

impl Fleet for LocalFleet {
    fn measure(&mut self, step: &Step, known: Known, sink: Sink<'_>) -> anyhow::Result<()> {
        match step {
            Step::Calibration => self.calibrate(sink)?,
            Step::Rounds(names) => {
                for name in names {
                    sink(Event::Status(format!("{name}: starting its servers")))?;
                    self.start(find(name)?, sink)?;
                }
                let running: Vec<&Running> = names.iter().map(|n| self.running(n)).collect::<anyhow::Result<_>>()?;
                let cells: Vec<Cell<'_>> = running
                    .iter()
                    .map(|r| Cell { subject: &r.subject, load: &r.load, label: r.variant.name })
                    .collect();
                rounds_step(&cells, &self.knobs, sink)?;
            }
            Step::Sweep(name) | Step::Rate(name, _) | Step::Login(name) => {
                self.start(find(name)?, sink)?;
                let running = self.running(name)?;
                subject_step(step, &running.subject, Some(&running.load), &self.knobs, known, sink)?;
            }
            Step::Release(name) => self.release(Some(name)),
            Step::Revocation(name) => {
                self.release(None);
                let v = find(name)?;
                self.redis_for(v, sink)?;
                // A PostgreSQL variant gets one of its own, gone with the step.
                let pg = if v.uses_postgres() { Some(Backing::start_for(v, self.placement.redis)?) } else { None };
                let store = if v.uses_redis() { self.redis.as_ref() } else { pg.as_ref() };
                // Half the variant's measured maximum, as in the outage scenario: a server at work.
                let background = known.max_rps.map(|m| (m / 2.0).max(100.0));
                revocation::run_variant(v, store, background, &self.knobs, sink)?;
            }
            Step::Outage(name, fault) => {
                self.release(None);
                let v = find(name)?;
                let max = match known.max_rps {
                    Some(max) => max,
                    None => {
                        sink(Event::Status(format!("{name}: probing the maximum for the outage rate")))?;
                        outage::probe_max(v, &self.knobs)?
                    }
                };
                let record = outage::run_variant(v, *fault, max, &self.knobs)?;
                sink(Event::Record(Record::Outage(record)))?;
            }
            Step::Rtt | Step::Tokensize => {
                self.release(None);
                let plan = self.knobs.plan.clone();
                let variants: Vec<&Variant> = plan
                    .variants
                    .iter()
                    .copied()
                    .filter(|v| if *step == Step::Rtt { plan.measures_rtt(v) } else { plan.measures_tokensize(v) })
                    .collect();
                if variants.iter().any(|v| v.uses_redis()) {
                    self.ensure_redis(sink)?;
                }
                let redis = self.redis.as_ref().and_then(Backing::own);
                // The PostgreSQL variants' points share one of their own, placed as Redis is,
                // gone with the step (each point has a relay of its own to it).
                let pg = match variants.iter().find(|v| v.uses_postgres()) {
                    Some(v) if *step == Step::Rtt => Some(Backing::start_for(v, self.placement.redis)?),
                    _ => None,
                };
                let pg = pg.as_ref().and_then(Backing::postgres);
                let records = if *step == Step::Rtt {
                    let mut records = points::rtt(&variants, &plan.rtt_steps, redis, pg, &self.knobs, sink)?;
                    // The controls (no store path) must read no change; if one moved, the
                    // machine was noisy: measure the scenario once more, and say so.
                    let moved = points::moved_controls(&records);
                    if !moved.is_empty() && !self.knobs.cancelled() {
                        sink(Event::Status(format!("rtt: controls moved ({}), measuring again", moved.join("; "))))?;
                        records = points::rtt(&variants, &plan.rtt_steps, redis, pg, &self.knobs, sink)?;
                        let again = points::moved_controls(&records);
                        let outcome = if again.is_empty() {
                            "the second pass's controls read no change; its figures are the ones kept".to_owned()
                        } else {
                            format!("they moved again ({}): the rtt figures of this run are noisy", again.join("; "))
                        };
                        sink(Event::Record(Record::Note(format!(
                            "rtt: a control (a design with no store on its request path) read a change in the first pass ({}), so the scenario was measured again; {outcome}.",
                            moved.join("; ")
                        ))))?;
                    }
                    records
                } else {
                    points::tokensize(&variants, &plan.token_paddings, redis, &self.knobs, sink)?
                };
                for record in records {
                    sink(Event::Record(Record::Run(Box::new(record))))?;
                }
            }
            Step::Population(name) => {
                self.release(None);
                for record in population::run(find(name)?, &self.knobs, sink)? {
                    sink(Event::Record(Record::Run(Box::new(record))))?;
                }
            }
            Step::Scale(name, entries) => {
                self.release(None);
                let (scale, record) = scale::run(find(name)?, *entries, &self.knobs)?;
                sink(Event::Record(Record::Scale(scale)))?;
                sink(Event::Record(Record::Run(Box::new(record))))?;
            }
        }
        Ok(())
    }
}

/// The knobs of a measuring command; `launcher` is `None` when the server is someone else's.
pub fn knobs(
    plan: crate::plan::SuitePlan,
    placement: &CpuPlacement,
    launcher: Option<Launcher>,
    runtime: tokio::runtime::Handle,
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Knobs {
    Knobs {
        plan,
        runtime,
        launcher,
        generator_cpus: placement.generator.clone(),
        cancel,
        generator_bound_threshold: GENERATOR_BOUND,
        request_timeout: REQUEST_TIMEOUT,
    }
}

/// Per-request deadline of the steady and sweep loads.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
