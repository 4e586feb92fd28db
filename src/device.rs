//! Where tensors live, chosen at run time: the CPU (burn-flex) or the first CUDA GPU. The run
//! configuration's `device` and the commands' `--device` both end in [`resolve`], the one
//! place that turns the choice into a burn device or into an error that says what to do.

use anyhow::Result;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn-flex on the CPU.
    #[default]
    Cpu,
    /// The first CUDA GPU (a binary built with `--features cuda`).
    Cuda,
}

impl DeviceKind {
    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Cpu => "cpu",
            DeviceKind::Cuda => "cuda",
        }
    }
}

/// The device for `kind`, checked to be usable: asking for CUDA from a CPU-only binary, or on a
/// machine without an NVIDIA driver, GPU or NVRTC, is an error naming the fix.
pub fn resolve(kind: DeviceKind) -> Result<Device> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Cuda => cuda::open(),
    }
}

/// The way out that every device error offers.
const CPU_INSTEAD: &str = "or run on the CPU with `--device cpu` (config: device = \"cpu\")";

#[cfg(not(feature = "cuda"))]
mod cuda {
    use anyhow::{Result, bail};
    use burn::tensor::Device;

    pub fn open() -> Result<Device> {
        bail!(
            "device \"cuda\": this tartan was built without CUDA support; rebuild it with \
             `cargo build --release --features cuda`, {}",
            super::CPU_INSTEAD
        )
    }
}

#[cfg(feature = "cuda")]
mod cuda {
    use std::sync::{Mutex, OnceLock};

    use anyhow::{Result, anyhow};
    use burn::tensor::{Device, Tensor};

    /// The outcome of the first probe (the GPU's name or what is missing), kept: probing
    /// again would not change it.
    static PROBED: OnceLock<Result<String, String>> = OnceLock::new();

    pub fn open() -> Result<Device> {
        PROBED.get_or_init(probe).clone().map_err(|e| anyhow!("device \"cuda\": {e}"))?;
        Ok(Device::cuda(0))
    }

    /// The GPU's name, or what is missing. cudarc panics when a library it needs cannot be
    /// loaded, and cubecl when its device setup fails, so every step that can fail is asked
    /// first through a call that answers instead.
    fn probe() -> Result<String, String> {
        let fix = super::CPU_INSTEAD;
        // SAFETY: only tries to dlopen each candidate name of libcuda.
        if !unsafe { cudarc::driver::sys::is_culib_present() } {
            return Err(format!(
                "no NVIDIA driver (libcuda.so could not be loaded): install the driver, or put the \
                 folder holding libcuda.so on LD_LIBRARY_PATH; {fix}"
            ));
        }
        use cudarc::driver::result;
        result::init().map_err(|e| format!("the NVIDIA driver did not start ({e}); {fix}"))?;
        let count = result::device::get_count().map_err(|e| format!("cannot count CUDA GPUs ({e}); {fix}"))?;
        if count == 0 {
            return Err(format!("the NVIDIA driver sees no GPU (check CUDA_VISIBLE_DEVICES); {fix}"));
        }
        // Kernels are compiled at run time, from CUDA C++, by NVRTC (Cargo.toml, `cuda`).
        // SAFETY: as above, for libnvrtc.
        if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
            return Err(format!(
                "NVRTC (libnvrtc.so), which compiles the GPU kernels, could not be loaded: install the \
                 CUDA toolkit or the nvidia-cuda-nvrtc wheel and put the folder holding libnvrtc.so on \
                 LD_LIBRARY_PATH; {fix}"
            ));
        }
        // NVRTC compiles against the toolkit's headers (cubecl-cuda looks in $CUDA_PATH, then
        // /usr/local/cuda, /opt/cuda, /usr) and panics when there are none.
        let headers = cubecl::cuda::install::cuda_path().map(|p| p.join("include"));
        if !headers.as_ref().is_some_and(|p| p.join("cuda_fp16.h").exists()) {
            return Err(format!(
                "the CUDA toolkit's headers (include/cuda_fp16.h), which NVRTC compiles the GPU kernels \
                 with, are not in {}: install the toolkit, or set CUDA_PATH to the folder holding its \
                 include/; {fix}",
                headers.map_or("$CUDA_PATH, /usr/local/cuda, /opt/cuda or /usr".into(), |p| p.display().to_string())
            ));
        }
        let name =
            result::device::get(0).and_then(result::device::get_name).unwrap_or_else(|_| "an unnamed GPU".into());
        first_kernel().map_err(|e| format!("{name} could not run a first kernel: {e}; {fix}"))?;
        tracing::info!("computing on {name} (CUDA device 0)");
        Ok(name)
    }

    /// Opens the device through burn and runs one kernel, turning a panic (on this thread or
    /// on cubecl's device thread) into its message.
    fn first_kernel() -> Result<(), String> {
        static FIRST_PANIC: Mutex<Option<String>> = Mutex::new(None);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(|info| {
            let mut first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert_with(|| info.to_string());
        }));
        let ran = std::panic::catch_unwind(|| {
            let device = Device::cuda(0);
            let sum = (Tensor::<1>::from_floats([1.0, 2.0], &device) * 2.0).sum().into_scalar::<f32>();
            (sum == 6.0).then_some(()).ok_or(format!("1*2 + 2*2 came back as {sum}"))
        });
        std::panic::set_hook(previous);
        let first = FIRST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).take();
        match ran {
            Ok(result) => result,
            Err(_) => Err(first.unwrap_or_else(|| "it panicked".into())),
        }
    }
}
