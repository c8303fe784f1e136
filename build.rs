//! Link-time fixes measured in ../shared/tch-notes.md:
//! - `libtorch_cuda.so` must be linked with `--no-as-needed`, otherwise the linker drops it and the
//!   binaries never detect CUDA on a GPU machine;
//! - an rpath (RUNPATH) to the venv's `torch/lib` makes `target/release/scan` run without
//!   `LD_LIBRARY_PATH` (which, when set, still wins).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return;
    }
    if let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB") {
        let lib = lib.to_string_lossy();
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-search=native={lib}");
        // Only link torch_cuda explicitly when this libtorch has it (every PyPI wheel of 2.11 does).
        if std::path::Path::new(&*lib).join("libtorch_cuda.so").exists() {
            println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
            println!("cargo:rustc-link-arg=-ltorch_cuda");
        }
    }
}
