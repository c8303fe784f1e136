//! Computes the code identity of every built-in stage from the source tree (see the `scan-identity`
//! crate for the rule) and writes them to `$OUT_DIR/identities.rs`, which `src/builtin.rs` includes.
//! Cargo reruns this script whenever a file in any stage's closure changes.

use std::path::PathBuf;

/// The registry, read with a macro that keeps only what the identity needs.
macro_rules! builtin_stages {
    ($($variant:ident => $binary:literal, $package:literal, $main:literal, $params:ident;)*) => {
        const STAGES: &[scan_identity::StageSpec<'static>] = &[$(scan_identity::StageSpec {
            binary: $binary,
            package: $package,
            main: $main,
        }),*];
    };
}
include!("src/registry.rs");

fn main() {
    for var in [
        "LIBTORCH",
        "LIBTORCH_USE_PYTORCH",
        "PYTHON_SYS_EXECUTABLE",
        "VIRTUAL_ENV",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest
        .parent()
        .and_then(|p| p.parent())
        .expect("crates/core is two levels below the workspace root")
        .to_path_buf();
    let (libtorch, version_file) = scan_identity::libtorch_version();
    if let Some(f) = version_file {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let computed = match scan_identity::compute(&root, STAGES, &libtorch) {
        Ok(c) => c,
        Err(e) => panic!("code identity of the built-in stages: {e}"),
    };
    for path in &computed.watched {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    let mut out = String::from("/// Binary → code identity, computed by build.rs.\n");
    out.push_str("pub const IDENTITIES: &[(&str, &str)] = &[\n");
    for (binary, id) in &computed.identities {
        out.push_str(&format!("    ({binary:?}, {id:?}),\n"));
    }
    out.push_str("];\n");
    out.push_str(&format!(
        "/// The libtorch version found at build time.\npub const LIBTORCH: &str = {libtorch:?};\n"
    ));
    let dest =
        PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("identities.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
