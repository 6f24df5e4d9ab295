//! The core's layering, checked on its source: this test is the import-cycle check (not
//! cargo-modules or any other tool).
//!
//! Every `.rs` file under `src/` belongs to a layer (its top-level folder) and to a module of
//! that layer (its second-level folder or file: `models::runtime`, `respond::asr`). The test
//! reads every reference to `crate::…` (in `use` lines, grouped `use crate::{a::b, c}` forms
//! over several lines, and inline paths such as `crate::models::runtime::Runtime` in code)
//! and every `super::…` path (resolved against the file's module and the inline `mod`
//! blocks around it), with comments and string literals left out, and asserts that
//!
//! 1. imports flow one way, `base ← dsp ← models ← perceive ← decide ← respond`: a layer
//!    uses only itself and the layers to its left (each offence is printed as file:line);
//! 2. no two modules of the second level depend on each other, directly or round a longer
//!    cycle (`models::runtime ↔ models::remote`, say).
//!
//! The checker is plain functions over (path, source) pairs, so the unit tests at the end
//! feed it small made-up crates and make sure it reports what it should.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, in order: each may use itself and those before it.
const LAYERS: &[&str] = &["base", "dsp", "models", "perceive", "decide", "respond"];

/// Names `src/lib.rs` re-exports at the crate root, and the module they come from.
const ROOT_REEXPORTS: &[(&str, &str)] = &[("Error", "base::error"), ("Result", "base::error")];

/// One reference from a file to a module of the crate.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ref {
    file: String,
    line: usize,
    /// The file's module, `layer::module` (or just `layer` for the layer's `mod.rs`).
    from: String,
    /// The referenced module, `layer::module` (or just `layer`).
    to: String,
    /// The path as resolved, for messages.
    path: String,
}

#[derive(Debug, Default)]
struct Report {
    /// References that go against the layering, as `file:line: message`.
    layering: Vec<String>,
    /// Cycles between second-level modules, each as its modules in order.
    cycles: Vec<Vec<String>>,
    /// Paths the checker could not place (a crate-root name not in [`ROOT_REEXPORTS`]).
    unknown: Vec<String>,
}

/// The source with comments and the contents of string and char literals blanked out
/// (newlines kept, so line numbers stay).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |ch: char| if ch == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let next = c.get(i + 1).copied();
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if ch == 'r'
            && (next == Some('"') || next == Some('#'))
            && (i == 0 || !is_ident(c[i - 1]))
        {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(ch);
                i += 1;
                continue;
            }
            for _ in i..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < c.len() {
                if c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(c[i]));
                i += 1;
            }
        } else if ch == '"' {
            out.push(' ');
            i += 1;
            while i < c.len() {
                if c[i] == '\\' {
                    out.push(' ');
                    if let Some(&e) = c.get(i + 1) {
                        out.push(blank(e));
                    }
                    i += 2;
                } else if c[i] == '"' {
                    out.push(' ');
                    i += 1;
                    break;
                } else {
                    out.push(blank(c[i]));
                    i += 1;
                }
            }
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\u{..}'), or a lifetime, which is kept.
            if next == Some('\\') {
                let mut j = i + 2;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                for _ in i..=j.min(c.len() - 1) {
                    out.push(' ');
                }
                i = j + 1;
            } else if c.get(i + 2) == Some(&'\'') {
                out.push_str("   ");
                i += 3;
            } else {
                out.push(ch);
                i += 1;
            }
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The module path of a file under `src/`: `src/a/b/c.rs` → `[a, b, c]`, `src/a/mod.rs` →
/// `[a]`, `src/lib.rs` → `[]`.
fn module_of(rel: &str) -> Vec<String> {
    let rel = rel.strip_prefix("src/").unwrap_or(rel);
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let mut parts: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Parses a path tree at `pos` (after `crate::` or `super::`): `a::b::C`, `a::{b, c::d}`,
/// `{a, b}`. Returns every full path it names, with the char offset each starts at.
fn parse_tree(
    c: &[char],
    mut pos: usize,
    prefix: Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let skip_ws = |p: &mut usize| {
        while *p < c.len() && c[*p].is_whitespace() {
            *p += 1;
        }
    };
    let mut path = prefix;
    loop {
        skip_ws(&mut pos);
        if pos >= c.len() {
            break;
        }
        if c[pos] == '{' {
            // A group: parse each comma-separated tree with brace matching.
            let start = pos;
            pos += 1;
            let mut depth = 1;
            let mut item_start = pos;
            while pos < c.len() && depth > 0 {
                match c[pos] {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 1 => {
                        parse_tree(c, item_start, path.clone(), out);
                        item_start = pos + 1;
                    }
                    _ => {}
                }
                if depth == 0 {
                    parse_tree(c, item_start, path.clone(), out);
                }
                pos += 1;
            }
            let _ = start;
            return;
        }
        let s = pos;
        while pos < c.len() && is_ident(c[pos]) {
            pos += 1;
        }
        if s == pos {
            break;
        }
        let ident: String = c[s..pos].iter().collect();
        if ident != "self" {
            path.push(ident);
        }
        skip_ws(&mut pos);
        if pos + 1 < c.len() && c[pos] == ':' && c[pos + 1] == ':' {
            pos += 2;
            continue;
        }
        break;
    }
    if !path.is_empty() {
        out.push((path, pos));
    }
}

/// Every crate-absolute path a file names, with its line: `crate::…` as written, `super::…`
/// resolved against the file's module and the inline `mod name { … }` blocks it sits in.
fn paths_of(rel: &str, src: &str) -> Vec<(Vec<String>, usize)> {
    let code = code_only(src);
    let c: Vec<char> = code.chars().collect();
    let file_mod = module_of(rel);
    let line_at = |p: usize| c[..p].iter().filter(|&&x| x == '\n').count() + 1;
    // Inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut pending_mod: Option<String> = None;
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let boundary = i == 0 || !is_ident(c[i - 1]) && c[i - 1] != ':';
        if ch == '{' {
            depth += 1;
            if let Some(name) = pending_mod.take() {
                inline.push((name, depth));
            }
            i += 1;
            continue;
        }
        if ch == '}' {
            if inline.last().is_some_and(|(_, d)| *d == depth) {
                inline.pop();
            }
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if ch == ';' {
            pending_mod = None;
        }
        if boundary && starts_with(&c, i, "mod") && c.get(i + 3).is_some_and(|x| x.is_whitespace())
        {
            let mut j = i + 3;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let s = j;
            while j < c.len() && is_ident(c[j]) {
                j += 1;
            }
            pending_mod = Some(c[s..j].iter().collect());
            i = j;
            continue;
        }
        if boundary && starts_with(&c, i, "crate::") {
            let mut found = Vec::new();
            parse_tree(&c, i + 7, Vec::new(), &mut found);
            out.extend(found.into_iter().map(|(p, _)| (p, line_at(i))));
            i += 7;
            continue;
        }
        if boundary && starts_with(&c, i, "super::") {
            let mut base: Vec<String> = file_mod.clone();
            base.extend(inline.iter().map(|(n, _)| n.clone()));
            let mut j = i;
            while starts_with(&c, j, "super::") {
                base.pop();
                j += 7;
            }
            let mut found = Vec::new();
            parse_tree(&c, j, base, &mut found);
            out.extend(found.into_iter().map(|(p, _)| (p, line_at(i))));
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

fn starts_with(c: &[char], i: usize, s: &str) -> bool {
    s.chars().enumerate().all(|(k, x)| c.get(i + k) == Some(&x))
}

/// `layer::module` of a module path, given the set of second-level modules that exist.
fn place(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    let layer = path.first()?;
    if !LAYERS.contains(&layer.as_str()) {
        return None;
    }
    match path.get(1) {
        Some(m) if modules.contains(&format!("{layer}::{m}")) => Some(format!("{layer}::{m}")),
        _ => Some(layer.clone()),
    }
}

fn layer_index(module: &str) -> Option<usize> {
    let layer = module.split("::").next()?;
    LAYERS.iter().position(|l| *l == layer)
}

/// Every reference between modules of the crate in `files` ((path under the crate root,
/// source) pairs), and what could not be placed.
fn references(files: &[(String, String)]) -> (Vec<Ref>, Vec<String>) {
    let modules: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| {
            let m = module_of(rel);
            (m.len() >= 2).then(|| format!("{}::{}", m[0], m[1]))
        })
        .collect();
    let mut refs = Vec::new();
    let mut unknown = Vec::new();
    for (rel, src) in files {
        let from_path = module_of(rel);
        let Some(from) = place(&from_path, &modules) else {
            continue; // lib.rs, which declares the layers
        };
        for (mut path, line) in paths_of(rel, src) {
            if let Some((_, to)) = ROOT_REEXPORTS.iter().find(|(n, _)| path[0] == *n) {
                path = to.split("::").map(str::to_string).collect();
            }
            match place(&path, &modules) {
                Some(to) => refs.push(Ref {
                    file: rel.clone(),
                    line,
                    from: from.clone(),
                    to,
                    path: path.join("::"),
                }),
                None => unknown.push(format!(
                    "{rel}:{line}: crate::{} is in no layer (a crate-root re-export missing from \
                     ROOT_REEXPORTS?)",
                    path.join("::")
                )),
            }
        }
    }
    (refs, unknown)
}

/// Strongly connected components of more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        if let Some(ws) = s.edges.get(v) {
            for w in ws {
                let w = w.as_str();
                if !s.index.contains_key(w) {
                    visit(s, w);
                    let lw = s.low[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if s.on_stack.contains(w) {
                    let iw = s.index[w];
                    let lv = s.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    let nodes: BTreeSet<&str> = edges
        .iter()
        .flat_map(|(k, vs)| std::iter::once(k.as_str()).chain(vs.iter().map(String::as_str)))
        .collect();
    for v in nodes {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn check(files: &[(String, String)]) -> Report {
    let (refs, unknown) = references(files);
    let mut report = Report {
        unknown,
        ..Default::default()
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &refs {
        let (Some(a), Some(b)) = (layer_index(&r.from), layer_index(&r.to)) else {
            continue;
        };
        if b > a {
            report.layering.push(format!(
                "{}:{}: {} uses crate::{} ({} may not use {})",
                r.file, r.line, r.from, r.path, LAYERS[a], LAYERS[b]
            ));
        }
        if r.from != r.to {
            edges
                .entry(r.from.clone())
                .or_default()
                .insert(r.to.clone());
        }
    }
    report.cycles = cycles(&edges);
    report
}

/// Every `.rs` file under `dir`, as (path relative to `root`, source).
fn read_tree(root: &Path, dir: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            read_tree(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            out.push((rel, std::fs::read_to_string(&p).unwrap()));
        }
    }
}

#[test]
fn the_core_is_layered_without_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    read_tree(root, &root.join("src"), &mut files);
    assert!(
        files.len() > 20,
        "read only {} files under src/",
        files.len()
    );
    let (refs, _) = references(&files);
    assert!(
        refs.len() > 50,
        "found only {} references between modules: is the parser still reading the source?",
        refs.len()
    );
    let report = check(&files);
    let mut problems = report.unknown.clone();
    problems.extend(report.layering.iter().cloned());
    problems.extend(
        report
            .cycles
            .iter()
            .map(|c| format!("modules depend on each other: {}", c.join(" ↔ "))),
    );
    assert!(
        problems.is_empty(),
        "the layering {} is broken:\n{}",
        LAYERS.join(" ← "),
        problems.join("\n")
    );
}

#[cfg(test)]
mod checker {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(p, s)| (p.to_string(), s.to_string()))
            .collect()
    }

    #[test]
    fn a_cycle_between_modules_of_a_layer_is_reported() {
        let report = check(&files(&[
            ("src/lib.rs", "pub mod models;"),
            ("src/models/mod.rs", "pub mod remote;\npub mod runtime;"),
            (
                "src/models/runtime.rs",
                "use crate::{\n    Error,\n    models::remote::RemoteSpec,\n};\n",
            ),
            (
                "src/models/remote/mod.rs",
                "mod client;\npub fn f(s: &crate::models::runtime::SharedSession) {}\n",
            ),
            ("src/models/remote/client.rs", "use super::RemoteSpec;\n"),
            ("src/base/error.rs", "pub enum Error {}"),
        ]));
        assert!(report.layering.is_empty(), "{:?}", report.layering);
        assert!(report.unknown.is_empty(), "{:?}", report.unknown);
        assert_eq!(
            report.cycles,
            vec![vec![
                "models::remote".to_string(),
                "models::runtime".to_string()
            ]]
        );
    }

    #[test]
    fn a_longer_cycle_through_super_is_reported() {
        let report = check(&files(&[
            ("src/respond/a.rs", "use super::b::X;"),
            (
                "src/respond/b.rs",
                "fn f() { let _ = super::super::respond::c::Y; }",
            ),
            ("src/respond/c/mod.rs", "mod d;"),
            ("src/respond/c/d.rs", "use super::super::a::Z;"),
        ]));
        assert_eq!(
            report.cycles,
            vec![vec![
                "respond::a".to_string(),
                "respond::b".to_string(),
                "respond::c".to_string()
            ]]
        );
    }

    #[test]
    fn an_import_up_the_layers_is_reported_with_its_line() {
        let report = check(&files(&[
            (
                "src/perceive/vad.rs",
                "use crate::base::time;\n\nuse crate::decide::decision::Event;\n",
            ),
            (
                "src/decide/decision.rs",
                "use crate::perceive::vad::WindowProb;\n",
            ),
            ("src/base/time.rs", ""),
        ]));
        assert_eq!(report.layering.len(), 1, "{:?}", report.layering);
        assert!(
            report.layering[0].starts_with("src/perceive/vad.rs:3: "),
            "{}",
            report.layering[0]
        );
        // The same pair of references is a cycle between the two modules as well.
        assert_eq!(report.cycles.len(), 1);
    }

    #[test]
    fn comments_strings_and_test_modules_are_not_imports() {
        let report = check(&files(&[
            (
                "src/base/time.rs",
                "// use crate::respond::x;\n/* crate::respond::y */\nconst S: &str = \"crate::respond::z\";\nconst R: &str = r#\"crate::respond::w\"#;\nfn f<'a>(x: &'a str) -> char { '\"' }\n#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::framing::F;\n}\n",
            ),
            ("src/base/framing.rs", ""),
        ]));
        assert!(report.layering.is_empty(), "{:?}", report.layering);
        assert!(report.cycles.is_empty(), "{:?}", report.cycles);
        let (refs, unknown) = references(&files(&[
            (
                "src/base/time.rs",
                "mod tests {\n    use super::super::framing::F;\n}\n",
            ),
            ("src/base/framing.rs", ""),
        ]));
        assert!(unknown.is_empty());
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].to, "base::framing");
    }

    #[test]
    fn a_root_name_that_is_not_a_known_re_export_is_reported() {
        let report = check(&files(&[("src/base/time.rs", "use crate::Mystery;\n")]));
        assert_eq!(report.unknown.len(), 1, "{:?}", report.unknown);
    }
}
