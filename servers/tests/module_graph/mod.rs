//! The graph of a crate's top-level modules, read from its source text, so a test can keep the
//! dependencies between modules one way (`tests/layers.rs`).
//!
//! Std only and free of `crate::` paths, so that another crate's tests can include it as it is:
//! `#[path = "../../servers/tests/module_graph/mod.rs"] mod module_graph;`
//!
//! A file `src/<m>.rs` or `src/<m>/**.rs` belongs to the top-level module `<m>`; `src/lib.rs`
//! and `src/main.rs` are the roots `lib` and `main` (`src/bin/` holds other crates and is not
//! read). Module `m` uses module `n` when a file of `m` mentions `crate::n` outside comments and
//! string literals: in a `use` line, in an inline path, or inside a group such as
//! `use crate::{a, b::c}`. `crate::x` where `x` is no module names an item of the root, so it
//! is a use of `lib`. Paths through `super::` are not followed: from a file's own inline
//! modules (`mod tests { use super::*; }`) they stay inside it, and telling those apart needs
//! a parser, so cross-module paths are expected to start at `crate::`.

// Each including test uses what it needs of this file.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The crate roots: they wire everything together and may use any module.
pub const ROOTS: [&str; 2] = ["lib", "main"];

/// One mention of another module: where it is, and which module it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Use {
    pub from: String,
    pub to: String,
    /// What follows `crate::`: `to` itself, or an item of the root when `to` is `lib`.
    pub name: String,
    pub file: PathBuf,
    /// 1-based.
    pub line: usize,
}

/// Every top-level module of the crate whose sources are in `src`, with the files of each.
pub fn modules(src: &Path) -> Result<BTreeMap<String, Vec<PathBuf>>, String> {
    let mut modules = BTreeMap::new();
    for entry in read_dir(src)? {
        let Some(name) = entry.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if entry.is_dir() {
            if name == "bin" {
                continue;
            }
            let mut files = Vec::new();
            rust_files(&entry, &mut files)?;
            if !files.is_empty() {
                modules.entry(name).or_insert_with(Vec::new).extend(files);
            }
        } else if let Some(stem) = name.strip_suffix(".rs") {
            modules.entry(stem.to_owned()).or_insert_with(Vec::new).push(entry);
        }
    }
    Ok(modules)
}

/// Every mention of another top-level module, in file and line order.
pub fn uses(src: &Path) -> Result<Vec<Use>, String> {
    let modules = modules(src)?;
    let mut found = Vec::new();
    for (module, files) in &modules {
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            for (line, name) in crate_paths(&text) {
                let to = if modules.contains_key(&name) { name.clone() } else { "lib".to_owned() };
                if &to != module {
                    found.push(Use { from: module.clone(), to, name, file: file.clone(), line });
                }
            }
        }
    }
    Ok(found)
}

/// The graph: every module, with the modules it uses (possibly none).
pub fn edges(src: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let mut graph: BTreeMap<String, BTreeSet<String>> =
        modules(src)?.into_keys().map(|m| (m, BTreeSet::new())).collect();
    for u in uses(src)? {
        graph.entry(u.from).or_default().insert(u.to);
    }
    Ok(graph)
}

/// A cycle of the graph, as the modules along it with the first repeated at the end, or `None`.
pub fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    /// Depth-first search; `path` is the chain of modules being visited.
    fn visit<'a>(
        node: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| *n == node) {
            let mut cycle: Vec<String> = path.iter().skip(start).map(|n| (*n).to_owned()).collect();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

/// Checks that every module other than the roots is in `order` (lowest first) and uses only
/// modules strictly lower in it. The error lists every problem: each upward edge with the
/// first place it is mentioned, each module missing from `order`, each name in `order` that
/// is no module.
pub fn check_layers(src: &Path, order: &[&str]) -> Result<(), String> {
    let modules = modules(src)?;
    let rank = |name: &str| order.iter().position(|o| *o == name);
    let mut problems = Vec::new();
    for module in modules.keys().filter(|m| !ROOTS.contains(&m.as_str())) {
        if rank(module).is_none() {
            problems.push(format!("module `{module}` is missing from the order"));
        }
    }
    for name in order {
        if !modules.contains_key(*name) {
            problems.push(format!("the order names `{name}`, which is not a module of {}", src.display()));
        }
    }
    let mut reported = BTreeSet::new();
    for u in uses(src)? {
        // A root may use anything; a module missing from the order is reported as such.
        if ROOTS.contains(&u.from.as_str()) {
            continue;
        }
        let Some(from) = rank(&u.from) else { continue };
        let allowed = match rank(&u.to) {
            Some(to) => to < from,
            None => !ROOTS.contains(&u.to.as_str()),
        };
        if !allowed && reported.insert((u.from.clone(), u.to.clone())) {
            let shown = u.file.strip_prefix(src.parent().unwrap_or(src)).unwrap_or(&u.file);
            problems.push(format!(
                "{} -> {} points upward ({}:{} mentions crate::{})",
                u.from,
                u.to,
                shown.display(),
                u.line,
                u.name
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the modules of {} are not layered as {order:?}:\n  {}", src.display(), problems.join("\n  ")))
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths = entries
        .map(|e| e.map(|e| e.path()).map_err(|e| format!("cannot read {}: {e}", dir.display())))
        .collect::<Result<Vec<_>, _>>()?;
    paths.sort();
    Ok(paths)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    for path in read_dir(dir)? {
        if path.is_dir() {
            rust_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The first segment after every `crate::` of the code, with its line: `crate::a::b` gives
/// `a`; a group `crate::{a::b, c}` gives `a` and `c`; `crate::*` and `crate::{self}` give
/// `self` and `*`, which are no module and therefore count as `lib`.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code = code_only(text);
    let mut found = Vec::new();
    let mut i = 0;
    while let Some(at) = find_from(&code, "crate", i) {
        i = at + 5;
        let boundary = at == 0 || code.get(at - 1).is_none_or(|c| !is_ident(*c));
        let mut j = skip_space(&code, i);
        if !boundary || code.get(j) != Some(&':') || code.get(j + 1) != Some(&':') {
            continue;
        }
        j = skip_space(&code, j + 2);
        let line = 1 + code.iter().take(at).filter(|c| **c == '\n').count();
        if code.get(j) == Some(&'{') {
            found.extend(group_heads(&code, j).into_iter().map(|name| (line, name)));
        } else if let Some(name) = segment(&code, j) {
            found.push((line, name));
        }
    }
    found
}

/// The first segment of each item of the group whose `{` is at `open`, nested groups skipped.
fn group_heads(code: &[char], open: usize) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut item_start = true;
    let mut j = open;
    while let Some(&c) = code.get(j) {
        match c {
            '{' => {
                depth += 1;
                item_start = depth == 1;
            }
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => item_start = true,
            c if c.is_whitespace() => {}
            _ if item_start && depth == 1 => {
                if let Some(name) = segment(code, j) {
                    j += name.chars().count().max(1) - 1;
                    heads.push(name);
                }
                item_start = false;
            }
            _ => {}
        }
        j += 1;
    }
    heads
}

/// The path segment starting at `at`: an identifier (raw or not), or `*`.
fn segment(code: &[char], at: usize) -> Option<String> {
    if code.get(at) == Some(&'*') {
        return Some("*".to_owned());
    }
    let mut at = at;
    if code.get(at) == Some(&'r') && code.get(at + 1) == Some(&'#') {
        at += 2;
    }
    let name: String = code.iter().skip(at).take_while(|c| is_ident(**c)).collect();
    (!name.is_empty()).then_some(name)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn skip_space(code: &[char], mut at: usize) -> usize {
    while code.get(at).is_some_and(|c| c.is_whitespace()) {
        at += 1;
    }
    at
}

fn find_from(code: &[char], needle: &str, from: usize) -> Option<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (from..code.len()).find(|&i| code.get(i..i + needle.len()) == Some(needle.as_slice()))
}

/// The text with comments and the contents of string and character literals blanked out
/// (newlines kept, so lines still count), leaving only code to search.
fn code_only(text: &str) -> Vec<char> {
    let mut code: Vec<char> = text.chars().collect();
    let blank = |code: &mut [char], from: usize, to: usize| {
        for c in code.iter_mut().take(to).skip(from) {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let at = |code: &[char], i: usize| code.get(i).copied();
    let mut i = 0;
    while let Some(c) = at(&code, i) {
        let next = at(&code, i + 1);
        let after_ident = i > 0 && at(&code, i - 1).is_some_and(is_ident);
        if c == '/' && next == Some('/') {
            let end = (i..code.len()).find(|&k| at(&code, k) == Some('\n')).unwrap_or(code.len());
            blank(&mut code, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let (mut depth, mut k) = (0usize, i);
            while k < code.len() {
                match (at(&code, k), at(&code, k + 1)) {
                    (Some('/'), Some('*')) => {
                        depth += 1;
                        k += 2;
                    }
                    (Some('*'), Some('/')) => {
                        depth = depth.saturating_sub(1);
                        k += 2;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => k += 1,
                }
            }
            blank(&mut code, i, k);
            i = k;
        } else if c == '"' {
            let mut k = i + 1;
            while let Some(s) = at(&code, k) {
                k += if s == '\\' { 2 } else { 1 };
                if s == '"' {
                    break;
                }
            }
            blank(&mut code, i + 1, k.saturating_sub(1));
            i = k;
        } else if (c == 'r' || (c == 'b' && next == Some('r'))) && !after_ident {
            // A raw string `r"..."`, `r#"..."#`, `br#"..."#`; otherwise an identifier.
            let start = if c == 'b' { i + 2 } else { i + 1 };
            let hashes = (start..code.len()).take_while(|&k| at(&code, k) == Some('#')).count();
            if at(&code, start + hashes) == Some('"') {
                let open = start + hashes + 1;
                let close = (open..code.len())
                    .find(|&k| at(&code, k) == Some('"') && (1..=hashes).all(|h| at(&code, k + h) == Some('#')))
                    .unwrap_or(code.len());
                blank(&mut code, open, close);
                i = close + 1 + hashes;
            } else {
                i += 1;
            }
        } else if c == '\'' {
            // A character literal ('x', '\n', '\u{7f}'), or else a lifetime or a label.
            if next == Some('\\') {
                let close = (i + 2..code.len()).find(|&k| at(&code, k) == Some('\'')).unwrap_or(code.len());
                blank(&mut code, i + 1, close);
                i = close + 1;
            } else if at(&code, i + 2) == Some('\'') {
                blank(&mut code, i + 1, i + 2);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    code
}
