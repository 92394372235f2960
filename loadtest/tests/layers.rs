//! The CLI crate's layers: imports between its top-level modules point one way, down the list
//! in `src/lib.rs`'s "# Layout", and presentation reads the results alone.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

#[path = "../../servers/tests/module_graph/mod.rs"]
mod module_graph;

use std::path::Path;

/// Lowest first: a module may import only modules before it.
const ORDER: &[&str] = &["results", "plan", "cli", "engine", "observe", "process", "scenario", "present", "harness"];

fn src() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))
}

#[test]
fn imports_point_down_the_layers_without_a_cycle() {
    let graph = module_graph::edges(src()).unwrap();
    assert_eq!(module_graph::find_cycle(&graph), None, "{graph:?}");
    module_graph::check_layers(src(), ORDER).unwrap();
}

#[test]
fn results_import_nothing_and_presentation_reads_only_results() {
    let graph = module_graph::edges(src()).unwrap();
    let of = |m: &str| graph.get(m).cloned().unwrap_or_default();
    assert!(of("results").is_empty(), "results imports {:?}", of("results"));
    let present: Vec<String> = of("present").into_iter().filter(|m| m != "results").collect();
    assert!(present.is_empty(), "present imports {present:?}");
}

#[test]
fn no_source_file_passes_500_lines_without_saying_why() {
    let mut long = Vec::new();
    for files in module_graph::modules(src()).unwrap().values() {
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            let lines = text.lines().count();
            if lines > 500 && !text.lines().take(12).any(|l| l.starts_with("//!") && l.contains("lines")) {
                long.push(format!("{} ({lines} lines)", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "split these by responsibility, or say at the top why not: {long:?}");
}
