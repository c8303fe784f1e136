//! The code-identity rules, each on a copy of this workspace's source tree.

use std::path::{Path, PathBuf};

use super::*;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Copy the files the identities are computed from (sources, manifests, lock) into a temp dir.
fn copy_tree() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == "target" || name.to_string_lossy().starts_with('.') {
                continue;
            }
            let (src, dst) = (e.path(), to.join(&name));
            if src.is_dir() {
                copy(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }
    let root = workspace_root();
    let t = tempfile::tempdir().unwrap();
    for f in ["Cargo.toml", "Cargo.lock", "build.rs"] {
        std::fs::copy(root.join(f), t.path().join(f)).unwrap();
    }
    for d in ["src", "stages", "crates"] {
        copy(&root.join(d), &t.path().join(d));
    }
    t
}

fn ids(root: &Path) -> std::collections::BTreeMap<String, String> {
    scan_identity::compute(root, &Builtin::specs(), LIBTORCH_VERSION)
        .unwrap()
        .identities
}

fn append(path: &Path, text: &str) {
    let mut s = std::fs::read_to_string(path).unwrap();
    s.push_str(text);
    std::fs::write(path, s).unwrap();
}

#[test]
fn baked_identities_match_the_source() {
    let now = ids(&workspace_root());
    for b in Builtin::ALL {
        assert_eq!(
            b.identity(),
            now[b.binary()],
            "{} was built from other sources",
            b.binary()
        );
    }
}

#[test]
fn editing_a_file_in_the_closure_changes_the_identity() {
    let t = copy_tree();
    let base = ids(t.path());
    append(&t.path().join("src/train/pretext.rs"), "\n// edited\n");
    let edited = ids(t.path());
    assert_ne!(edited["scan-pretext"], base["scan-pretext"]);
    // The evaluate binary links the ML library too.
    assert_ne!(edited["scan-evaluate"], base["scan-evaluate"]);
    // Core (the stage protocol) is in every closure.
    append(&t.path().join("crates/core/src/stage.rs"), "\n// edited\n");
    let core_edited = ids(t.path());
    for b in Builtin::ALL {
        assert_ne!(
            core_edited[b.binary()],
            edited[b.binary()],
            "{}",
            b.binary()
        );
    }
}

#[test]
fn editing_report_code_keeps_pretext_embed_and_mine() {
    let t = copy_tree();
    let base = ids(t.path());
    append(
        &t.path().join("crates/evaluate/src/report/mod.rs"),
        "\n// a plot fix\n",
    );
    let edited = ids(t.path());
    for b in [
        Builtin::Ingest,
        Builtin::Pretext,
        Builtin::Embed,
        Builtin::Mine,
    ] {
        assert_eq!(edited[b.binary()], base[b.binary()], "{}", b.binary());
    }
    assert_ne!(edited["scan-evaluate"], base["scan-evaluate"]);
}

#[test]
fn the_same_tree_elsewhere_has_the_same_identities() {
    let (a, b) = (copy_tree(), copy_tree());
    assert_ne!(a.path(), b.path());
    assert_eq!(ids(a.path()), ids(b.path()));
    assert_eq!(ids(a.path()), ids(&workspace_root()));
}

#[test]
fn a_dependency_version_change_changes_the_identity() {
    let t = copy_tree();
    let base = ids(t.path());
    let lock = t.path().join("Cargo.lock");
    let text = std::fs::read_to_string(&lock).unwrap();
    let i = text
        .find("name = \"rayon\"\nversion = \"")
        .expect("rayon is locked");
    let mut edited = text.clone();
    edited.insert(i + "name = \"rayon\"\nversion = \"".len(), '9');
    std::fs::write(&lock, edited).unwrap();
    // rayon's entry in the dependency lists names it without a version when only one is locked.
    let now = ids(t.path());
    assert_ne!(now["scan-mine"], base["scan-mine"]);
}

#[test]
fn every_builtin_is_a_bin_of_its_package() {
    let root = workspace_root();
    for b in Builtin::ALL {
        let dir = if b.package() == "scan" {
            root.clone()
        } else {
            root.join("crates")
                .join(b.package().trim_start_matches("scan-"))
        };
        let manifest: toml::Table =
            toml::from_str(&std::fs::read_to_string(dir.join("Cargo.toml")).unwrap()).unwrap();
        assert_eq!(manifest["package"]["name"].as_str(), Some(b.package()));
        let bins = manifest["bin"].as_array().expect("[[bin]] entries");
        let bin = bins
            .iter()
            .find(|x| x["name"].as_str() == Some(b.binary()))
            .unwrap_or_else(|| panic!("{} is not a [[bin]] of {}", b.binary(), b.package()));
        let path = dir
            .join(bin["path"].as_str().unwrap())
            .canonicalize()
            .unwrap();
        assert_eq!(path, root.join(b.main_source()).canonicalize().unwrap());
    }
}
