//! `results.json` against its committed JSON Schema (`loadtest/schema/results.schema.json`):
//! the real `authbench run --suite smoke` output must validate, and must hold what the smoke
//! suite promises (a calibration against wrk; for baseline, session, jwt and hybrid a clean
//! steady record, sweep steps and a login record; about one Redis command per request for
//! session and hybrid, none for jwt and baseline; a readable latency histogram behind every
//! record; one revocation record per kind and trial (two trials) with the window each design
//! promises, inside the bound its settings give: session and hybrid refuse a revoked token at
//! once, jwt only for revoke-all and otherwise not before the token expires, baseline never, and
//! every victim token accepted before its revoke; one `hang`
//! outage record for each variant that uses Redis (session, hybrid and the fail-open
//! hybrid-open), with session and hybrid unavailable while Redis hangs, recovering after it, and
//! losing no session or revocation, while hybrid-open stays available and lets a revoked token
//! in). The schema must also accept null wherever the Rust type is an
//! `Option`, and must reject broken documents, so a schema that accepts anything cannot pass.
//!
//! Needs `redis-server` and `wrk` on PATH and the `authbench-server` binary next to
//! `authbench` (`cargo build -p authbench-server`, or `cargo test --workspace`). The smoke run
//! (about a minute) happens once and is shared by the tests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use authbench::results::{Fault, OutageRecord};
use authbench::results::{Kind, RevocationRecord};
use authbench::results::{Results, RunRecord};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_authbench");
const SCHEMA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/results.schema.json");
/// The smoke suite takes about a minute; this is the most it may take before it counts as hung.
const SMOKE_DEADLINE: Duration = Duration::from_secs(180);
const SMOKE_VARIANTS: [&str; 4] = ["baseline", "session", "jwt", "hybrid"];
/// A window below this counts as "refused at once": probes in flight at the acknowledgement
/// and scheduling noise, not a design that keeps accepting.
const PROMPT_WINDOW_MS: f64 = 50.0;
/// The smoke suite's access-token lifetime is 2 s; a design that cannot revoke keeps accepting
/// the token for (most of) it, plus the servers' leeway.
const UNREVOKED_WINDOW_MS: f64 = 1000.0;
/// Trials per revocation kind in the smoke suite.
const SMOKE_TRIALS: u32 = 2;
/// The variants the smoke suite's outage pass measures: those that call Redis (hybrid-open is
/// added automatically when hybrid runs). baseline and jwt never call Redis and get no record.
const OUTAGE_VARIANTS: [&str; 3] = ["session", "hybrid", "hybrid-open"];

/// The path of the `results.json` the shared smoke run wrote, or why there is none.
fn smoke_results() -> &'static Path {
    static RUN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match RUN.get_or_init(run_smoke) {
        Ok(path) => path,
        Err(why) => panic!("{why}"),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Runs `authbench run --suite smoke --quiet --out <fresh dir>` and returns the results path
/// it printed. Errors (rather than panics) so a failure is reported the same way to every test.
fn run_smoke() -> Result<PathBuf, String> {
    let server = Path::new(BIN).with_file_name("authbench-server");
    if std::env::var_os("AUTHBENCH_SERVER_BIN").is_none() && !server.is_file() {
        return Err(format!(
            "{} is missing: run `cargo build -p authbench-server` (or `cargo test --workspace`, which builds it) first",
            server.display()
        ));
    }
    for tool in ["redis-server", "wrk"] {
        if !on_path(tool) {
            return Err(format!("{tool} is not on PATH: scripts/setup.sh installs it"));
        }
    }

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("schema-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    // Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    let stdout_path = out.join("stdout.txt");
    let stderr_path = out.join("stderr.txt");
    let mut child = Command::new(BIN)
        .args(["run", "--suite", "smoke", "--quiet", "--out"])
        .arg(&out)
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).map_err(|e| e.to_string())?)
        .stderr(File::create(&stderr_path).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot start {BIN}: {e}"))?;

    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < SMOKE_DEADLINE => std::thread::sleep(Duration::from_millis(100)),
            Ok(None) => {
                // SIGTERM first, so authbench stops its redis-server and servers; then SIGKILL.
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
                }
                let grace = Instant::now();
                while grace.elapsed() < Duration::from_secs(10) && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`authbench run --suite smoke` still running after {SMOKE_DEADLINE:?}; killed it. stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                ));
            }
            Err(e) => return Err(format!("waiting for authbench: {e}")),
        }
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if status.code() != Some(0) {
        return Err(format!(
            "`authbench run --suite smoke` exited with {status} after {:.1?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
            started.elapsed()
        ));
    }
    // Quiet output is the path of the results, then the report's, which ends it (as
    // scripts/bench.sh relies on).
    let Some(path) = stdout.lines().find_map(|l| l.strip_prefix("results: ")) else {
        return Err(format!("stdout has no `results: <path>` line:\n{stdout}\nstderr:\n{stderr}"));
    };
    let path = PathBuf::from(path);
    if !path.starts_with(&out) || !path.is_file() {
        return Err(format!("`results: {}` is not a file under {}", path.display(), out.display()));
    }
    let html = path.with_file_name("report.html");
    let last = stdout.lines().last().unwrap_or_default();
    if last.strip_prefix("report:").map(str::trim) != Some(&*html.to_string_lossy()) || !html.is_file() {
        return Err(format!("stdout does not end with the path of {}:\n{stdout}", html.display()));
    }
    eprintln!("smoke run took {:.1?}: {}", started.elapsed(), path.display());
    Ok(path)
}

fn validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(SCHEMA).unwrap_or_else(|e| panic!("cannot read {SCHEMA}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{SCHEMA} is not JSON: {e}"));
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "the schema must declare draft 2020-12"
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("{SCHEMA} is not a valid JSON Schema: {e} at {}", e.instance_path());
    }
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("cannot compile {SCHEMA}: {e}"))
}

/// Every validation error, one per line, with where in the document it is.
fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

fn assert_valid(validator: &jsonschema::Validator, doc: &Value, what: &str) {
    let errors = errors(validator, doc);
    assert!(errors.is_empty(), "{what} does not match {SCHEMA}:\n{}", errors.join("\n"));
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn records<'a>(results: &'a Results, variant: &'a str, scenario: &'a str) -> impl Iterator<Item = &'a RunRecord> {
    results.runs.iter().filter(move |r| r.variant == variant && r.scenario.as_str() == scenario)
}

#[test]
fn smoke_results_match_the_schema_and_the_suite() {
    let path = smoke_results();
    let validator = validator();
    assert_valid(&validator, &read_json(path), &path.display().to_string());

    let results = authbench::results::load(path).unwrap();
    assert!(results.complete, "complete must be true after a finished run");
    assert!(!results.interrupted);
    assert!(results.finished_at.is_some());
    assert_eq!(results.suite, "smoke");

    let calibration = results.calibration.as_ref().expect("calibration missing");
    assert!(calibration.engine_rps.median > 0.0, "engine_rps: {:?}", calibration.engine_rps);
    let wrk = calibration.wrk_rps.as_ref().expect("no wrk figure in calibration");
    assert!(wrk.median > 0.0, "wrk_rps: {wrk:?}");
    assert!(calibration.wrk_command.as_deref().is_some_and(|c| c.starts_with("wrk ")), "{calibration:?}");
    assert!(calibration.engine_to_wrk.is_some_and(|r| r > 0.0), "{calibration:?}");

    for variant in SMOKE_VARIANTS {
        let steady: Vec<_> = records(&results, variant, "steady").collect();
        assert_eq!(steady.len(), 1, "{variant}: one steady record expected, found {}", steady.len());
        let steady = steady[0];
        assert!(steady.requests > 0, "{variant} steady: no requests");
        assert_eq!(steady.errors, 0, "{variant} steady: errors, status counts {:?}", steady.status_counts);
        assert_eq!(steady.schedule, "closed");
        assert_eq!(steady.latency_basis, "service_time");

        let sweeps: Vec<_> = records(&results, variant, "sweep").collect();
        assert!(!sweeps.is_empty(), "{variant}: no sweep record");
        for s in &sweeps {
            assert_eq!(s.schedule, "open", "{variant} sweep");
            assert_eq!(s.latency_basis, "intended_send_time", "{variant} sweep");
            assert!(s.offered_rps.is_some_and(|r| r > 0.0), "{variant} sweep: offered_rps {:?}", s.offered_rps);
            assert!(
                s.service_latency_us.is_some() && s.pacer_lag_us.is_some() && s.connection_wait_us.is_some(),
                "{variant} sweep"
            );
        }
        assert!(results.sweeps.iter().any(|s| s.variant == variant), "{variant}: no sweep summary");

        let login: Vec<_> = records(&results, variant, "login").collect();
        assert_eq!(login.len(), 1, "{variant}: one login record expected, found {}", login.len());
        let split = login[0].login.as_ref().unwrap_or_else(|| panic!("{variant} login: no `login` split"));
        assert!(split.samples > 0, "{variant} login: no Server-Timing samples");

        let redis = steady.redis_commands_per_request;
        match variant {
            "session" | "hybrid" => assert!(
                redis.is_some_and(|n| (0.9..=1.2).contains(&n)),
                "{variant} steady: redis_commands_per_request {redis:?}, expected about 1 ({:?})",
                steady.redis_commands
            ),
            _ => assert!(
                redis.is_none_or(|n| n == 0.0),
                "{variant} steady: redis_commands_per_request {redis:?}, expected none"
            ),
        }
        if matches!(variant, "session" | "hybrid") {
            let bytes = steady.redis_bytes_per_request;
            assert!(
                bytes.is_some_and(|b| b > 0.0),
                "{variant} steady: redis_bytes_per_request {bytes:?}, expected > 0"
            );
        }
    }

    assert_eq!(results.schema_version, 9);
    check_revocation(&results);
    check_outage(&results);

    for (i, record) in results.runs.iter().enumerate() {
        let what = format!("runs[{i}] ({} {})", record.variant, record.scenario.as_str());
        assert!(!record.histogram.is_empty(), "{what}: empty histogram");
        let h = authbench::results::deserialize_histogram(&record.histogram)
            .unwrap_or_else(|e| panic!("{what}: histogram does not deserialize: {e:#}"));
        assert!(!h.is_empty(), "{what}: histogram holds no samples");
        let max_us = h.max() as f64 / 1000.0;
        assert!(
            (max_us - record.latency_us.max).abs() <= 1.0,
            "{what}: histogram max {max_us} µs, latency_us.max {} µs",
            record.latency_us.max
        );
    }
}

/// What the smoke suite's revocation scenario must show: for each variant one record per kind
/// and trial, on one instance, with the window its design promises inside the bound its
/// settings give, and a timeline that accounts for every probe.
fn check_revocation(results: &Results) {
    for (i, r) in results.revocation.iter().enumerate() {
        let what = format!("revocation[{i}] ({} {} trial {})", r.variant, r.kind.as_str(), r.trial);
        assert!(r.probes > 0, "{what}: no probes");
        assert!(!r.timeline.is_empty(), "{what}: empty timeline");
        let in_timeline: u64 = r.timeline.iter().map(|s| s.probes).sum();
        assert_eq!(in_timeline, r.probes, "{what}: timeline holds {in_timeline} probes, record {}", r.probes);
        // Every design, baseline included, accepts the victim token before it is revoked.
        assert!(r.accepted_before_revoke > 0, "{what}: the token was never accepted before the revoke: {r:?}");
        assert!(
            r.accepted_after_ack + r.rejected_after_ack + r.errors_after_ack <= r.probes,
            "{what}: more probes after the acknowledgement than in all: {r:?}"
        );
        // Both bounds of the window, the upper one no earlier than the lower.
        assert_eq!(r.window_ms.is_some(), r.window_answer_ms.is_some(), "{what}: {r:?}");
        if let (Some(w), Some(a)) = (r.window_ms, r.window_answer_ms) {
            assert!(a >= w, "{what}: answer bound {a} below send bound {w}");
        }
        assert!(r.revoke_after_login_ms.is_some_and(|ms| ms >= 99.0), "{what}: {r:?}");
    }

    for variant in SMOKE_VARIANTS {
        let records: Vec<&RevocationRecord> = results.revocation.iter().filter(|r| r.variant == variant).collect();
        assert_eq!(
            records.len(),
            Kind::ALL.len() * SMOKE_TRIALS as usize,
            "{variant}: one revocation record per kind and trial expected: {records:#?}"
        );
        for kind in Kind::ALL {
            let of_kind: Vec<_> = records.iter().filter(|r| r.kind == kind).collect();
            let mut trials: Vec<u32> = of_kind.iter().map(|r| r.trial).collect();
            trials.sort_unstable();
            assert_eq!(
                trials,
                (0..SMOKE_TRIALS).collect::<Vec<_>>(),
                "{variant} {}: one record per trial",
                kind.as_str()
            );
            for r in of_kind {
                let what = format!("{variant} {} trial {}", kind.as_str(), r.trial);
                assert_eq!(r.instances, 1, "{what}: the smoke suite runs one instance");
                let window = r.window_ms;
                let bound = r.expected_bound_ms;
                match variant {
                    // Server-side state: every kind (single_device on servers with the single-device
                    // policy) is refused from the acknowledgement on.
                    "session" | "hybrid" => {
                        assert!(r.supported, "{what}: not supported: {r:?}");
                        assert!(window.is_some_and(|w| w < PROMPT_WINDOW_MS), "{what}: window_ms {window:?}: {r:?}");
                        assert_eq!(r.accepted_after_ack, 0, "{what}: accepted after the acknowledgement: {r:?}");
                        assert_eq!(bound, Some(0.0), "{what}: acts at once: {r:?}");
                    }
                    // Stateless tokens: only a key rotation (revoke-all) ends them early; the rest
                    // live out their lifetime plus the leeway, which ends before the cap.
                    "jwt" if kind == Kind::RevokeAll => {
                        assert!(r.supported, "{what}: not supported: {r:?}");
                        assert!(window.is_some_and(|w| w < PROMPT_WINDOW_MS), "{what}: window_ms {window:?}: {r:?}");
                        assert_eq!(bound, Some(0.0), "{what}: {r:?}");
                    }
                    "jwt" => {
                        assert!(!r.supported, "{what}: claimed supported: {r:?}");
                        assert!(
                            window.is_some_and(|w| w > UNREVOKED_WINDOW_MS),
                            "{what}: window_ms {window:?}, expected the token's remaining lifetime: {r:?}"
                        );
                        // Its remaining lifetime and leeway, as the token's exp says.
                        let (w, b) = (window.unwrap_or(0.0), bound.unwrap_or(0.0));
                        assert!(bound.is_some() && w <= b + 10.0 && w >= b - 200.0, "{what}: window {w}, bound {b}");
                    }
                    // Checks nothing: the token is still accepted when the (short) cap runs out.
                    _ => {
                        assert!(!r.supported, "{what}: claimed supported: {r:?}");
                        assert_eq!(window, None, "{what}: expected still accepted at the cap: {r:?}");
                        assert_eq!(bound, None, "{what}: nothing bounds it: {r:?}");
                    }
                }
            }
        }
    }
}

/// What the smoke suite's outage pass must show: one `hang` record for each variant that uses
/// Redis; session and hybrid (fail-closed) unavailable while Redis hangs, back after it, and
/// losing nothing; hybrid-open available throughout and accepting a revoked token meanwhile.
fn check_outage(results: &Results) {
    for (i, o) in results.outage.iter().enumerate() {
        let what = format!("outage[{i}] ({} {:?})", o.variant, o.fault);
        assert!(OUTAGE_VARIANTS.contains(&o.variant.as_str()), "{what}: unexpected outage record: {o:?}");
        assert_eq!(o.fault, Fault::Hang, "{what}: the smoke suite injects only the hang");
        assert_eq!(o.persistence, "none", "{what}");
        assert!(!o.timeline.is_empty(), "{what}: empty timeline");
        assert!(o.offered_rps > 0.0, "{what}: offered_rps {}", o.offered_rps);
        assert!(
            o.fault_start_ms < o.redis_back_ms,
            "{what}: fault_start_ms {} >= redis_back_ms {}",
            o.fault_start_ms,
            o.redis_back_ms
        );
        assert!(o.revoked_probes > 0, "{what}: no revoked-token probes during the fault");
        assert!(o.revoked_accepted <= o.revoked_probes, "{what}: {o:?}");
        assert!(o.sessions_lost <= o.keepers, "{what}: {o:?}");
        assert!(o.keepers > 0 && o.revoked_checked > 0, "{what}: nothing checked after recovery: {o:?}");
    }

    for variant in OUTAGE_VARIANTS {
        let records: Vec<&OutageRecord> = results.outage.iter().filter(|o| o.variant == variant).collect();
        assert_eq!(records.len(), 1, "{variant}: one outage record expected: {records:#?}");
        let o = records[0];
        let what = format!("{variant} outage hang");
        match variant {
            // Fail-closed: nothing authenticates while Redis hangs, everything comes back.
            "session" | "hybrid" => {
                assert!(o.availability_before > 0.9, "{what}: availability_before {}: {o:?}", o.availability_before);
                assert!(o.availability_during < 0.5, "{what}: availability_during {}: {o:?}", o.availability_during);
                assert!(o.recovery_ms.is_some(), "{what}: never recovered: {o:?}");
                assert_eq!(o.sessions_lost, 0, "{what}: sessions lost by a hang: {o:?}");
                assert_eq!(o.revocations_lost, Some(0), "{what}: revocations lost by a hang: {o:?}");
            }
            // Fail-open: stays available, and so accepts a revoked token while Redis hangs.
            _ => {
                assert!(o.availability_during > 0.9, "{what}: availability_during {}: {o:?}", o.availability_during);
                assert!(o.revoked_accepted > 0, "{what}: no revoked token accepted during the hang: {o:?}");
            }
        }
    }
    assert_eq!(results.outage.len(), OUTAGE_VARIANTS.len(), "outage records: {:#?}", results.outage);
}

/// Sets `pointer` (JSON Pointer) in `doc` to `value`, or removes it when `value` is None.
fn mutate(doc: &Value, pointer: &str, value: Option<Value>) -> Value {
    let mut doc = doc.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let parent = doc.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent} in the document"));
    match (parent, value) {
        (Value::Object(map), Some(v)) => {
            map.insert(key.to_owned(), v);
        }
        (Value::Object(map), None) => {
            assert!(map.remove(key).is_some(), "no {pointer} to remove");
        }
        (Value::Array(items), Some(v)) => items[key.parse::<usize>().unwrap()] = v,
        (Value::Array(items), None) => {
            items.remove(key.parse::<usize>().unwrap());
        }
        (other, _) => panic!("{pointer}: parent is {other}"),
    }
    doc
}

#[test]
fn schema_accepts_nulls_and_rejects_broken_documents() {
    let validator = validator();
    let path = smoke_results();
    let doc = read_json(path);
    assert_valid(&validator, &doc, "the smoke results");

    // Null wherever Rust has an Option, as serde writes it.
    let mut results = authbench::results::load(path).unwrap();
    results.finished_at = None;
    results.target = None;
    results.environment.redis_server = None;
    results.environment.wrk = None;
    results.environment.git_commit = None;
    if let Some(c) = results.calibration.as_mut() {
        c.wrk_rps = None;
        c.wrk_command = None;
        c.engine_to_wrk = None;
    }
    for r in &mut results.runs {
        r.capabilities = None;
        r.offered_rps = None;
        r.achieved_rps = None;
        r.dropped = None;
        r.peak_connections = None;
        r.connection_limit = None;
        r.service_latency_us = None;
        r.pacer_lag_us = None;
        r.connection_wait_us = None;
        r.generator_busy = None;
        r.redis_commands_per_request = None;
        r.redis_bytes_per_request = None;
        r.server_cpu_us_per_request = None;
        r.redis_cpu_us_per_request = None;
        r.generator_cpu_us_per_request = None;
        r.token_bytes = None;
        r.server_peak_rss_bytes = None;
        r.login = None;
    }
    for s in &mut results.sweeps {
        s.knee_rps = None;
    }
    for r in &mut results.revocation {
        r.window_ms = None;
        r.window_answer_ms = None;
        r.expected_bound_ms = None;
        r.revoke_after_login_ms = None;
    }
    for o in &mut results.outage {
        o.recovery_ms = None;
        o.revocations_lost = None;
    }
    let nulls = serde_json::to_value(&results).unwrap();
    assert_eq!(nulls["runs"][0]["login"], Value::Null);
    assert_eq!(nulls["revocation"][0]["window_ms"], Value::Null);
    assert_eq!(nulls["revocation"][0]["expected_bound_ms"], Value::Null);
    assert_eq!(nulls["outage"][0]["recovery_ms"], Value::Null);
    assert_eq!(nulls["outage"][0]["revocations_lost"], Value::Null);
    assert_valid(&validator, &nulls, "the smoke results with every inner Option set to None");
    results.calibration = None;
    assert_valid(&validator, &serde_json::to_value(&results).unwrap(), "the smoke results without calibration");

    // A future minor addition is allowed at the top level and in records.
    let extra = mutate(&doc, "/future_field", Some(Value::from(1)));
    let extra = mutate(&extra, "/runs/0/future_field", Some(Value::from("x")));
    let extra = mutate(&extra, "/revocation/0/future_field", Some(Value::from("x")));
    let extra = mutate(&extra, "/outage/0/future_field", Some(Value::from("x")));
    assert_valid(&validator, &extra, "the smoke results with unknown extra fields");

    // Files written before redis_bytes_per_request was recorded lack it.
    let older = mutate(&doc, "/runs/0/redis_bytes_per_request", None);
    assert_valid(&validator, &older, "the smoke results without runs[0].redis_bytes_per_request");

    let broken: Vec<(&str, Value)> = vec![
        ("runs[0].throughput_rps removed", mutate(&doc, "/runs/0/throughput_rps", None)),
        ("schema_version 1", mutate(&doc, "/schema_version", Some(Value::from(1)))),
        ("schema_version 2", mutate(&doc, "/schema_version", Some(Value::from(2)))),
        ("schema_version 3", mutate(&doc, "/schema_version", Some(Value::from(3)))),
        ("schema_version 4", mutate(&doc, "/schema_version", Some(Value::from(4)))),
        ("schema_version 5", mutate(&doc, "/schema_version", Some(Value::from(5)))),
        ("schema_version 6", mutate(&doc, "/schema_version", Some(Value::from(6)))),
        ("schema_version 7", mutate(&doc, "/schema_version", Some(Value::from(7)))),
        ("schema_version 8", mutate(&doc, "/schema_version", Some(Value::from(8)))),
        ("schema_version 10", mutate(&doc, "/schema_version", Some(Value::from(10)))),
        ("schema_version \"9\"", mutate(&doc, "/schema_version", Some(Value::from("9")))),
        ("noise removed (a version 6 document)", mutate(&doc, "/noise", None)),
        ("runs[0].latency_valid removed", mutate(&doc, "/runs/0/latency_valid", None)),
        ("runs[0].latency_valid null", mutate(&doc, "/runs/0/latency_valid", Some(Value::Null))),
        ("runs[0].outcomes with an unknown class", mutate(&doc, "/runs/0/outcomes/6xx", Some(Value::from(1)))),
        ("runs[0].outcomes count negative", mutate(&doc, "/runs/0/outcomes/timeout", Some(Value::from(-1)))),
        ("runs[0].dropped negative", mutate(&doc, "/runs/0/dropped", Some(Value::from(-1)))),
        ("runs[0].dropped removed", mutate(&doc, "/runs/0/dropped", None)),
        ("runs[0].pacer_lag_us a number", mutate(&doc, "/runs/0/pacer_lag_us", Some(Value::from(3.0)))),
        ("runs[0].generator_busy negative", mutate(&doc, "/runs/0/generator_busy", Some(Value::from(-0.5)))),
        ("outage[0].dropped removed", mutate(&doc, "/outage/0/dropped", None)),
        ("outage[0].timeline[0].dropped removed", mutate(&doc, "/outage/0/timeline/0/dropped", None)),
        ("scale removed", mutate(&doc, "/scale", None)),
        ("runs[0].keyspace_entries a string", mutate(&doc, "/runs/0/keyspace_entries", Some(Value::from("many")))),
        ("rtt_injection removed", mutate(&doc, "/rtt_injection", None)),
        ("runs[0].redis_rtt_ms a string", mutate(&doc, "/runs/0/redis_rtt_ms", Some(Value::from("1ms")))),
        (
            "runs[0].redis_bytes_per_request negative",
            mutate(&doc, "/runs/0/redis_bytes_per_request", Some(Value::from(-1.0))),
        ),
        ("runs[0].claims_padding_bytes negative", mutate(&doc, "/runs/0/claims_padding_bytes", Some(Value::from(-1)))),
        ("environment removed", mutate(&doc, "/environment", None)),
        ("runs[0].latency_us.p99 removed", mutate(&doc, "/runs/0/latency_us/p99", None)),
        ("runs[0].latency_us.p99 a string", mutate(&doc, "/runs/0/latency_us/p99", Some(Value::from("fast")))),
        ("runs[0].latency_us with an unknown key", mutate(&doc, "/runs/0/latency_us/p42", Some(Value::from(1.0)))),
        ("runs[0].throughput_rps.median null", mutate(&doc, "/runs/0/throughput_rps/median", Some(Value::Null))),
        ("runs[0].scenario unknown", mutate(&doc, "/runs/0/scenario", Some(Value::from("warmup")))),
        ("runs[0].schedule unknown", mutate(&doc, "/runs/0/schedule", Some(Value::from("burst")))),
        ("runs[0].latency_basis unknown", mutate(&doc, "/runs/0/latency_basis", Some(Value::from("wall")))),
        ("runs[0].requests negative", mutate(&doc, "/runs/0/requests", Some(Value::from(-1)))),
        ("runs[0].errors fractional", mutate(&doc, "/runs/0/errors", Some(Value::from(0.5)))),
        ("runs[0].histogram null", mutate(&doc, "/runs/0/histogram", Some(Value::Null))),
        ("runs[0].generator_bound null", mutate(&doc, "/runs/0/generator_bound", Some(Value::Null))),
        ("runs[0].status_counts value a string", mutate(&doc, "/runs/0/status_counts/x", Some(Value::from("1")))),
        ("calibration.engine_rps removed", mutate(&doc, "/calibration/engine_rps", None)),
        ("complete null", mutate(&doc, "/complete", Some(Value::Null))),
        ("runs not an array", mutate(&doc, "/runs", Some(serde_json::json!({})))),
        ("revocation removed (a version 1 document)", mutate(&doc, "/revocation", None)),
        ("revocation not an array", mutate(&doc, "/revocation", Some(serde_json::json!({})))),
        ("revocation[0].kind unknown", mutate(&doc, "/revocation/0/kind", Some(Value::from("bogus")))),
        ("revocation[0].kind in another case", mutate(&doc, "/revocation/0/kind", Some(Value::from("RevokeAll")))),
        ("revocation[0].window_ms a string", mutate(&doc, "/revocation/0/window_ms", Some(Value::from("12")))),
        ("revocation[0].window_ms removed", mutate(&doc, "/revocation/0/window_ms", None)),
        ("revocation[0].trial removed (a version 6 record)", mutate(&doc, "/revocation/0/trial", None)),
        ("revocation[0].trial negative", mutate(&doc, "/revocation/0/trial", Some(Value::from(-1)))),
        ("revocation[0].window_answer_ms removed", mutate(&doc, "/revocation/0/window_answer_ms", None)),
        (
            "revocation[0].window_answer_ms a string",
            mutate(&doc, "/revocation/0/window_answer_ms", Some(Value::from("1"))),
        ),
        ("revocation[0].expected_bound_ms removed", mutate(&doc, "/revocation/0/expected_bound_ms", None)),
        (
            "revocation[0].expected_bound_ms negative",
            mutate(&doc, "/revocation/0/expected_bound_ms", Some(Value::from(-1.0))),
        ),
        ("revocation[0].revoke_after_login_ms removed", mutate(&doc, "/revocation/0/revoke_after_login_ms", None)),
        ("revocation[0].instances 0", mutate(&doc, "/revocation/0/instances", Some(Value::from(0)))),
        ("revocation[0].instances 3", mutate(&doc, "/revocation/0/instances", Some(Value::from(3)))),
        ("revocation[0].operation_status 42", mutate(&doc, "/revocation/0/operation_status", Some(Value::from(42)))),
        ("revocation[0].supported null", mutate(&doc, "/revocation/0/supported", Some(Value::Null))),
        (
            "revocation[0].accepted_after_ack negative",
            mutate(&doc, "/revocation/0/accepted_after_ack", Some(Value::from(-1))),
        ),
        ("revocation[0].probes fractional", mutate(&doc, "/revocation/0/probes", Some(Value::from(1.5)))),
        ("revocation[0].ack_ms null", mutate(&doc, "/revocation/0/ack_ms", Some(Value::Null))),
        ("revocation[0].timeline removed", mutate(&doc, "/revocation/0/timeline", None)),
        (
            "revocation[0].timeline[0].outcome unknown",
            mutate(&doc, "/revocation/0/timeline/0/outcome", Some(Value::from("maybe"))),
        ),
        ("revocation[0].timeline[0].probes 0", mutate(&doc, "/revocation/0/timeline/0/probes", Some(Value::from(0)))),
        ("revocation[0].timeline[0].from_ms removed", mutate(&doc, "/revocation/0/timeline/0/from_ms", None)),
        (
            "revocation[0].accepted_before_revoke removed (a version 2 record)",
            mutate(&doc, "/revocation/0/accepted_before_revoke", None),
        ),
        (
            "revocation[0].accepted_before_revoke negative",
            mutate(&doc, "/revocation/0/accepted_before_revoke", Some(Value::from(-1))),
        ),
        ("outage removed (a version 2 document)", mutate(&doc, "/outage", None)),
        ("outage not an array", mutate(&doc, "/outage", Some(serde_json::json!({})))),
        ("outage[0].fault unknown", mutate(&doc, "/outage/0/fault", Some(Value::from("meltdown")))),
        (
            "outage[0].fault in a spelling the tool never writes",
            mutate(&doc, "/outage/0/fault", Some(Value::from("kill_empty"))),
        ),
        ("outage[0].persistence unknown", mutate(&doc, "/outage/0/persistence", Some(Value::from("rdb")))),
        (
            "outage[0].availability_during a string",
            mutate(&doc, "/outage/0/availability_during", Some(Value::from("0.5"))),
        ),
        (
            "outage[0].availability_before above 1",
            mutate(&doc, "/outage/0/availability_before", Some(Value::from(1.5))),
        ),
        ("outage[0].availability_after null", mutate(&doc, "/outage/0/availability_after", Some(Value::Null))),
        ("outage[0].recovery_ms removed", mutate(&doc, "/outage/0/recovery_ms", None)),
        ("outage[0].revocations_lost negative", mutate(&doc, "/outage/0/revocations_lost", Some(Value::from(-1)))),
        ("outage[0].sessions_lost fractional", mutate(&doc, "/outage/0/sessions_lost", Some(Value::from(0.5)))),
        ("outage[0].revoked_accepted null", mutate(&doc, "/outage/0/revoked_accepted", Some(Value::Null))),
        ("outage[0].timeline removed", mutate(&doc, "/outage/0/timeline", None)),
        ("outage[0].timeline[0].ok removed", mutate(&doc, "/outage/0/timeline/0/ok", None)),
        ("outage[0].timeline[0].timeout negative", mutate(&doc, "/outage/0/timeline/0/timeout", Some(Value::from(-1)))),
        ("outage[0].timeline[0] with an unknown key", mutate(&doc, "/outage/0/timeline/0/late", Some(Value::from(1)))),
    ];
    for (what, doc) in &broken {
        assert!(!validator.is_valid(doc), "the schema accepts a document with {what}");
        assert!(!errors(&validator, doc).is_empty(), "{what}: rejected but no error reported");
    }
}

/// A document of the current schema with what the smoke suite does not produce: a fixed-rate
/// record whose generator dropped sends (latency invalid, generator-bound) next to a clean one,
/// and an outage with generator drops in its timeline. Built from the committed schema 5
/// fixture (read as version 5, written as the current version), so it needs no measurement.
#[test]
fn rate_records_and_generator_drops_match_the_schema() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    let mut results = authbench::results::load(&fixture).unwrap();
    assert_eq!(results.schema_version, 5);
    results.schema_version = authbench::results::SCHEMA_VERSION;
    let steady = results.steady("jwt").unwrap().clone();
    let rate = |offered: f64, dropped: u64| {
        let mut r = steady.clone();
        r.scenario = authbench::results::Scenario::Rate;
        r.schedule = "open".into();
        r.latency_basis = "intended_send_time".into();
        r.offered_rps = Some(offered);
        r.achieved_rps = Some(offered * 0.99);
        r.dropped = Some(dropped);
        r.latency_valid = dropped == 0;
        r.generator_bound = dropped > 0;
        r.outcomes = [("2xx", 9_900), ("4xx", 0), ("5xx", 0), ("timeout", 0), ("error", 0)]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        r.peak_connections = Some(10);
        r.connection_limit = Some(if dropped > 0 { 10 } else { 1100 });
        r.service_latency_us = Some(r.latency_us);
        r.pacer_lag_us = Some(r.latency_us);
        r.connection_wait_us = Some(r.latency_us);
        r.generator_busy = Some(1.01);
        r
    };
    results.runs.push(rate(1000.0, 0));
    results.runs.push(rate(5000.0, 1234));
    results.outage[0].dropped = 7;
    results.outage[0].timeline[0].dropped = 7;

    let doc = serde_json::to_value(&results).unwrap();
    assert!(doc["runs"].as_array().unwrap().iter().all(|r| r.get("dropped_sends").is_none()));
    let validator = validator();
    assert_valid(&validator, &doc, "the fixture as the current schema with rate records");
    let last = doc["runs"].as_array().unwrap().len() - 1;
    assert_eq!(doc["runs"][last]["scenario"], "rate");
    for (what, broken) in [
        (
            "a rate record with a scenario in another case",
            mutate(&doc, &format!("/runs/{last}/scenario"), Some(Value::from("Rate"))),
        ),
        ("a rate record without outcomes", mutate(&doc, &format!("/runs/{last}/outcomes"), None)),
        ("a rate record without pacer_lag_us", mutate(&doc, &format!("/runs/{last}/pacer_lag_us"), None)),
    ] {
        assert!(!validator.is_valid(&broken), "the schema accepts {what}");
    }
}

/// A schema 7 document whose noise monitor watched windows, one of them repeated (the smoke
/// suite watches none, so its `noise` is null). Built from the committed fixture, so it needs no
/// measurement; broken variants of the account must be refused.
#[test]
fn a_noise_account_matches_the_schema() {
    use authbench::results::{Noise, NoiseSample};
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    let mut results = authbench::results::load(&fixture).unwrap();
    results.schema_version = authbench::results::SCHEMA_VERSION;
    let sample = |label: &str, foreign_cpu: f64, repeated: bool| NoiseSample {
        label: label.into(),
        foreign_cpu,
        steal: 0.002,
        busy: 0.93,
        repeated,
    };
    results.noise = Some(Noise::of(
        0.25,
        vec![
            sample("steady session round 1", 0.71, true),
            sample("steady session round 1", 0.08, false),
            sample("steady jwt round 1", 0.02, false),
        ],
    ));
    let doc = serde_json::to_value(&results).unwrap();
    assert_eq!(doc["noise"]["windows"], 3);
    assert_eq!(doc["noise"]["repeated"], 1);
    let validator = validator();
    assert_valid(&validator, &doc, "the fixture with a noise account");
    results.noise = None;
    assert_valid(&validator, &serde_json::to_value(&results).unwrap(), "the fixture with noise null");
    let extra = mutate(&doc, "/noise/per_window/0/future_field", Some(Value::from(1)));
    assert_valid(&validator, &extra, "a noise sample with an unknown extra field");

    for (what, broken) in [
        ("noise.windows negative", mutate(&doc, "/noise/windows", Some(Value::from(-1)))),
        ("noise.repeated fractional", mutate(&doc, "/noise/repeated", Some(Value::from(0.5)))),
        ("noise.max_foreign_cpu negative", mutate(&doc, "/noise/max_foreign_cpu", Some(Value::from(-0.1)))),
        ("noise.max_steal above 1", mutate(&doc, "/noise/max_steal", Some(Value::from(1.5)))),
        ("noise.threshold removed", mutate(&doc, "/noise/threshold", None)),
        ("noise.per_window not an array", mutate(&doc, "/noise/per_window", Some(serde_json::json!({})))),
        ("noise.per_window[0].label removed", mutate(&doc, "/noise/per_window/0/label", None)),
        ("noise.per_window[0].busy above 1", mutate(&doc, "/noise/per_window/0/busy", Some(Value::from(1.2)))),
        ("noise.per_window[0].steal null", mutate(&doc, "/noise/per_window/0/steal", Some(Value::Null))),
        (
            "noise.per_window[0].foreign_cpu a string",
            mutate(&doc, "/noise/per_window/0/foreign_cpu", Some(Value::from("0.7"))),
        ),
        ("noise.per_window[0].repeated a number", mutate(&doc, "/noise/per_window/0/repeated", Some(Value::from(1)))),
    ] {
        assert!(!validator.is_valid(&broken), "the schema accepts {what}");
    }
}

/// A population record (the smoke suite measures none): what the clients added and the
/// store commands per user request, with the figure the design's rules expect. Built from the
/// committed fixture, so it needs no measurement; broken variants must be refused.
#[test]
fn a_population_record_matches_the_schema() {
    use authbench::results::{Estimate, PopulationRun, Scenario};
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    let mut results = authbench::results::load(&fixture).unwrap();
    results.schema_version = authbench::results::SCHEMA_VERSION;
    let mut r = results.steady("session").unwrap().clone();
    r.scenario = Scenario::Population;
    let calls = |refresh: u64| {
        [("refresh", refresh), ("login", 0), ("retry", 0)].into_iter().map(|(k, n)| (k.to_owned(), n)).collect()
    };
    r.population = Some(PopulationRun {
        users: 10_000,
        user_rate_rps: 1.0,
        access_ttl_s: 10.0,
        requests_per_lifetime: 10.0,
        user_requests: 30_000,
        extra_calls: calls(2_700),
        extra_calls_failed: calls(0),
        extra_call_latency_us: Default::default(),
        redis_commands_per_user_request: Estimate::of(&[0.35, 0.37, 0.36]),
        expected_redis_commands_per_user_request: 4.0 / 11.0,
        expected_basis: "4.00 commands per refresh / (1 + requests per lifetime)".into(),
        grace_s: None,
        seeding: "seeded".into(),
    });
    results.runs.push(r);
    let doc = serde_json::to_value(&results).unwrap();
    let last = doc["runs"].as_array().unwrap().len() - 1;
    assert_eq!(doc["runs"][last]["scenario"], "population");
    assert_eq!(doc["runs"][last]["extra_calls"]["refresh"], 2_700);
    let validator = validator();
    assert_valid(&validator, &doc, "the fixture with a population record");
    let at = |field: &str| format!("/runs/{last}/{field}");
    for (what, broken) in [
        ("a population record without users", mutate(&doc, &at("users"), None)),
        ("a population record without extra_calls", mutate(&doc, &at("extra_calls"), None)),
        ("users 0", mutate(&doc, &at("users"), Some(Value::from(0)))),
        ("a negative refresh count", mutate(&doc, &at("extra_calls/refresh"), Some(Value::from(-1)))),
        ("requests_per_lifetime a string", mutate(&doc, &at("requests_per_lifetime"), Some(Value::from("ten")))),
        (
            "an expected figure below zero",
            mutate(&doc, &at("expected_redis_commands_per_user_request"), Some(Value::from(-0.1))),
        ),
    ] {
        assert!(!validator.is_valid(&broken), "the schema accepts {what}");
    }
}

/// Outage records of the PostgreSQL variants (the smoke suite measures none): the hang and the
/// kill with crash recovery, on a logged table (`wal`) and an unlogged one. Built from the
/// committed fixture, so it needs no measurement; a fault or persistence outside the schema's
/// words must be refused.
#[test]
fn postgres_outage_records_match_the_schema() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json");
    let mut results = authbench::results::load(&fixture).unwrap();
    results.schema_version = authbench::results::SCHEMA_VERSION;
    let session = results.outage.iter().find(|o| o.variant == "session").unwrap().clone();
    for (variant, persistence) in [("session-pg", "wal"), ("session-pg-unlogged", "unlogged")] {
        for fault in [Fault::Hang, Fault::KillRecover] {
            let mut o = session.clone();
            o.variant = variant.into();
            o.fault = fault;
            o.persistence = persistence.into();
            results.outage.push(o);
        }
    }
    let doc = serde_json::to_value(&results).unwrap();
    let last = doc["outage"].as_array().unwrap().len() - 1;
    assert_eq!(doc["outage"][last]["fault"], "kill_restart_recovery");
    assert_eq!(doc["outage"][last]["persistence"], "unlogged");
    let validator = validator();
    assert_valid(&validator, &doc, "the fixture with PostgreSQL outage records");
    let back: Results = serde_json::from_value(doc.clone()).unwrap();
    assert_eq!(back.outage("session-pg", Fault::KillRecover).unwrap().persistence, "wal");
    let at = |field: &str| format!("/outage/{last}/{field}");
    for (what, broken) in [
        ("an unknown fault", mutate(&doc, &at("fault"), Some(Value::from("kill_restart_wal")))),
        ("an unknown persistence", mutate(&doc, &at("persistence"), Some(Value::from("logged")))),
    ] {
        assert!(!validator.is_valid(&broken), "the schema accepts {what}");
    }
}
