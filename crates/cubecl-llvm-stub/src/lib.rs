//! A stand-in for `cubecl-llvm` 0.11.3, so that `--features cuda` builds with no network.
//!
//! cubecl-cuda 0.11.3 always depends on cubecl-llvm, and cubecl-llvm's build script (through
//! `tracel-llvm-bundler`) downloads a prebuilt LLVM from GitHub: no build machine of this
//! project reaches anything but the package registries. No cubecl or burn feature drops the
//! dependency. cubecl-cuda compiles kernels either through LLVM or, with cubecl's `cuda-cpp`
//! feature (which tartan's `cuda` feature turns on), as CUDA C++ through NVRTC, loaded at run
//! time. With `cuda-cpp` cubecl-cuda only *names* the LLVM backend's types; this crate gives
//! it those names and nothing else, and its compiler answers with an error.
//!
//! What this costs: the cubecl runtimes that need LLVM itself (burn's `cpu` and `rocm`
//! features, i.e. cubecl-cpu and cubecl-hip) no longer build. To go back to the real crate,
//! delete the `[patch.crates-io]` entry in the root Cargo.toml.

use cubecl_core::ir::DeviceProperties;
use cubecl_core::ir::nvidia::SmArch;
use cubecl_core::prelude::KernelDefinition;
use cubecl_environment::backtrace::BackTrace;
use cubecl_runtime::{compiler::CompilationError, kernel::BufferIOAttr};

pub mod nvptx {
    pub mod ptx_version {
        /// A PTX ISA version. Only the LLVM backend emits one, so none is ever chosen here.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub struct PtxVersion(u32);

        impl PtxVersion {
            pub fn for_driver(_driver: i32) -> Option<Self> {
                None
            }
        }

        impl core::fmt::Display for PtxVersion {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "ptx{}", self.0)
            }
        }
    }
}

pub mod shared {
    pub mod lowered_features {
        use super::super::DeviceProperties;

        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum GpuTarget {
            Nvptx,
        }

        /// cubecl-cuda narrows what the device advertises to what LLVM lowers only when LLVM
        /// compiles; with this stand-in it never does, so there is nothing to narrow.
        pub fn restrict_features(_props: &mut DeviceProperties, _target: GpuTarget) {}
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LlvmTarget {
    #[default]
    Nvptx,
}

#[derive(Clone, Debug, Default)]
pub struct PlironOptions {
    pub arch: Option<()>,
    pub sm_arch: Option<SmArch>,
    pub ptx_version: Option<nvptx::ptx_version::PtxVersion>,
    pub grid_constants: bool,
}

#[derive(Clone, Debug)]
pub struct NvptxModule {
    pub ptx: Vec<core::ffi::c_char>,
    pub ir: String,
    pub shared_memory_size: usize,
    pub io: Vec<BufferIOAttr>,
}

#[derive(Clone, Debug)]
pub enum PlironArtifact {
    NvptxCode(NvptxModule),
}

#[derive(Clone, Debug, Default)]
pub struct PlironCompiler {
    pub target: LlvmTarget,
}

impl PlironCompiler {
    /// Always an error: this build has no LLVM. Reached only when cubecl-cuda was built
    /// without `cpp`, whose default backend is then LLVM.
    pub fn compile(
        &mut self,
        _kernel: KernelDefinition,
        _options: &PlironOptions,
    ) -> Result<PlironArtifact, CompilationError> {
        Err(CompilationError::Generic {
            reason: "this build has no LLVM (tartan's crates/cubecl-llvm-stub stands in for cubecl-llvm): \
                     build with cubecl's `cuda-cpp` feature, as tartan's `cuda` feature does, to compile \
                     CUDA kernels with NVRTC"
                .into(),
            backtrace: BackTrace::capture(),
        })
    }

    pub fn lang_tag(&self) -> &'static str {
        "llvm"
    }
}
