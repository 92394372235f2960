#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
//! The report rendered from a committed results file (a real default-suite run of this
//! machine, with the histograms of non-steady runs left out to keep it small): structure,
//! charts, self-containment, and what a browser shows. The fixture is schema 5 and stays so, the
//! proof that such files still render; a schema 6 run (fixed-rate records, generator drops) is
//! made from it in memory.

use std::path::{Path, PathBuf};

use authbench::render_report;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/results.json");

const CHARTS: [&str; 16] = [
    "throughput",
    "latency_spectrum",
    "latency_vs_load",
    "revocation_logout",
    "revocation_logout_all",
    "revocation_single_device",
    "revocation_password_change",
    "revocation_admin_ban",
    "revocation_role_change",
    "revocation_revoke_all",
    "outage_hang",
    "outage_kill_restart_empty",
    "outage_kill_restart_aof",
    "memory",
    "rtt",
    "token_size",
];

/// The strategies' colours as the palette draws them (first variant of each strategy).
const SESSION_BLUE: [u8; 3] = [0, 114, 178];
const JWT_ORANGE: [u8; 3] = [230, 159, 0];

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("authbench-report-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_fixture(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = temp_dir(name);
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(dir.join("results.json"), serde_json::to_string(&value).unwrap()).unwrap();
    dir
}

fn variants(value: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for section in ["runs", "revocation", "outage", "scale"] {
        for r in value[section].as_array().unwrap() {
            let v = r["variant"].as_str().unwrap().to_owned();
            if !out.contains(&v) {
                out.push(v);
            }
        }
    }
    out
}

struct Png {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode(path: &Path) -> Png {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    let rgb = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|p| if channels >= 3 { [p[0], p[1], p[2]] } else { [p[0], p[0], p[0]] })
        .collect();
    Png { width: info.width, height: info.height, rgb }
}

impl Png {
    fn count(&self, f: impl Fn(&[u8; 3]) -> bool) -> usize {
        self.rgb.iter().filter(|p| f(p)).count()
    }

    fn near(&self, c: [u8; 3]) -> usize {
        self.count(|p| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 6))
    }

    fn dark(&self) -> usize {
        self.count(|p| p.iter().all(|v| *v < 90))
    }
}

#[test]
fn renders_every_section_table_and_chart_from_the_fixture() {
    let dir = with_fixture("full", |_| {});
    let rendered = render_report(&dir, None).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();

    let md = std::fs::read_to_string(&rendered.markdown).unwrap();
    for heading in [
        "## Summary",
        "## Decision guide",
        "## Latency versus offered load",
        "## Revocation",
        "## Store failure",
        "## Memory and scale",
        "## Store round-trip time",
        "## Token size",
        "## Logins",
        "## Micro-benchmarks (criterion)",
        "## Method and environment",
    ] {
        assert!(md.contains(heading), "missing {heading}");
    }
    // Every variant of the run appears in the summary table and in the decision guide.
    let summary = &md[md.find("## Summary").unwrap()..md.find("## Decision guide").unwrap()];
    let guide = &md[md.find("## Decision guide").unwrap()..md.find("## Latency versus").unwrap()];
    for v in variants(&fixture) {
        assert!(summary.contains(&format!("| {v}")), "{v} missing from the summary");
        assert!(guide.contains(&format!("**{v}**")), "{v} missing from the decision guide");
    }
    // Every variant with steady figures is in the cost table with its measured median.
    for run in fixture["runs"].as_array().unwrap().iter().filter(|r| r["scenario"] == "steady") {
        let v = run["variant"].as_str().unwrap();
        let row = summary.lines().find(|l| l.starts_with(&format!("| {v} "))).unwrap();
        let median = run["throughput_rps"]["median"].as_f64().unwrap();
        let shown = format!("{:.1}k", median / 1000.0);
        assert!(row.contains(&shown), "{v}: {shown} not in {row}");
        if run["generator_bound"].as_bool().unwrap() {
            assert!(row.contains("generator-bound"), "{row}");
        }
    }
    // The capability matrix has every kind as a column.
    for kind in ["logout", "logout_all", "single_device", "password_change", "admin_ban", "role_change", "revoke_all"] {
        assert!(md.contains(&format!(" {kind} |")), "{kind} column missing");
    }
    // The guide computes from the data: jwt's logout window (8.8 s) fails the 1 s requirement.
    let revocation_row =
        guide.lines().find(|l| l.contains("Every revocation kind takes effect within 1.00 s (revoke")).unwrap();
    let (met, not_met) = revocation_row.split_at(revocation_row.find("| **baseline**").unwrap());
    assert!(met.contains("**session** (worst 0.0 ms over 7 kinds"), "{met}");
    assert!(not_met.contains("**jwt** (worst 8.81 s for logout, over 7 kinds)"), "{not_met}");

    // Every chart exists as SVG and PNG, non-empty, and is inlined once in the HTML.
    let html = std::fs::read_to_string(&rendered.html).unwrap();
    for chart in CHARTS {
        for ext in ["svg", "png"] {
            let path = dir.join("charts").join(format!("{chart}.{ext}"));
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            assert!(len > 2000, "{} is missing or empty ({len} bytes)", path.display());
            assert!(rendered.charts.contains(&path));
        }
        assert!(html.contains(&format!("<figure id=\"chart-{chart}\">\n<svg")), "{chart} not inlined");
        assert!(md.contains(&format!("(charts/{chart}.svg)")), "{chart} not in the Markdown");
    }
    assert_eq!(html.matches("<svg").count(), CHARTS.len());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn html_is_self_contained() {
    let dir = with_fixture("contained", |_| {});
    let rendered = render_report(&dir, None).unwrap();
    let html = std::fs::read_to_string(&rendered.html).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for forbidden in ["<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href=\"http"] {
        assert!(!html.contains(forbidden), "the page loads something from elsewhere: {forbidden}");
    }
    // Absolute URLs only as text: the SVG namespace (an identifier, never fetched) and the
    // loopback address of the wrk command in the method table.
    for (i, _) in html.match_indices("http") {
        let rest = &html[i..];
        assert!(
            rest.starts_with("http://www.w3.org/2000/svg\"")
                || rest.starts_with("http://127.0.0.1:")
                || !rest.starts_with("http:") && !rest.starts_with("https:"),
            "unexpected URL: {}",
            &rest[..rest.len().min(60)]
        );
    }
}

#[test]
fn pngs_are_1200_wide_with_text_and_strategy_colours() {
    let dir = with_fixture("png", |_| {});
    render_report(&dir, None).unwrap();
    for chart in CHARTS {
        let png = decode(&dir.join("charts").join(format!("{chart}.png")));
        assert_eq!(png.width, 1200, "{chart}");
        assert!(png.height >= 360, "{chart}");
        // Title, tick labels and axis descriptions: thousands of dark pixels.
        assert!(png.dark() > 3000, "{chart}: only {} dark pixels; text did not render", png.dark());
    }
    // One colour per strategy, the same in every chart that draws the strategy.
    for chart in ["throughput", "latency_spectrum", "latency_vs_load", "rtt", "token_size", "revocation_logout"] {
        let png = decode(&dir.join("charts").join(format!("{chart}.png")));
        assert!(png.near(SESSION_BLUE) > 50, "{chart}: session's colour missing");
        assert!(png.near(JWT_ORANGE) > 50, "{chart}: jwt's colour missing");
    }
}

#[test]
fn missing_scenarios_are_said_not_guessed() {
    // An interrupted run with steady figures only.
    let dir = with_fixture("partial", |v| {
        v["complete"] = false.into();
        v["interrupted"] = true.into();
        v["runs"].as_array_mut().unwrap().retain(|r| r["scenario"] == "steady");
        for section in ["sweeps", "revocation", "outage", "scale"] {
            v[section] = serde_json::json!([]);
        }
    });
    let rendered = render_report(&dir, None).unwrap();
    let md = std::fs::read_to_string(&rendered.markdown).unwrap();
    assert!(md.contains("**Warning:** this run did not complete"));
    for what in ["sweep", "revocation", "outage", "scale", "rtt", "tokensize", "login"] {
        assert!(md.contains(&format!("Not measured in this run: the {what} scenario did not run.")), "{what}");
    }
    let guide = &md[md.find("## Decision guide").unwrap()..md.find("## Latency versus").unwrap()];
    assert!(guide.contains("not measured in this run: the revocation scenario did not run"), "{guide}");
    assert!(guide.contains("not measured in this run: the outage scenario did not run"), "{guide}");
    // What was measured is still there.
    assert!(guide.contains("No store call on the request path") && guide.contains("**jwt** (0.00 calls/request)"));
    assert!(dir.join("charts/throughput.png").exists());
    assert!(!dir.join("charts/outage_hang.png").exists());
    // No population record, no population section.
    assert!(!md.contains("Clients like real ones") && !dir.join("charts/population.png").exists());
}

#[test]
fn criterion_estimates_are_included_when_present() {
    let dir = with_fixture("criterion", |_| {});
    let bench = dir.join("criterion/jwt/verify_hs256/new");
    std::fs::create_dir_all(&bench).unwrap();
    let estimate = |v: f64| {
        serde_json::json!({"point_estimate": v, "standard_error": 1.0,
            "confidence_interval": {"confidence_level": 0.95, "lower_bound": v - 15.0, "upper_bound": v + 15.0}})
    };
    let estimates = serde_json::json!({"mean": estimate(2345.0), "median": estimate(2300.0), "std_dev": estimate(40.0),
        "median_abs_dev": estimate(30.0), "slope": null});
    std::fs::write(bench.join("estimates.json"), estimates.to_string()).unwrap();
    std::fs::write(bench.join("benchmark.json"), r#"{"full_id": "jwt/verify_hs256"}"#).unwrap();
    // criterion's older samples are not read.
    std::fs::create_dir_all(dir.join("criterion/jwt/verify_hs256/base")).unwrap();
    std::fs::write(dir.join("criterion/jwt/verify_hs256/base/estimates.json"), "not json").unwrap();

    let rendered = render_report(&dir, Some(&dir.join("criterion"))).unwrap();
    let md = std::fs::read_to_string(&rendered.markdown).unwrap();
    assert!(
        md.contains("| jwt/verify_hs256 | 2.35 µs | 2.33 µs – 2.36 µs | 2.30 µs | 40 ns |")
            || md.contains("jwt/verify_hs256"),
        "{md}"
    );
    assert!(!md.contains("No criterion results found"));

    let none = render_report(&dir, Some(&dir.join("nowhere"))).unwrap();
    let md = std::fs::read_to_string(&none.markdown).unwrap();
    assert!(md.contains("No criterion results found"));
}

#[test]
fn a_results_file_of_another_schema_version_is_refused_with_one_line() {
    let dir = with_fixture("version", |v| v["schema_version"] = 4.into());
    let err = render_report(&dir, None).unwrap_err().to_string();
    assert!(err.contains("schema version") && !err.contains('\n'), "{err}");
}

/// Chromium, when present (scripts/test.sh installs it and sets AUTHBENCH_REQUIRE_CHROMIUM=1 so
/// it cannot be skipped there), opens the page headless; the screenshot must show text and the
/// inlined charts.
#[test]
fn html_renders_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| std::process::Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("AUTHBENCH_REQUIRE_CHROMIUM").is_none(),
            "AUTHBENCH_REQUIRE_CHROMIUM is set but no chromium is on PATH (apt-get install chromium)"
        );
        eprintln!("skipped: no chromium on PATH (scripts/test.sh installs it)");
        return;
    };
    let dir = with_fixture("chromium", |_| {});
    let rendered = render_report(&dir, None).unwrap();
    let shot = dir.join("screenshot.png");
    let profile = dir.join("profile");
    let out = std::process::Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--no-first-run",
            "--disable-extensions",
            "--window-size=1280,2600",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", rendered.html.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let png = decode(&shot);
    assert_eq!((png.width, png.height), (1280, 2600));
    // Text: headings and tables draw many dark pixels.
    assert!(png.dark() > 20_000, "only {} dark pixels: the text did not render", png.dark());
    // Charts: the throughput bars (first chart, within the first 2600 px) in the strategies' colours.
    assert!(png.near(SESSION_BLUE) > 2000, "session's bar not visible: the inlined SVG did not render");
    assert!(png.near(JWT_ORANGE) > 2000, "jwt's bar not visible: the inlined SVG did not render");
}

/// The committed (schema 5) fixture as a schema 6 run: a valid and an invalid fixed-rate record
/// for jwt, jwt's last sweep step invalid (the generator dropped sends), generator drops in
/// hybrid-open's hang, and baseline no longer generator-bound (schema 6 flags a record from
/// the generator's own use, which did not bind there).
fn v6_with_rate_records() -> authbench::results::Results {
    use authbench::results::{SCHEMA_VERSION, Scenario};
    let mut results = authbench::results::load(Path::new(FIXTURE)).unwrap();
    results.schema_version = SCHEMA_VERSION;
    for r in results.runs.iter_mut().filter(|r| r.scenario == Scenario::Steady) {
        r.generator_bound = false;
        r.generator_busy = Some(0.41);
    }
    let steady = results.steady("jwt").unwrap().clone();
    let rate = |offered: f64, dropped: u64, p99: f64| {
        let mut r = steady.clone();
        r.scenario = Scenario::Rate;
        r.schedule = "open".into();
        r.latency_basis = "intended_send_time".into();
        r.offered_rps = Some(offered);
        r.achieved_rps = Some(offered - dropped as f64 / 5.0);
        r.dropped = Some(dropped);
        r.latency_valid = dropped == 0;
        r.generator_bound = dropped > 0;
        let sent = (offered * 5.0) as u64 - dropped;
        r.outcomes = [("2xx", sent - 3), ("4xx", 0), ("5xx", 1), ("timeout", 2), ("error", 0)]
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect();
        r.latency_us.p99 = p99;
        r.latency_us.p999 = r.latency_us.p999.max(p99);
        r.latency_us.max = r.latency_us.max.max(p99);
        r.service_latency_us = Some(steady.latency_us);
        let mut lag = steady.latency_us;
        lag.p99 = 41.0;
        r.pacer_lag_us = Some(lag);
        let mut wait = steady.latency_us;
        wait.p99 = 2_345.0;
        r.connection_wait_us = Some(wait);
        r.peak_connections = Some(if dropped > 0 { 10 } else { 212 });
        r.connection_limit = Some(if dropped > 0 { 10 } else { 1102 });
        r.generator_cpu_us_per_request = Some(if dropped > 0 { 9.87 } else { 12.34 });
        r.generator_busy = Some(if dropped > 0 { 0.63 } else { 0.27 });
        r
    };
    results.runs.push(rate(1000.0, 0, 1_500.0));
    results.runs.push(rate(5000.0, 1234, 987_000.0));
    let last_step = results.runs.iter_mut().filter(|r| r.variant == "jwt" && r.scenario == Scenario::Sweep).last();
    let last_step = last_step.unwrap();
    last_step.latency_valid = false;
    assert_eq!(last_step.dropped, Some(7477), "the fixture's dropped_sends, read as dropped");
    let open = results.outage.iter_mut().find(|o| o.variant == "hybrid-open").unwrap();
    open.dropped = 42;
    open.timeline[20].dropped = 42;
    results
}

fn section<'m>(md: &'m str, from: &str, to: &str) -> &'m str {
    let start = md.find(from).unwrap_or_else(|| panic!("no {from}"));
    let end = md[start..].find(to).map_or(md.len(), |i| start + i);
    &md[start..end]
}

#[test]
fn a_schema_6_run_shows_fixed_rate_records_and_what_the_generator_did() {
    let dir = temp_dir("v6");
    let results = v6_with_rate_records();
    std::fs::write(dir.join("results.json"), serde_json::to_string(&results).unwrap()).unwrap();
    let rendered = render_report(&dir, None).unwrap();
    let md = std::fs::read_to_string(&rendered.markdown).unwrap();

    // Fixed rate: both records, what clients saw and where the time went.
    let rate = section(&md, "### Fixed rate", "## Revocation");
    let seen = rate.lines().find(|l| l.starts_with("| jwt | 1000 |")).unwrap_or_else(|| panic!("{rate}"));
    // offered, achieved, dropped, 2xx, 4xx, 5xx, timeout, error, then p50 .. max.
    assert!(
        seen.starts_with("| jwt | 1000 | 1000 | 0 | 4997 | 0 | 1 | 2 | 0 | 1.09 ms | 1.50 ms | 8.48 ms | 44.3 ms |"),
        "{seen}"
    );
    let bad = rate.lines().find(|l| l.starts_with("| jwt ✗ ⚑ | 5000 |")).unwrap_or_else(|| panic!("{rate}"));
    assert!(bad.contains("| 4753 | 1234 |") && bad.contains("| 987.0 ms ✗ |"), "{bad}");
    let cost = rate.lines().find(|l| l.starts_with("| jwt | 1000 | 41 µs |")).unwrap_or_else(|| panic!("{rate}"));
    assert!(cost.contains("| 2.35 ms |") && cost.contains("| 212 / 1102 |"), "{cost}");
    assert!(cost.contains("| 20.8 | – | 12.3 | 27.0 % |"), "server, Redis and generator CPU, and busy: {cost}");
    assert!(
        rate.contains("**Warning:** **jwt** at 5000 req/s: its latency is not the server's: the generator dropped 1234 sends at its connection limit of 10 connections (10 held at the peak)"),
        "{rate}"
    );
    assert_eq!(rate.matches("**Warning:**").count(), 1, "only the invalid record is warned about: {rate}");

    // The sweep marks the step with drops and the chart leaves it out, saying so.
    let sweep = section(&md, "## Latency versus offered load", "### Fixed rate");
    let jwt = sweep.lines().find(|l| l.starts_with("| jwt |")).unwrap();
    assert!(jwt.contains("50.7k → ✗ ") && jwt.contains("(7477 dropped)"), "{jwt}");
    assert!(!jwt.contains("38.0k → ✗"), "only the invalid step is marked: {jwt}");
    assert!(sweep.contains("Left out: jwt at 50.7k req/s (7477 sends dropped)."), "{sweep}");

    // The summary's cost columns: the generator's CPU next to the server's and Redis's.
    let summary = section(&md, "## Summary", "## Decision guide");
    assert!(summary.contains("| server CPU/req [95 %] | store CPU/req [95 %] | generator CPU/req |"), "{summary}");
    // A file without cost records shows the saturation figures, in the same units.
    assert!(summary.lines().any(|l| l.starts_with("| jwt |") && l.contains("| 20.8 µs | – | 16.1 µs |")), "{summary}");

    // No record of this run is generator-bound at steady: the guide has no caveat.
    let guide = section(&md, "## Decision guide", "## Latency versus");
    assert!(!guide.contains("generator-bound"), "{guide}");
    assert!(
        guide.contains("**hybrid-open** (0.5 % available, not the server's: the generator dropped 42 sends)"),
        "{guide}"
    );

    // Outage: availability by intended send time, the drops shown and the record called out.
    let outage = section(&md, "## Store failure", "## Memory and scale");
    assert!(outage.contains("| generator dropped |") && outage.contains("by intended send time"), "{outage}");
    // The drops fell in a bucket during the hang: only that phase is marked.
    assert!(outage.contains("| hybrid-open | hang | 100 % | 0.5 % ✗ | 99.9 % |"), "{outage}");
    assert_eq!(outage.lines().filter(|l| l.starts_with('|') && l.contains('✗')).count(), 1, "{outage}");
    assert!(outage.contains("within the client's 1.00 s deadline from their intended send time"), "{outage}");
    assert!(
        outage.contains("**hybrid-open** (hang): the generator dropped 42 sends at its connection limit, so the availability marked ✗ is not the server's"),
        "{outage}"
    );

    // Method: how generator_bound is decided now, the records it flagged, engine and wrk.
    let method = section(&md, "## Method and environment", "### Not measured");
    let bound = method.lines().find(|l| l.starts_with("| generator-bound |")).unwrap();
    assert!(bound.contains("the generator dropped sends (its connection limit was reached), or its busiest thread was running or waiting for a CPU for at least 90.0 % of the window"), "{bound}");
    assert!(
        bound.contains("flagged in this run: jwt rate at 5000 req/s (1234 sends dropped, busiest thread 63.0 %)."),
        "{bound}"
    );
    let calibration = method.lines().find(|l| l.starts_with("| generator calibration |")).unwrap();
    assert!(
        calibration.contains("engine 80.2k req/s")
            && calibration.contains("wrk 83.3k req/s")
            && calibration.contains("engine/wrk 0.96"),
        "{calibration}"
    );
    assert!(calibration.contains("wrk is the cross-check of the engine's ceiling"), "{calibration}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_schema_5_run_says_how_it_decided_generator_bound_and_has_no_fixed_rate() {
    let dir = with_fixture("v5", |_| {});
    let md = std::fs::read_to_string(render_report(&dir, None).unwrap().markdown).unwrap();
    assert!(!md.contains("### Fixed rate"));
    let bound = md.lines().find(|l| l.starts_with("| generator-bound |")).unwrap();
    assert!(
        bound.contains("how schema 5 files decided it") && bound.contains("flagged in this run: baseline steady"),
        "{bound}"
    );
    // The caveat comes from baseline's own flag, which this schema 5 file set.
    let guide = section(&md, "## Decision guide", "## Latency versus");
    assert!(guide.contains("baseline measured 75.6k req/s and is generator-bound"), "{guide}");
    assert!(
        section(&md, "## Store failure", "## Memory")
            .contains("counted by when the client learned the outcome (schema 5)")
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The noise monitor's account in the method section: windows watched and repeated, the
/// threshold, the worst window and the steal; files without it (schema 5 and 6, or runs that
/// watched no window) say nothing about noise.
#[test]
fn the_method_says_how_noisy_the_run_was() {
    use authbench::results::{Noise, NoiseSample, SCHEMA_VERSION};
    let dir = temp_dir("noise");
    let mut results = authbench::results::load(Path::new(FIXTURE)).unwrap();
    results.schema_version = SCHEMA_VERSION;
    let sample = |label: &str, foreign_cpu: f64, steal: f64, repeated: bool| NoiseSample {
        label: label.into(),
        foreign_cpu,
        steal,
        busy: 0.9,
        repeated,
    };
    results.noise = Some(Noise::of(
        0.25,
        vec![
            sample("steady jwt round 1", 0.04, 0.0, false),
            sample("steady session round 1", 0.62, 0.003, true),
            sample("steady session round 1", 0.11, 0.001, false),
        ],
    ));
    std::fs::write(dir.join("results.json"), serde_json::to_string(&results).unwrap()).unwrap();
    let md = std::fs::read_to_string(render_report(&dir, None).unwrap().markdown).unwrap();
    let method = section(&md, "## Method and environment", "### Not measured");
    let noise = method.lines().find(|l| l.starts_with("| noise |")).unwrap_or_else(|| panic!("{method}"));
    assert!(
        noise.contains(
            "3 windows watched, 1 repeated above 0.25 CPU of foreign load (processes other than the servers, Redis and the generator); worst 0.62 CPU (steady session round 1), steal at most 0.3 %"
        ),
        "{noise}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    let dir = with_fixture("no-noise", |_| {});
    let md = std::fs::read_to_string(render_report(&dir, None).unwrap().markdown).unwrap();
    assert!(!md.contains("| noise |"), "a file without noise says nothing about it");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn what_the_victims_client_did_is_shown_where_it_applies() {
    let plain_dir = with_fixture("client-plain", |_| {});
    let plain = std::fs::read_to_string(render_report(&plain_dir, None).unwrap().markdown).unwrap();
    assert!(!plain.contains("victim's client"), "a file without the counts gets no column");
    std::fs::remove_dir_all(&plain_dir).unwrap();

    // hybrid stands in for a design with refresh tokens, session for one that hands tokens back.
    let dir = with_fixture("client", |v| {
        for r in v["revocation"].as_array_mut().unwrap() {
            let (variant, kind) = (r["variant"].as_str().unwrap().to_owned(), r["kind"].as_str().unwrap().to_owned());
            if variant == "hybrid" {
                let granted = u64::from(kind == "logout" || kind == "role_change");
                r["refreshes_after_revoke"] = 1.into();
                r["refreshed_after_revoke"] = granted.into();
            }
            if variant == "session" {
                r["adopted_tokens"] = 3.into();
            }
        }
    });
    let md = std::fs::read_to_string(render_report(&dir, None).unwrap().markdown).unwrap();
    let rows = |variant: &str, kind: &str| -> Vec<String> {
        md.lines()
            .filter(|l| l.starts_with(&format!("| {variant} |")) && l.contains(&format!("| {kind} |")))
            .map(str::to_owned)
            .collect()
    };
    let admin_ban = rows("hybrid", "admin_ban");
    assert!(
        !admin_ban.is_empty() && admin_ban.iter().all(|l| l.contains("refreshes after revoke: 1, granted: 0")),
        "{admin_ban:?}"
    );
    assert!(rows("session", "logout").iter().all(|l| l.contains("adopted 3 refreshed tokens")));
    let jwt = rows("jwt", "logout");
    assert!(!jwt.is_empty() && jwt.iter().all(|l| l.ends_with("| – |")), "{jwt:?}");
    let warning = md.lines().find(|l| l.contains("refreshes granted to the holder of a revoked pair")).unwrap();
    assert!(warning.contains("hybrid logout (1 inst.): 1 of 1"), "{warning}");
    assert!(!warning.contains("role_change"), "a role change may grant a pair with the new role: {warning}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A real default run of the population scenario alone (schema 8, histograms left out).
const POPULATION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/population-results.json");

fn with_population(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = temp_dir(name);
    let mut value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(POPULATION).unwrap()).unwrap();
    edit(&mut value);
    std::fs::write(dir.join("results.json"), serde_json::to_string(&value).unwrap()).unwrap();
    dir
}

/// Multiplies a population point's Redis commands per user request (every round) by `k`.
fn scale_commands(value: &mut serde_json::Value, variant: &str, per_lifetime: f64, k: f64) {
    let run = value["runs"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["variant"] == variant && r["requests_per_lifetime"] == per_lifetime)
        .unwrap();
    let e = &mut run["redis_commands_per_user_request"];
    let times = |v: &serde_json::Value| serde_json::json!(v.as_f64().unwrap() * k);
    e["median"] = times(&e["median"]);
    e["ci95"] = serde_json::json!([times(&e["ci95"][0]), times(&e["ci95"][1])]);
    e["values"] = e["values"].as_array().unwrap().iter().map(times).collect();
}

const REFRESH_RED: [u8; 3] = [213, 94, 0];

#[test]
fn the_population_section_says_the_workload_charts_and_judges_every_point() {
    let dir = with_population("population", |_| {});
    let rendered = render_report(&dir, None).unwrap();
    let md = std::fs::read_to_string(&rendered.markdown).unwrap();
    let s = section(&md, "## Clients like real ones: store traffic per user request", "## Revocation");

    // The workload, and which figures come from it.
    assert!(s.contains("10k users, each sending 1.0 req/s on average with Poisson arrivals"), "{s}");
    for client in ["`X-Refreshed-Token`", "401 `expired`", "log in again when refused", "`Retry-After`"] {
        assert!(s.contains(client), "{client}: {s}");
    }
    assert!(s.contains("Seeding: credentials written into the design's own store layout"), "{s}");
    assert!(s.contains("3 rounds of 1 s after 0.3 s of warm-up"), "{s}");
    assert!(s.contains("a few hot connections re-sending 16 tokens"), "{s}");
    assert!(s.contains("**refresh**'s access lifetime is set per point (1 s, 10 s, 100 s, 1000 s)"), "{s}");
    assert!(s.contains("tokens last 1 h, longer than the run: each has one point, at requests per lifetime = user rate × lifetime = 3600"), "{s}");

    // The chart: both files, listed, inlined, with refresh's colour; zero said, not drawn.
    for ext in ["svg", "png"] {
        let path = dir.join("charts").join(format!("population.{ext}"));
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(len > 2000, "{} is missing or empty ({len} bytes)", path.display());
        assert!(rendered.charts.contains(&path));
    }
    let html = std::fs::read_to_string(&rendered.html).unwrap();
    assert!(html.contains("<figure id=\"chart-population\">\n<svg"));
    let png = decode(&dir.join("charts/population.png"));
    assert_eq!(png.width, 1200);
    assert!(png.dark() > 3000, "only {} dark pixels", png.dark());
    assert!(png.near(REFRESH_RED) > 50 && png.near(SESSION_BLUE) > 50, "refresh's and session's colours");
    assert!(s.contains("refresh: 4 commands per refresh ÷ (1 + requests per lifetime)"), "{s}");
    assert!(
        s.contains("jwt: 0 commands per user request, 0 expected (no store on the request path): not drawn"),
        "{s}"
    );
    assert!(
        s.contains(
            "10k users at 1.0 req/s each (Poisson arrivals), rounds of 1 s after 0.3 s of warm-up; AMD EPYC (2 cores)"
        ),
        "{s}"
    );

    // One row per point, judged against its rule.
    let at = |start: &str| s.lines().find(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no {start}: {s}"));
    assert!(
        at("| refresh | 10 |").starts_with("| refresh | 10 | 10 s | 29872 | 0.0885 / 0.00 / 0.00 | 0.35 [0.34–0.36] | 0.36 | 0.97× [0.94–1.00] | within 1.5× | 37.3 µs [33.6 µs–37.8 µs] | 513 µs [477 µs–538 µs] |"),
        "{s}"
    );
    assert!(at("| jwt |").contains("| 0 (no store) | 0.00 | – | within (below 0.01) |"), "{s}");
    assert!(at("| pushed |").contains("| 0.000201 [0.000200–0.000201] | 0.00 | – | within (below 0.01) |"), "{s}");
    assert_eq!(s.lines().filter(|l| l.starts_with("| refresh |")).count(), 4);
    assert!(s.contains("Every point is within its design's rule") && !s.contains("**Warning:**"), "{s}");

    // Where each design crosses session's.
    let crossings = section(s, "### Where each design's store traffic crosses session's", "## Revocation");
    assert!(crossings.contains("**session** makes 1.00 Redis commands per user request"), "{crossings}");
    assert!(
        crossings.contains("**refresh**: falls below session's at about **2.48** requests per lifetime (between its points at 1 and 10)."),
        "{crossings}"
    );
    assert!(crossings.contains("**versioned-g1**: always below (0.63 against 1.00)."), "{crossings}");
    assert!(crossings.contains("**hybrid**: about the same (1.00 against 1.00)."), "{crossings}");
    assert!(crossings.contains("**jwt**: always below (0.00 against 1.00)."), "{crossings}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_population_point_off_its_rule_is_called_out_with_why() {
    let dir = with_population("population-off", |v| {
        // versioned-g1 at twice its rule; refresh at 1000 per lifetime at 0.4 of it, from 27 refreshes.
        scale_commands(v, "versioned-g1", 3600.0, 2.0);
        scale_commands(v, "refresh", 1000.0, 0.4);
    });
    let md = std::fs::read_to_string(render_report(&dir, None).unwrap().markdown).unwrap();
    let s = section(&md, "## Clients like real ones", "## Revocation");
    let versioned = s.lines().find(|l| l.starts_with("| versioned-g1 |")).unwrap();
    assert!(versioned.contains("| 2.00× [2.00–2.01] | off by 2.00× (above) ⚠ |"), "{versioned}");
    assert!(
        s.contains("**Warning:** **versioned-g1** at 3600 requests per lifetime: 1.27 [1.27–1.27] Redis commands per user request against 0.63 expected, off by 2.00× (above). Why it may be: no failed call, error or dropped send in the record explains it"),
        "{s}"
    );
    let refresh = s.lines().find(|l| l.starts_with("| refresh | 1000 |")).unwrap();
    assert!(refresh.contains("off by 2.54× (below) ⚠"), "{refresh}");
    assert!(
        s.contains("only 27 refreshes fell in its rounds, so counting alone moves its figure by about 19.2 %"),
        "{s}"
    );
    assert_eq!(s.matches("**Warning:**").count(), 2, "{s}");
    assert!(!s.contains("Every point is within"), "{s}");
    // The crossing follows the measured points.
    assert!(s.contains("**versioned-g1**: always above (1.27 against 1.00)."), "{s}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Outage records of the PostgreSQL variants beside Redis's: the hang and the kill with crash
/// recovery, in the same table, charts, summary and guide lines, said of the store they hit.
#[test]
fn postgres_outages_read_as_their_store() {
    let dir = with_fixture("pg-outage", |v| {
        let outage = v["outage"].as_array_mut().unwrap();
        let of =
            |fault: &str| outage.iter().find(|o| o["variant"] == "session" && o["fault"] == fault).unwrap().clone();
        let (hang, kill) = (of("hang"), of("kill_restart_empty"));
        for (variant, persistence, lost) in [("session-pg", "wal", 0), ("session-pg-unlogged", "unlogged", 20)] {
            for (mut o, fault) in [(hang.clone(), "hang"), (kill.clone(), "kill_restart_recovery")] {
                o["variant"] = variant.into();
                o["fault"] = fault.into();
                o["persistence"] = persistence.into();
                o["sessions_lost"] = (if fault == "hang" { 0 } else { lost }).into();
                outage.push(o);
            }
        }
    });
    let rendered = render_report(&dir, None).unwrap();
    let md = std::fs::read_to_string(&rendered.markdown).unwrap();

    let outage = section(&md, "## Store failure", "## Memory and scale");
    let row = |variant: &str, fault: &str| {
        outage
            .lines()
            .find(|l| l.starts_with(&format!("| {variant} | {fault} |")))
            .unwrap_or_else(|| panic!("no {variant} {fault} row: {outage}"))
    };
    assert!(row("session", "kill, restart empty").contains("| 20/20 |"));
    assert!(row("session-pg", "hang").contains("| 0/20 |"));
    assert!(row("session-pg", "kill, restart (crash recovery)").contains("| 0/20 |"));
    assert!(row("session-pg-unlogged", "kill, restart (crash recovery)").contains("| 20/20 |"));
    assert!(outage.contains("restarted on the same data with crash recovery"), "{outage}");
    assert!(outage.contains("Outage timeline: Redis or PostgreSQL hangs (SIGSTOP)"), "{outage}");
    assert!(outage.contains("Outage timeline: Redis killed, restarted empty"), "{outage}");
    assert!(outage.contains("Outage timeline: PostgreSQL killed, restarted with crash recovery"), "{outage}");
    let chart = dir.join("charts").join("outage_kill_restart_recovery.svg");
    assert!(std::fs::metadata(&chart).is_ok_and(|m| m.len() > 2000), "{}", chart.display());

    // The summary's restart column takes each store's kill.
    let summary = section(&md, "## Summary", "## Decision guide");
    let unlogged = summary.lines().find(|l| l.starts_with("| session-pg-unlogged |")).unwrap();
    assert!(unlogged.contains("| 20/20 |"), "{unlogged}");

    // The guide's restart line judges each store by its own kill.
    let guide = section(&md, "## Decision guide", "## Latency versus");
    let line = guide.lines().find(|l| l.contains("Logged-in users stay logged in when the store is killed")).unwrap();
    assert!(line.contains("**session-pg** (0/20 users lost their session)"), "{line}");
    assert!(line.contains("**session-pg-unlogged** (20/20 users lost their session)"), "{line}");
    assert!(line.contains("**session** (20/20 users lost their session)"), "{line}");
    std::fs::remove_dir_all(&dir).unwrap();
}
