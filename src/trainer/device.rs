//! Where training runs: burn's pure-Rust CPU backend, or CUDA when this build has it (feature
//! `cuda`) and the machine has an NVIDIA driver. The same code path serves both; asking for CUDA
//! where it cannot run falls back to the CPU and says why.

use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Device {
    Cpu,
    Cuda,
}

/// Whether the NVIDIA driver library can be found (the CUDA backend loads it at run time).
fn libcuda_present() -> bool {
    let mut dirs: Vec<String> =
        std::env::var("LD_LIBRARY_PATH").unwrap_or_default().split(':').map(String::from).collect();
    dirs.extend(
        ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib", "/usr/local/cuda/lib64", "/usr/lib/wsl/lib"]
            .map(String::from),
    );
    dirs.iter().filter(|d| !d.is_empty()).any(|d| Path::new(d).join("libcuda.so.1").exists())
}

/// The device to train on for `requested` (`cpu`, `cuda` or `auto`); the message says why it is
/// not the one asked for.
pub fn choose(requested: &str) -> Result<(Device, Option<String>), String> {
    let cuda_built = cfg!(feature = "cuda");
    match requested {
        "cpu" => Ok((Device::Cpu, None)),
        "cuda" | "auto" if !cuda_built => Ok((
            Device::Cpu,
            (requested == "cuda")
                .then(|| "this build has no CUDA backend (build with --features cuda): training on the CPU".into()),
        )),
        "cuda" | "auto" if !libcuda_present() => Ok((
            Device::Cpu,
            (requested == "cuda").then(|| {
                "CUDA requested but libcuda.so.1 (the NVIDIA driver) was not found: training on the CPU".into()
            }),
        )),
        "cuda" | "auto" => Ok((Device::Cuda, None)),
        other => Err(format!("--device {other:?}: use cpu, cuda or auto")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_is_always_possible_and_cuda_falls_back_with_a_reason() {
        assert_eq!(choose("cpu").unwrap(), (Device::Cpu, None));
        assert!(choose("gpu").is_err());
        let (device, why) = choose("cuda").unwrap();
        if device == Device::Cpu {
            assert!(why.unwrap().contains("training on the CPU"));
        }
    }
}
