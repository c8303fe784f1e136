//! Rules of [`compute`] on a small synthetic workspace: a stage binary of package `app` that depends
//! on `lib` (normal) and `tool` (dev only), and on a registry crate.

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn workspace(registry_version: &str) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    write(
        r,
        "Cargo.toml",
        "[workspace]\nmembers = [\".\", \"lib\", \"tool\"]\n[package]\nname = \"app\"\n\
         [dependencies]\nlib = { path = \"lib\" }\nrand = \"1\"\n[dev-dependencies]\ntool = { path = \"tool\" }\n",
    );
    write(r, "src/lib.rs", "pub fn app() {}");
    write(r, "stages/a.rs", "fn main() {}");
    write(r, "stages/b.rs", "fn main() {}");
    write(r, "lib/Cargo.toml", "[package]\nname = \"lib\"\n");
    write(r, "lib/src/lib.rs", "pub fn lib() {}");
    write(r, "tool/Cargo.toml", "[package]\nname = \"tool\"\n");
    write(r, "tool/src/lib.rs", "pub fn tool() {}");
    write(
        r,
        "Cargo.lock",
        &format!(
            "version = 4\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"lib\", \"rand\", \"tool\"]\n\
             [[package]]\nname = \"lib\"\nversion = \"0.1.0\"\n\
             [[package]]\nname = \"tool\"\nversion = \"0.1.0\"\ndependencies = [\"app\"]\n\
             [[package]]\nname = \"rand\"\nversion = \"{registry_version}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\nchecksum = \"ab\"\n"
        ),
    );
    t
}

const STAGES: &[StageSpec] = &[
    StageSpec {
        binary: "a",
        package: "app",
        main: "stages/a.rs",
    },
    StageSpec {
        binary: "b",
        package: "app",
        main: "stages/b.rs",
    },
];

fn ids(root: &Path, torch: &str) -> BTreeMap<String, String> {
    compute(root, STAGES, torch).unwrap().identities
}

#[test]
fn identity_follows_the_closure_only() {
    let w = workspace("1.0.0");
    let base = ids(w.path(), "2.11.0");
    assert_eq!(base.len(), 2);
    assert_ne!(
        base["a"], base["b"],
        "the main file is part of the identity"
    );

    // A dev-dependency's code is not compiled into the binary.
    write(
        w.path(),
        "tool/src/lib.rs",
        "pub fn tool() { /* edited */ }",
    );
    assert_eq!(ids(w.path(), "2.11.0"), base);

    // A dependency's code is.
    write(w.path(), "lib/src/lib.rs", "pub fn lib() { /* edited */ }");
    let edited = ids(w.path(), "2.11.0");
    assert_ne!(edited["a"], base["a"]);
    assert_ne!(edited["b"], base["b"]);

    // Only one stage's main file: only that stage.
    write(w.path(), "stages/b.rs", "fn main() { /* edited */ }");
    let b_edited = ids(w.path(), "2.11.0");
    assert_eq!(b_edited["a"], edited["a"]);
    assert_ne!(b_edited["b"], edited["b"]);
}

#[test]
fn registry_versions_count_and_paths_do_not() {
    let w1 = workspace("1.0.0");
    let w2 = workspace("1.0.0");
    assert_eq!(
        ids(w1.path(), "x"),
        ids(w2.path(), "x"),
        "same tree elsewhere"
    );
    let w3 = workspace("1.0.1");
    assert_ne!(ids(w1.path(), "x")["a"], ids(w3.path(), "x")["a"]);
}

#[test]
fn libtorch_counts_only_with_torch_sys() {
    let w = workspace("1.0.0");
    assert_eq!(ids(w.path(), "2.11.0"), ids(w.path(), "2.12.0"));
}

#[test]
fn a_missing_lock_names_the_file() {
    let w = workspace("1.0.0");
    std::fs::remove_file(w.path().join("Cargo.lock")).unwrap();
    let e = compute(w.path(), STAGES, "x").unwrap_err().to_string();
    assert!(e.contains("Cargo.lock"), "{e}");
}
