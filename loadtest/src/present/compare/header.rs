//! The head of a comparison: what each run is, and which facts of the environment and of the
//! method differ between them.

use std::fmt::Write;

use super::rows::union;
use crate::results::{self, Method, Results};

fn redis_version(env: &results::Environment) -> String {
    match &env.redis_server {
        Some(text) => {
            text.split_whitespace().find_map(|w| w.strip_prefix("v=")).map_or_else(|| text.clone(), str::to_owned)
        }
        None => "none".to_owned(),
    }
}

fn short_commit(commit: Option<&str>) -> String {
    match commit {
        Some(c) => {
            let (hash, dirty) = c.strip_suffix("-dirty").map_or((c, ""), |h| (h, "-dirty"));
            format!("{}{dirty}", hash.get(..12).unwrap_or(hash))
        }
        None => "unknown".to_owned(),
    }
}

pub(super) fn describe(out: &mut String, letter: &str, label: &str, r: &Results) {
    let env = &r.environment;
    let state = if r.complete {
        "complete"
    } else if r.interrupted {
        "INTERRUPTED"
    } else {
        "INCOMPLETE"
    };
    let suite = match &r.target {
        Some(t) => format!("{} {t}", r.suite),
        None => r.suite.clone(),
    };
    let _ = writeln!(out, "{letter}  {label}");
    let _ = writeln!(
        out,
        "   run {}, suite {suite}, {state}; {}, {} cores; commit {}; redis {}",
        r.run_id,
        env.cpu_model,
        env.cores,
        short_commit(env.git_commit.as_deref()),
        redis_version(env),
    );
}

/// Facts of the environment that differ, each with what A and B had.
pub(super) fn environment_differences(a: &Results, b: &Results) -> Vec<(&'static str, String)> {
    let (ea, eb) = (&a.environment, &b.environment);
    let mut out = Vec::new();
    let mut fact = |name: &'static str, x: String, y: String| {
        if x != y {
            out.push((name, format!("{x} → {y}")));
        }
    };
    fact("machine", format!("{}, {} cores", ea.cpu_model, ea.cores), format!("{}, {} cores", eb.cpu_model, eb.cores));
    fact("os", ea.os.clone(), eb.os.clone());
    fact("kernel", ea.kernel.clone(), eb.kernel.clone());
    fact("rustc", ea.rustc.clone(), eb.rustc.clone());
    fact("redis", redis_version(ea), redis_version(eb));
    fact("wrk", ea.wrk.clone().unwrap_or_else(|| "none".into()), eb.wrk.clone().unwrap_or_else(|| "none".into()));
    fact("authbench", ea.authbench_version.clone(), eb.authbench_version.clone());
    let asked = |p: &results::Placement| format!("server {}, generator {}, redis {}", p.server, p.generator, p.redis);
    fact("placement", asked(&a.placement), asked(&b.placement));
    let observed =
        |p: &results::Placement| p.observed.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    fact("CPUs seen", observed(&a.placement), observed(&b.placement));
    let names = union(ea.crates.keys().collect(), eb.crates.keys().collect());
    let crates: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let (x, y) = (ea.crates.get(name), eb.crates.get(name));
            (x != y).then(|| {
                let show = |v: Option<&String>| v.map_or_else(|| "absent".to_owned(), Clone::clone);
                format!("{name} {} → {}", show(x), show(y))
            })
        })
        .collect();
    if !crates.is_empty() {
        out.push(("crates", crates.join(", ")));
    }
    out
}

/// Settings of the method (and the suite) that differ, as `name A → B`.
pub(super) fn method_differences(a: &Results, b: &Results) -> Vec<String> {
    let (ma, mb) = (&a.method, &b.method);
    let mut out = Vec::new();
    let mut setting = |name: &str, x: String, y: String| {
        if x != y {
            out.push(format!("{name} {x} → {y}"));
        }
    };
    setting("suite", a.suite.clone(), b.suite.clone());
    setting("repetitions", ma.repetitions.to_string(), mb.repetitions.to_string());
    setting("server instances", ma.instances.to_string(), mb.instances.to_string());
    let redis = |m: &Method| {
        m.redis_cluster
            .as_ref()
            .map_or_else(|| "one redis-server".to_owned(), |c| format!("cluster of {} masters", c.masters.len()))
    };
    setting("Redis", redis(ma), redis(mb));
    setting("steady duration", format!("{} s", ma.steady_duration_s), format!("{} s", mb.steady_duration_s));
    setting("warm-up", format!("{} s", ma.warmup_s), format!("{} s", mb.warmup_s));
    setting("connections", ma.connections.to_string(), mb.connections.to_string());
    setting("generator threads", ma.generator_threads.to_string(), mb.generator_threads.to_string());
    setting("sweep fractions", format!("{:?}", ma.sweep_fractions), format!("{:?}", mb.sweep_fractions));
    setting("sweep step", format!("{} s", ma.sweep_step_s), format!("{} s", mb.sweep_step_s));
    setting("login duration", format!("{} s", ma.login_duration_s), format!("{} s", mb.login_duration_s));
    setting("login users", ma.login_users.to_string(), mb.login_users.to_string());
    setting("request timeout", format!("{} s", ma.request_timeout_s), format!("{} s", mb.request_timeout_s));
    out
}
