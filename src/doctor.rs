//! `scan doctor`: which libtorch loaded (version read from the loaded library's own Python package),
//! CUDA availability, device name (CUDA driver API), cuDNN, torch's CPU threads, and the store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

/// Directory of the `libtorch_cpu.so` this process actually loaded (from `/proc/self/maps`).
fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

/// `torch/version.py` beside the loaded `torch/lib` holds `__version__ = '2.11.0+cu130'`.
fn torch_version(lib_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(lib_dir.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__"))
        .map(|rest| {
            rest.trim_start_matches([' ', '='])
                .trim()
                .trim_matches(['\'', '"'])
                .to_string()
        })
}

/// Name of CUDA device 0 through the driver API (`libcuda.so.1`), if a driver is present.
pub fn cuda_device_name() -> Option<String> {
    type CuInit = unsafe extern "C" fn(u32) -> i32;
    type CuDeviceGet = unsafe extern "C" fn(*mut i32, i32) -> i32;
    type CuDeviceGetName = unsafe extern "C" fn(*mut libc::c_char, i32, i32) -> i32;
    // SAFETY: plain C calls into the CUDA driver with valid pointers and buffer lengths; symbols are
    // checked for null before use and the library handle is never closed while in use.
    unsafe {
        let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY);
        if handle.is_null() {
            return None;
        }
        let init = libc::dlsym(handle, c"cuInit".as_ptr());
        let get = libc::dlsym(handle, c"cuDeviceGet".as_ptr());
        let name = libc::dlsym(handle, c"cuDeviceGetName".as_ptr());
        if init.is_null() || get.is_null() || name.is_null() {
            return None;
        }
        let init: CuInit = std::mem::transmute(init);
        let get: CuDeviceGet = std::mem::transmute(get);
        let name_fn: CuDeviceGetName = std::mem::transmute(name);
        if init(0) != 0 {
            return None;
        }
        let mut dev = 0i32;
        if get(&mut dev, 0) != 0 {
            return None;
        }
        let mut buf = [0 as libc::c_char; 256];
        if name_fn(buf.as_mut_ptr(), buf.len() as i32, dev) != 0 {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(buf.as_ptr())
                .to_string_lossy()
                .into_owned(),
        )
    }
}

fn dir_size(path: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut files = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                bytes += meta.len();
                files += 1;
            }
        }
    }
    (bytes, files)
}

pub fn run(store: Option<&Path>) -> anyhow::Result<ExitCode> {
    // Touch libtorch first so that it is loaded (and mapped) before we look for it.
    let cuda = tch::Cuda::is_available();
    let threads = tch::get_num_threads();
    let lib_dir = loaded_libtorch_dir().context("libtorch is not loaded in this process")?;
    let version = torch_version(&lib_dir).unwrap_or_else(|| "unknown".into());
    println!("libtorch:      {version} ({})", lib_dir.display());
    println!(
        "cuda:          {}",
        if cuda { "available" } else { "not available" }
    );
    if cuda {
        println!("cuda devices:  {}", tch::Cuda::device_count());
        println!(
            "device 0:      {}",
            cuda_device_name().unwrap_or_else(|| "unknown".into())
        );
        println!(
            "cudnn:         {}",
            if tch::Cuda::cudnn_is_available() {
                "available"
            } else {
                "not available"
            }
        );
    }
    println!("torch threads: {threads}");
    let store = store
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("artifacts"));
    let (bytes, files) = dir_size(&store);
    let exists = store.is_dir();
    println!(
        "store:         {}{}",
        store.display(),
        if exists {
            format!(" ({files} files, {:.1} MiB)", bytes as f64 / 1048576.0)
        } else {
            " (not created yet)".into()
        }
    );
    Ok(ExitCode::SUCCESS)
}
