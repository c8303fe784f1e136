//! The `main` of every torch stage binary: the core stage protocol ([`scan_core::stage`]) plus the
//! [`Provenance`] record of where the stage ran (device, libtorch, threads, precision).

use std::process::ExitCode;

use scan_core::builtin::Builtin;
use scan_core::stage::{Provenance, StageArgs};

/// Where this process runs torch: CUDA when available (what every `auto` device picks).
pub fn provenance() -> Provenance {
    let cuda = tch::Cuda::is_available();
    Provenance {
        device: if cuda { "cuda" } else { "cpu" }.into(),
        device_name: if cuda {
            crate::doctor::cuda_device_name()
        } else {
            None
        },
        libtorch: Some(scan_core::builtin::LIBTORCH_VERSION.to_string()),
        cuda: Some(if cuda { "available" } else { "not available" }.into()),
        threads: tch::get_num_threads().max(0) as usize,
        precision: Some("fp32".into()),
    }
}

/// Run `run` under the stage protocol and record the provenance on success.
pub fn stage_main(
    builtin: Builtin,
    run: impl FnOnce(&StageArgs) -> anyhow::Result<()>,
) -> ExitCode {
    scan_core::stage::stage_main(builtin, |args| {
        run(args)?;
        provenance().record()?;
        Ok(())
    })
}
