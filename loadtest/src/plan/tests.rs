//! The suites' budgets and what each scenario measures.
use super::*;

#[test]
fn suites_fit_their_budgets() {
    let smoke = SuitePlan::new(SuiteName::Smoke).estimated_time();
    let default = SuitePlan::new(SuiteName::Default).estimated_time();
    assert!(smoke < Duration::from_secs(90), "smoke {smoke:?}");
    // Issue budget: the default suite on 2 cores within 15 minutes.
    assert!(default < Duration::from_secs(900), "default {default:?}");
    println!("estimates: smoke {smoke:?}, default {default:?}");
}

#[test]
fn population_rounds_are_long_enough_for_a_hundred_refreshes() {
    let plan = SuitePlan::new(SuiteName::Default);
    let refresh = variant("refresh").unwrap();
    let lifetimes = plan.population_lifetimes(refresh);
    let secs = |d: Duration| d.as_secs();
    assert_eq!(lifetimes.iter().map(|d| secs(*d)).collect::<Vec<_>>(), [1, 10, 100, 1000]);
    // 10 000 users refresh 10 000 / (1000 s + 1 s) times a second: 100 need 10 s, over 3 rounds.
    let windows: Vec<u64> = lifetimes.iter().map(|t| secs(plan.population_window_for(refresh, *t))).collect();
    assert_eq!(windows, [1, 1, 1, 4]);
    let session = variant("session").unwrap();
    assert_eq!(plan.population_lifetimes(session), [Duration::from_secs(3600)]);
    assert_eq!(plan.population_window_for(session, Duration::from_secs(3600)), plan.population_window);
}

#[test]
fn scale_measures_every_design_that_keeps_entries_once() {
    let names =
        |plan: &SuitePlan| plan.variants.iter().filter(|v| plan.measures_scale(v)).map(|v| v.name).collect::<Vec<_>>();
    let expected = ["session", "session-pg", "hybrid", "hybrid-denylist", "refresh", "versioned-g1", "pushed"];
    assert_eq!(names(&SuitePlan::new(SuiteName::Default)), expected);
    assert_eq!(names(&SuitePlan::new(SuiteName::Full)), expected);
    let mut alone = SuitePlan::new(SuiteName::Smoke);
    alone.variants = vec![variant("versioned").unwrap()];
    assert_eq!(names(&alone), ["versioned"]);
    for v in VARIANTS {
        assert_eq!(v.entry_kind().is_some(), v.uses_store(), "{}: a store design has an entry kind", v.name);
    }
}

#[test]
fn each_store_gets_its_own_kills() {
    let full = SuitePlan::new(SuiteName::Full);
    let smoke = SuitePlan::new(SuiteName::Smoke);
    let faults = |plan: &SuitePlan, name: &str| plan.outage_faults(variant(name).unwrap());
    for pg in ["session-pg", "session-pg-unlogged"] {
        assert!(full.measures_outage(variant(pg).unwrap()), "{pg}");
        assert_eq!(faults(&full, pg), [Fault::Hang, Fault::KillRecover], "{pg}");
        assert_eq!(faults(&smoke, pg), [Fault::Hang], "{pg}");
    }
    assert_eq!(faults(&full, "session"), [Fault::Hang, Fault::KillEmpty, Fault::KillAof]);
    assert_eq!(faults(&full, "jwt"), [Fault::Hang]);
}

#[test]
fn strategies_select_variants() {
    let plan = SuitePlan::new(SuiteName::Default);
    let names = |v: Vec<&Variant>| v.iter().map(|v| v.name).collect::<Vec<_>>();
    assert_eq!(names(select_variants(&plan.variants, &["session".into()]).unwrap()), ["session"]);
    let full = SuitePlan::new(SuiteName::Full);
    assert_eq!(names(select_variants(&full.variants, &["versioned".into()]).unwrap()), ["versioned", "versioned-g1"]);
    assert_eq!(names(select_variants(&plan.variants, &["jwt-es256".into()]).unwrap()), ["jwt-es256"]);
    assert_eq!(
        names(select_variants(&full.variants, &["session-pg".into()]).unwrap()),
        ["session-pg", "session-pg-unlogged"]
    );
    assert_eq!(names(select_variants(&full.variants, &["session".into()]).unwrap()), ["session", "session-pool"]);
    assert!(select_variants(&plan.variants, &["kerberos".into()]).is_err());
}
