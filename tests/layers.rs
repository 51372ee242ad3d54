//! Keeps the layers of `src/lib.rs`: every `crate::` path in a module names its own module or
//! one on a lower layer, never a higher one or a sibling on its own layer. The layer order is
//! read from the numbered list in `src/lib.rs`'s module doc, so the doc and the check are one.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level module name → layer number, from lines like ``//! 3. `support` — …`` (several
/// backticked names before the dash share the layer).
fn layers(lib_rs: &str) -> HashMap<String, u32> {
    let mut layers = HashMap::new();
    for line in lib_rs.lines() {
        let Some(rest) = line.strip_prefix("//! ") else {
            continue;
        };
        let Some((number, rest)) = rest.split_once(". ") else {
            continue;
        };
        let Ok(number) = number.trim().parse::<u32>() else {
            continue;
        };
        let names = rest.split(" — ").next().unwrap_or("");
        for name in names.split('`').skip(1).step_by(2) {
            layers.insert(name.to_owned(), number);
        }
    }
    layers
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level modules a file's code names through `crate::`, with the line of each: `use`
/// lines (braces included, across lines) and paths written inline. Comments are skipped.
fn named_modules(source: &str) -> Vec<(usize, String, String)> {
    let mut named = Vec::new();
    let mut open_use: Option<(usize, String)> = None;
    for (index, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let trimmed = code.trim_start();
        if let Some((start, text)) = open_use.as_mut() {
            text.push_str(trimmed);
            if code.contains(';') {
                let (start, text) = (*start, std::mem::take(text));
                open_use = None;
                push_use(start, &text, &mut named);
            }
            continue;
        }
        if trimmed.starts_with("use crate::") || trimmed.starts_with("pub use crate::") {
            match code.contains(';') {
                true => push_use(index + 1, trimmed, &mut named),
                false => open_use = Some((index + 1, trimmed.to_owned())),
            }
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let module: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !module.is_empty() {
                named.push((index + 1, module, code.trim().to_owned()));
            }
            rest = after;
        }
    }
    named
}

/// `use crate::{a::X, b::{Y, Z}}` names `a` and `b`; `use crate::a::…` names `a`.
fn push_use(line: usize, text: &str, named: &mut Vec<(usize, String, String)>) {
    let path = text.split("crate::").nth(1).unwrap_or("");
    let heads: Vec<String> = match path.strip_prefix('{') {
        Some(group) => {
            let mut depth = 0;
            let mut heads = Vec::new();
            let mut current = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => heads.push(std::mem::take(&mut current)),
                    _ => current.push(c),
                }
            }
            heads.push(current);
            heads
        }
        None => vec![path.to_owned()],
    };
    for head in heads {
        let module: String = head
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !module.is_empty() {
            named.push((line, module, text.to_owned()));
        }
    }
}

/// Every import that breaks the layering, as `file:line: message`.
fn violations(src: &Path) -> Vec<String> {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let layers = layers(&lib);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src/");
        let first = relative.components().next().expect("a path");
        let own = first.as_os_str().to_string_lossy();
        let own = own.trim_end_matches(".rs").to_owned();
        if own == "lib" || own == "main" {
            continue;
        }
        let shown = format!("src/{}", relative.display());
        let Some(&own_layer) = layers.get(&own) else {
            found.push(format!(
                "{shown}: module `{own}` has no layer in src/lib.rs"
            ));
            continue;
        };
        let source = fs::read_to_string(&file).expect("a source file");
        for (line, module, text) in named_modules(&source) {
            if module == own {
                continue;
            }
            let Some(&layer) = layers.get(&module) else {
                found.push(format!(
                    "{shown}:{line}: `{module}` has no layer in src/lib.rs: {text}"
                ));
                continue;
            };
            let what = match layer {
                l if l > own_layer => "a higher layer",
                l if l == own_layer => "a sibling on its own layer",
                _ => continue,
            };
            found.push(format!(
                "{shown}:{line}: `{own}` (layer {own_layer}) imports `{module}`, {what} (layer {layer}): {text}"
            ));
        }
    }
    found
}

#[test]
fn every_module_imports_only_from_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = violations(&src);
    assert!(found.is_empty(), "layer violations:\n{}", found.join("\n"));
}

#[test]
fn the_check_reports_an_upward_import_and_a_sibling_import() {
    let dir = std::env::temp_dir().join(format!("shardgate-layers-{}", std::process::id()));
    let src = dir.join("src");
    fs::create_dir_all(src.join("low")).expect("a scratch tree");
    fs::write(
        src.join("lib.rs"),
        "//! 1. `low` — the bottom\n//! 2. `left` · `right` — siblings\n",
    )
    .expect("lib.rs");
    fs::write(src.join("low/mod.rs"), "use crate::{left::A, low::B};\n").expect("low");
    fs::write(
        src.join("left.rs"),
        "use crate::low::X;\nfn f() { crate::right::g() }\n",
    )
    .expect("left");
    fs::write(src.join("right.rs"), "use crate::low::{\n    X,\n};\n").expect("right");
    let found = violations(&src);
    fs::remove_dir_all(&dir).expect("scratch tree removed");
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("src/left.rs:2: `left` (layer 2) imports `right`, a sibling"),
        "{}",
        found[0]
    );
    assert!(
        found[1].starts_with("src/low/mod.rs:1: `low` (layer 1) imports `left`, a higher layer"),
        "{}",
        found[1]
    );
}
