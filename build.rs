//! Link-time fixes measured in ../shared/tch-notes.md:
//! - `libtorch_cuda.so` must be linked with `--no-as-needed`, otherwise the linker drops it and the
//!   binaries never detect CUDA on a GPU machine;
//! - an rpath (RUNPATH) to the venv's `torch/lib` makes `target/release/scan` run without
//!   `LD_LIBRARY_PATH` (which, when set, still wins).
//!
//! The forced `torch_cuda` link goes only to the binaries that run torch (the training/inference
//! stages, `scan-doctor`, the test binaries): the `scan` runner itself must not load libtorch, which
//! costs ≈0.5 s per start, so a no-op `scan run` stays in milliseconds.

/// Binaries that use libtorch.
const TORCH_BINS: &[&str] = &[
    "scan-doctor",
    "scan-pretext",
    "scan-embed",
    "scan-mine",
    "scan-cluster",
    "scan-selflabel",
    "scan-evaluate",
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let lib = lib.to_string_lossy();
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-search=native={lib}");
    // Every PyPI wheel of torch 2.11 has CUDA; a CPU-only libtorch has no libtorch_cuda.so.
    if !std::path::Path::new(&*lib)
        .join("libtorch_cuda.so")
        .exists()
    {
        return;
    }
    let force = "-Wl,--no-as-needed,-ltorch_cuda,--as-needed";
    for bin in TORCH_BINS {
        println!("cargo:rustc-link-arg-bin={bin}={force}");
    }
    println!("cargo:rustc-link-arg-tests={force}");
}
