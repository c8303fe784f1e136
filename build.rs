// Link fixes for every binary of a package that runs torch (this package's stage binaries and
// `scan-doctor`; `crates/evaluate` includes this file for `scan-evaluate`):
// - `libtorch_cuda.so` is linked with `--no-as-needed`, otherwise the linker drops it and the
//   binaries never detect CUDA on a GPU machine;
// - an rpath (RUNPATH) to the venv's `torch/lib` makes the binaries run without `LD_LIBRARY_PATH`
//   (which, when set, still wins).
// The `scan` runner is in `scan-core`, which does not link libtorch (loading it costs ≈0.5 s per
// start), so a no-op `scan run` stays in milliseconds.

// The root package also compiles `src/nn/autocast.cpp` (bf16/fp16 autocast per device type, which
// libtorch's C API does not offer) against the headers next to that libtorch.
fn autocast_shim(lib: &std::path::Path) {
    println!("cargo:rerun-if-changed=src/nn/autocast.cpp");
    println!("cargo:rerun-if-changed=src/nn/batchnorm.cpp");
    let include = lib.parent().map(|t| t.join("include"));
    let Some(include) = include.filter(|i| i.join("ATen/autocast_mode.h").exists()) else {
        panic!("libtorch headers not found next to {}", lib.display());
    };
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag_if_supported("-Wno-unused-parameter")
        .warnings(false)
        .file("src/nn/autocast.cpp")
        .file("src/nn/batchnorm.cpp")
        .compile("scan_autocast");
}

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
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("scan") {
        autocast_shim(std::path::Path::new(&*lib));
    }
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
    println!("cargo:rustc-link-arg-bins={force}");
    // Only the root package has integration tests (`tests/`), which also run torch.
    if std::env::var("CARGO_PKG_NAME").as_deref() == Ok("scan") {
        println!("cargo:rustc-link-arg-tests={force}");
    }
}
