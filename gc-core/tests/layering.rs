//! The layering check: every file of `gc-core/src` may use only its own folder and the folders
//! below it, in the order declared once, in `lib.rs`'s module docs (the line that starts with
//! `//! Layers, top to bottom:`).
//!
//! It reads the source text: every `crate::…` path outside comments and test modules, including
//! the items of `use crate::{…}` groups and paths to the crate root's re-exports (`crate::Gc` is
//! the `api` folder's `Gc`). A path into a higher folder is a violation. `lib.rs` itself (the
//! crate root, which wires the folders together) is not checked.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

/// The declared order, top first.
fn layers(lib: &str) -> Vec<String> {
    let line = lib
        .lines()
        .find(|l| l.starts_with("//! Layers, top to bottom:"))
        .expect("lib.rs declares its layers in a `//! Layers, top to bottom:` line");
    line.trim_start_matches("//! Layers, top to bottom:")
        .split('→')
        .map(|s| s.trim().trim_end_matches('.').trim_matches('`').to_string())
        .collect()
}

/// Names the crate root re-exports, with the folder each comes from (`pub use api::gc::Gc;`,
/// `pub use telemetry::{gctrace, metrics};`, `pub use api::config::{self, Config};`); re-exports
/// of other crates (`pub use gc_derive::Trace;`, the derive macro) are left out.
fn root_reexports(lib: &str, layers: &[String]) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for l in lib.lines() {
        let Some(rest) = l.trim().strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim_end_matches(';');
        let folder = rest.split("::").next().unwrap().to_string();
        if !layers.contains(&folder) {
            continue;
        }
        let names = match rest.find('{') {
            Some(i) => rest[i + 1..rest.len() - 1]
                .split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>(),
            None => vec![rest.rsplit("::").next().unwrap().to_string()],
        };
        for n in names {
            let n = n.rsplit(" as ").next().unwrap().to_string();
            if n != "self" && !n.is_empty() {
                map.insert(n, folder.clone());
            }
        }
    }
    map
}

/// The source without comments and without `#[cfg(…test…)]` modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim_start();
        if t.starts_with("#[cfg(") && t.contains("test") {
            // Skip the attribute's item if it is a module (of any visibility): up to its
            // matching brace.
            if let Some(next) = lines.peek()
                && next
                    .trim_start()
                    .split_once("mod ")
                    .is_some_and(|(vis, _)| vis.is_empty() || vis.starts_with("pub"))
            {
                let mut depth = 0i32;
                let mut opened = false;
                for m in lines.by_ref() {
                    depth += m.matches('{').count() as i32 - m.matches('}').count() as i32;
                    opened |= m.contains('{');
                    if opened && depth <= 0 {
                        break;
                    }
                }
            }
            continue;
        }
        let code = match t.find("//") {
            Some(i) => &t[..i],
            None => t,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The first segment of every path from the crate root in `code`: `crate::…` and the crate's
/// own alias `gc_core::…` (`lib.rs` declares `extern crate self as gc_core`), expanding
/// `crate::{a::b, c::{d, e}}` groups at any depth.
fn crate_paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for root in ["crate::", "gc_core::"] {
        let mut rest = code;
        while let Some(i) = rest.find(root) {
            let before = rest[..i].chars().last();
            rest = &rest[i + root.len()..];
            // `$crate::` (macros) names the crate from outside; `gc_crate::` and the like are
            // not this crate.
            if matches!(before, Some(c) if c == '$' || c == '_' || c.is_alphanumeric()) {
                continue;
            }
            first_segments(rest, &mut found);
        }
    }
    found
}

/// The first segment of the path `s` starts with, or of each item of the `{…}` group it
/// starts with (nested groups belong to their item).
fn first_segments(s: &str, found: &mut Vec<String>) {
    let seg = |t: &str| -> String {
        t.trim()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let Some(group) = s.strip_prefix('{') else {
        found.push(seg(s));
        return;
    };
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth > 0 => depth -= 1,
            ',' | '}' if depth == 0 => {
                let item = seg(&group[start..i]);
                if !item.is_empty() {
                    found.push(item);
                }
                if c == '}' {
                    return;
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    panic!("an unclosed use group: {s}");
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn folders_import_only_downwards() {
    let lib = fs::read_to_string(Path::new(SRC).join("lib.rs")).unwrap();
    let order = layers(&lib);
    let rank = |f: &str| order.iter().position(|l| l == f);
    let reexports = root_reexports(&lib, &order);
    let mut files = Vec::new();
    rust_files(Path::new(SRC), &mut files);
    files.sort();
    let mut violations = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(SRC).unwrap();
        let Some(folder) = rel.parent().and_then(|p| p.iter().next()) else {
            continue; // lib.rs
        };
        let folder = folder.to_str().unwrap();
        let own = rank(folder)
            .unwrap_or_else(|| panic!("{folder}/ is not in lib.rs's layer list {order:?}"));
        let code = code_of(&fs::read_to_string(f).unwrap());
        for seg in crate_paths(&code) {
            let target = if rank(&seg).is_some() {
                seg.clone()
            } else if let Some(folder) = reexports.get(&seg) {
                folder.clone()
            } else {
                // A crate-root item that is not a re-export (a `#[macro_export]` macro).
                continue;
            };
            let t = rank(&target).unwrap_or_else(|| {
                panic!(
                    "{} uses crate::{seg}, from {target}/, which is not a layer",
                    rel.display()
                )
            });
            if t < own {
                violations.push(format!(
                    "{} ({folder}) uses crate::{seg} from {target}, a higher layer",
                    rel.display()
                ));
            }
        }
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "imports that run upwards ({}; layers top to bottom: {}):\n{}",
        violations.len(),
        order.join(" → "),
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_groups_reexports_and_skips_comments_and_tests() {
    let code = code_of(
        "use crate::{gc::heap::Shared, Gc};\n// crate::api in a comment\n\
         let x = crate::alloc::arena::PAGE_SIZE; // crate::pacer\n\
         #[cfg(test)]\nmod tests {\n    use crate::api::Heap;\n}\n\
         #[cfg(test)]\npub(crate) mod test_heaps {\n    use crate::api::Heap;\n}\n",
    );
    assert_eq!(crate_paths(&code), ["gc", "Gc", "alloc"]);
    // Nested groups, and the crate's own alias.
    let code = code_of(
        "use crate::{alloc::central::{SpanKind, SpanRef}, api::heap::Heap};\n\
         const N: usize = 16 * gc_core::alloc::arena::PAGE_SIZE;\n",
    );
    assert_eq!(crate_paths(&code), ["alloc", "api", "alloc"]);
    let lib = "//! Layers, top to bottom: `api` → `gc` → `util`.\npub use api::gc::Gc;\n\
               pub use telemetry::{gctrace, metrics};\npub use api::config::{self, Config};\n\
               pub use gc_derive::Trace;\npub use gc::trace::Trace;\n";
    assert_eq!(layers(lib), ["api", "gc", "util"]);
    let r = root_reexports(lib, &["api".into(), "gc".into(), "telemetry".into()]);
    assert_eq!(r["Gc"], "api");
    assert_eq!(r["metrics"], "telemetry");
    assert_eq!(r["Config"], "api");
    assert_eq!(r["Trace"], "gc");
    assert!(!r.contains_key("self"));
}
