//! The server's shape, checked (issue 22): its crates depend downwards only,
//! and within each crate no file imports, through any chain of files, a file
//! that imports it back.
//!
//! What counts as an import: every path in the code that names a module of
//! the same crate — `crate::…`, `super::…`, `self::…`, or a child module
//! declared in the file — in `use` items, expressions, types, patterns and
//! inside macro calls. Comments and doc links do not count. Tests inside a
//! file count as that file. Dev-dependencies do not count: the store's and
//! the catalog's unit tests build their rows with the agent's own encoder.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// The server's crates from the bottom up: each may depend on crates of
/// earlier layers only, never on one of its own layer or a later one.
const LAYERS: &[&[&str]] = &[
    &["periscope-store"],
    &["periscope-query"],
    &["periscope-report", "periscope-vulns", "periscope-sbom"],
    &["periscope-fronts"],
    &["periscope-server"],
];

/// The only server crate that may depend on the agent (for `quickstart`).
const MAY_USE_AGENT: &str = "periscope-server";

/// What the store may not know: SQL and the wire (its own limits, its own types).
const NOT_IN_STORE: &[&str] = &["datafusion", "tonic", "arrow-flight", "prost"];

fn layer_of(name: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&name))
}

fn metadata() -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(&root)
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// The server's packages: name and source directory.
fn server_crates(meta: &serde_json::Value) -> Vec<(String, PathBuf, &serde_json::Value)> {
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let name = p["name"].as_str()?;
            layer_of(name)?;
            let manifest = PathBuf::from(p["manifest_path"].as_str()?);
            Some((name.to_string(), manifest.parent()?.join("src"), p))
        })
        .collect()
}

/// The workspace crates `name` reaches through its dependencies (dev ones
/// too when `dev`, at the first step only), itself excluded.
fn reaches(meta: &serde_json::Value, name: &str, dev: bool) -> BTreeSet<String> {
    let packages = meta["packages"].as_array().unwrap();
    let deps = |n: &str, with_dev: bool| -> Vec<String> {
        let p = packages.iter().find(|p| p["name"] == n);
        p.map(|p| {
            p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| with_dev || d["kind"].as_str() != Some("dev"))
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| packages.iter().any(|p| p["name"] == d.as_str()))
                .collect()
        })
        .unwrap_or_default()
    };
    let mut seen = BTreeSet::new();
    let mut todo = deps(name, dev);
    while let Some(n) = todo.pop() {
        if seen.insert(n.clone()) {
            todo.extend(deps(&n, false));
        }
    }
    seen
}

#[test]
fn server_crates_depend_downwards_only() {
    let meta = metadata();
    let crates = server_crates(&meta);
    let found: BTreeSet<&str> = crates.iter().map(|(n, _, _)| n.as_str()).collect();
    let declared: BTreeSet<&str> = LAYERS.iter().flat_map(|l| l.iter().copied()).collect();
    assert_eq!(found, declared, "the workspace's server crates are the layers declared here");
    // Every crate under server/ is one of them.
    let server_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let under: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| Path::new(p["manifest_path"].as_str().unwrap()).starts_with(server_dir))
        .map(|p| p["name"].as_str().unwrap())
        .filter(|n| layer_of(n).is_none())
        .collect();
    assert!(under.is_empty(), "crates under server/ that no layer declares: {under:?}");
    let mut wrong = Vec::new();
    for (name, _, p) in &crates {
        let mine = layer_of(name).unwrap();
        // Through any chain of workspace crates; a test may build on the agent, never on a crate above.
        for (dev, reached) in [(false, reaches(&meta, name, false)), (true, reaches(&meta, name, true))] {
            for dep in &reached {
                match layer_of(dep) {
                    Some(theirs) if theirs >= mine => {
                        wrong.push(format!("{name} (layer {mine}) reaches {dep} (layer {theirs})"))
                    }
                    _ if !dev && dep == "periscope-agent" && name != MAY_USE_AGENT => {
                        wrong.push(format!("{name} reaches the agent"))
                    }
                    _ => {}
                }
            }
        }
        for d in p["dependencies"].as_array().unwrap() {
            let dep = d["name"].as_str().unwrap();
            if name == "periscope-store" && d["kind"].as_str() != Some("dev") && NOT_IN_STORE.contains(&dep) {
                wrong.push(format!("the store depends on {dep}"));
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "dependencies that run upwards or sideways:\n{}", wrong.join("\n"));
}

#[test]
fn no_file_imports_a_file_that_imports_it() {
    let meta = metadata();
    let mut found = Vec::new();
    for (name, src, _) in server_crates(&meta) {
        for circle in circles(&src) {
            found.push(format!("{name}: {}", circle.join(" -> ")));
        }
    }
    assert!(found.is_empty(), "import circles of files:\n{}", found.join("\n"));
}

/// The checker finds a circle where there is one, through `super::`, a
/// `use` group, a child module and a macro call alike, and not through a
/// visibility.
#[test]
fn the_checker_sees_circles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("a")).unwrap();
    let write = |p: &str, s: &str| std::fs::write(src.join(p), s).unwrap();
    write("lib.rs", "pub mod a;\npub mod b;\npub mod c;\npub use c::k;\n");
    write("a/mod.rs", "pub mod x;\npub fn f() { x::g() }\n");
    write("a/x.rs", "pub fn g() { assert!(super::super::b::h()) }\n");
    write("b.rs", "use crate::{c::{self}};\npub fn h() -> bool { c::k() }\n");
    write("c.rs", "// use crate::a; is only a comment\npub fn k() -> bool { crate::a::f(); true }\n");
    let found = circles(src);
    assert_eq!(found.len(), 1, "{found:?}");
    let files: BTreeSet<&str> = found[0].iter().map(String::as_str).collect();
    assert_eq!(files, BTreeSet::from(["a/mod.rs", "a/x.rs", "b.rs", "c.rs"]), "{found:?}");
    // `pub(crate)` names who may see `k`, not a use of the crate root.
    write("c.rs", "// use crate::a; is only a comment\npub(crate) fn k() -> bool { true }\n");
    assert_eq!(circles(src), Vec::<Vec<String>>::new());
}

/// Every circle of files under `src` (one crate): each a strongly connected
/// set of files, listed in an order that follows its imports.
fn circles(src: &Path) -> Vec<Vec<String>> {
    let mut files: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for path in rust_files(src) {
        let rel = path.strip_prefix(src).unwrap().to_string_lossy().into_owned();
        if rel == "main.rs" || rel.starts_with("bin/") {
            continue; // another crate root, which nothing here can import
        }
        files.insert(module_of(&rel), rel);
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, rel) in &files {
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let ast = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut refs = Refs { file: module.clone(), inline: Vec::new(), children: HashSet::new(), found: Vec::new() };
        // Child modules first: a path may name one before its `mod` line.
        for item in &ast.items {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
            {
                refs.children.insert(m.ident.to_string());
            }
        }
        refs.visit_file(&ast);
        for target in refs.found {
            // The longest prefix of the path that is a module with a file.
            let hit = (0..=target.len()).rev().find_map(|n| files.get(&target[..n]));
            if let Some(to) = hit
                && to != rel
            {
                edges.entry(rel.clone()).or_default().insert(to.clone());
            }
        }
    }
    strongly_connected(&edges).into_iter().filter(|c| c.len() > 1).collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `a/b.rs` and `a/b/mod.rs` are module `a::b`; `lib.rs` is the crate root.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_string).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// The module paths one file names.
struct Refs {
    /// The file's module.
    file: Vec<String>,
    /// Inline modules (`mod tests { … }`) around the current item.
    inline: Vec<String>,
    /// Modules the file declares with `mod x;`.
    children: HashSet<String>,
    found: Vec<Vec<String>>,
}

impl Refs {
    /// Resolves a path to the module path it names, if it is of this crate.
    fn resolve(&mut self, segs: &[String]) {
        let Some(first) = segs.first() else { return };
        let here: Vec<String> = self.file.iter().chain(&self.inline).cloned().collect();
        let abs = match first.as_str() {
            "crate" => segs[1..].to_vec(),
            "self" => here.into_iter().chain(segs[1..].iter().cloned()).collect(),
            "super" => {
                let ups = segs.iter().take_while(|s| *s == "super").count();
                if ups > here.len() {
                    return;
                }
                here[..here.len() - ups].iter().chain(&segs[ups..]).cloned().collect()
            }
            // `child::item` (one segment alone may be a variable of the same name).
            name if segs.len() > 1 && self.children.contains(name) && self.inline.is_empty() => {
                self.file.iter().chain(segs).cloned().collect()
            }
            _ => return,
        };
        self.found.push(abs);
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.leaf(prefix, &n.ident),
            syn::UseTree::Rename(r) => self.leaf(prefix, &r.ident),
            syn::UseTree::Glob(_) => self.resolve(&prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }

    fn leaf(&mut self, prefix: &[String], ident: &syn::Ident) {
        let mut path = prefix.to_vec();
        if ident != "self" {
            path.push(ident.to_string());
        }
        self.resolve(&path);
    }

    /// Paths inside a macro call's tokens: `a :: b :: c` runs.
    fn tokens(&mut self, ts: TokenStream) {
        let mut run: Vec<String> = Vec::new();
        let mut colons = 0;
        for tt in ts {
            match tt {
                TokenTree::Ident(i) if run.is_empty() || colons == 2 => {
                    run.push(i.to_string());
                    colons = 0;
                }
                TokenTree::Punct(p) if p.as_char() == ':' && !run.is_empty() && colons < 2 => colons += 1,
                other => {
                    self.resolve(&std::mem::take(&mut run));
                    colons = 0;
                    match other {
                        TokenTree::Group(g) => self.tokens(g.stream()),
                        TokenTree::Ident(i) => run.push(i.to_string()),
                        _ => {}
                    }
                }
            }
        }
        self.resolve(&run);
    }
}

impl<'ast> Visit<'ast> for Refs {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.inline.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.inline.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segs: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        self.resolve(&segs);
        syn::visit::visit_path(self, p);
    }

    /// `pub(crate)` and `pub(super)` say who may see an item, not what it uses.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.tokens(m.tokens.clone());
        syn::visit::visit_macro(self, m);
    }
}

/// Tarjan's strongly connected components of a graph of files.
fn strongly_connected(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: HashSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w.as_str()) {
                visit(s, w);
                let lw = s.low[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(lw));
            } else if s.on_stack.contains(w.as_str()) {
                let iw = s.index[w.as_str()];
                s.low.entry(v).and_modify(|l| *l = (*l).min(iw));
            }
        }
        if s.low[v] == s.index[v] {
            let mut c = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            c.reverse();
            s.out.push(c);
        }
    }
    let mut s = State {
        edges,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: HashSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}
