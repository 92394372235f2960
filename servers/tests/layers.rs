//! The server's modules depend on each other one way, lowest first in [`ORDER`]: a module uses
//! only modules below it, so a type lives with the code that owns it and no change to a lower
//! module has to know about a higher one. `lib` (and the binary's `main`) wires configuration
//! into the strategies; no other module sees `config`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod module_graph;

use std::path::{Path, PathBuf};

/// The servers' modules, lowest first.
const ORDER: &[&str] = &[
    // Leaves: a redis-server and a postgres child for tests and the harness, token text on the
    // wire, users.
    "redis_process",
    "pg_process",
    "token",
    "users",
    // Signed tokens; counters (by token rejection); Redis (counted).
    "jwt",
    "metrics",
    "store",
    "pg_store",
    // Every failure of a request, from the token, the store and the signer.
    "error",
    // The auth designs, then the protocol over them, then the accept loop.
    "strategy",
    "http",
    "serve",
    // Flags and TOML into a validated ServerConfig, with the lower modules' types; only the
    // roots read it.
    "config",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn server_modules_depend_one_way() {
    let graph = module_graph::edges(&src()).unwrap();
    println!("servers module order, lowest first:");
    for module in ORDER {
        let uses: Vec<&str> = graph.get(*module).into_iter().flatten().map(String::as_str).collect();
        println!("  {module:<14} uses {}", if uses.is_empty() { "nothing".to_owned() } else { uses.join(", ") });
    }
    let cycle = module_graph::find_cycle(&graph).map(|c| format!("the modules form a cycle: {}\n", c.join(" -> ")));
    let layers = module_graph::check_layers(&src(), ORDER).err();
    if cycle.is_some() || layers.is_some() {
        panic!("{}{}", cycle.unwrap_or_default(), layers.unwrap_or_default());
    }
}

/// A scratch crate source tree, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(name: &str, files: &[(&str, &str)]) -> Self {
        let root = std::env::temp_dir().join(format!("authbench-layers-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for (path, text) in files {
            let path = root.join("src").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Self(root)
    }

    fn src(&self) -> PathBuf {
        self.0.join("src")
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn grouped_inline_and_nested_paths_are_edges_but_comments_and_strings_are_not() {
    let tree = Tree::new(
        "paths",
        &[
            ("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub mod d;\npub fn root() {}\n"),
            (
                "a.rs",
                "use crate::{b::X, c::{self, Y}};\n\
                 // use crate::d::Z;\n\
                 /* crate::d /* nested */ crate::d */\n\
                 const S: &str = \"crate::d\";\n\
                 const R: &str = r#\"crate::d \"quoted\" \"#;\n\
                 const Q: char = '\"';\n\
                 fn f<'x>(_: &'x str) { crate::root(); let _ = crate :: b::X; }\n",
            ),
            ("b/mod.rs", "mod inner;\npub struct X;\n"),
            ("b/inner.rs", "use crate::b::X;\nfn g() { crate::d::h() }\n"),
            ("c.rs", "pub struct Y;\n"),
            ("d.rs", "pub fn h() {}\n"),
        ],
    );
    let graph = module_graph::edges(&tree.src()).unwrap();
    let names = |m: &str| graph[m].iter().map(String::as_str).collect::<Vec<_>>();
    assert_eq!(names("a"), ["b", "c", "lib"]);
    // b uses itself (no edge) and d, from a file of its subdirectory.
    assert_eq!(names("b"), ["d"]);
    assert!(names("c").is_empty() && names("d").is_empty());
    assert_eq!(names("lib"), Vec::<&str>::new(), "lib declares modules without crate:: paths");
    let first = module_graph::uses(&tree.src()).unwrap().into_iter().find(|u| u.to == "lib").unwrap();
    assert_eq!((first.from.as_str(), first.line), ("a", 7));
}

#[test]
fn upward_edges_missing_modules_and_cycles_are_reported() {
    let tree = Tree::new(
        "upward",
        &[
            ("lib.rs", "pub mod low;\npub mod high;\npub mod extra;\n"),
            ("low.rs", "use crate::high::H;\n"),
            ("high.rs", "use crate::low::L;\n"),
            ("extra.rs", "fn f() { crate::low::f() }\n"),
        ],
    );
    let graph = module_graph::edges(&tree.src()).unwrap();
    assert_eq!(module_graph::find_cycle(&graph), Some(vec!["low".into(), "high".into(), "low".into()]));
    let err = module_graph::check_layers(&tree.src(), &["low", "high", "gone"]).unwrap_err();
    assert!(err.contains("low -> high points upward (src/low.rs:1"), "{err}");
    assert!(!err.contains("high -> low"), "{err}");
    assert!(err.contains("module `extra` is missing"), "{err}");
    assert!(err.contains("`gone`, which is not a module"), "{err}");
    assert_eq!(err.lines().count(), 4, "{err}");

    let layered = Tree::new(
        "layered",
        &[("lib.rs", "use crate::high::H;\n"), ("low.rs", ""), ("high.rs", "use crate::low::L;\n")],
    );
    assert_eq!(module_graph::find_cycle(&module_graph::edges(&layered.src()).unwrap()), None);
    module_graph::check_layers(&layered.src(), &["low", "high"]).unwrap();
    let err = module_graph::check_layers(&layered.src(), &["high", "low"]).unwrap_err();
    assert!(err.contains("high -> low points upward"), "{err}");
}
