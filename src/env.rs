//! The environment a run happened in: tool build, host machine, time.

use serde::{Deserialize, Serialize};

/// Which gpuvet produced a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
    pub git_sha: String,
}

impl ToolInfo {
    pub fn current() -> Self {
        ToolInfo {
            name: "gpuvet".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            git_sha: env!("GPUVET_GIT_SHA").into(),
        }
    }
}

/// The host machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    pub hostname: String,
    pub cpu_model: String,
    /// Physical cores, where the OS tells.
    pub cpu_cores: Option<usize>,
    pub logical_cpus: usize,
    pub memory_bytes: u64,
    pub os: String,
    pub kernel: String,
}

impl HostInfo {
    pub fn capture() -> Self {
        use sysinfo::System;
        let mut sys = System::new();
        sys.refresh_memory();
        sys.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
        let cpu_model = sys
            .cpus()
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        HostInfo {
            hostname: System::host_name().unwrap_or_else(|| "unknown".into()),
            cpu_model,
            cpu_cores: System::physical_core_count(),
            logical_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes: sys.total_memory(),
            os: System::long_os_version().unwrap_or_else(|| std::env::consts::OS.into()),
            kernel: System::kernel_version().unwrap_or_else(|| "unknown".into()),
        }
    }

    /// A fixed host for snapshot tests.
    pub fn fixed() -> Self {
        HostInfo {
            hostname: "test-host".into(),
            cpu_model: "Test CPU".into(),
            cpu_cores: Some(2),
            logical_cpus: 2,
            memory_bytes: 8 << 30,
            os: "TestOS".into(),
            kernel: "0.0".into(),
        }
    }
}

/// Memory the OS says is available for new allocations, in bytes.
pub fn available_memory() -> u64 {
    let mut sys = sysinfo::System::new();
    sys.refresh_memory();
    sys.available_memory()
}

/// Current UTC time as RFC 3339 with seconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Size of the last-level cache of CPU 0, from sysfs; 32 MiB when unknown.
pub fn cpu_last_level_cache() -> u64 {
    let mut best = 0u64;
    for idx in 0..8 {
        let p = format!("/sys/devices/system/cpu/cpu0/cache/index{idx}/size");
        if let Ok(s) = std::fs::read_to_string(&p) {
            let s = s.trim();
            let (num, mult) = if let Some(k) = s.strip_suffix('K') {
                (k, 1024)
            } else if let Some(m) = s.strip_suffix('M') {
                (m, 1 << 20)
            } else {
                (s, 1)
            };
            if let Ok(v) = num.parse::<u64>() {
                best = best.max(v * mult);
            }
        }
    }
    if best == 0 {
        32 << 20
    } else {
        best
    }
}

/// Seconds from the environment variable `name`: `default` when it is unset, an error naming
/// the variable when it is not a number of seconds above 0 and at most `max_s` (a typo must
/// not leave a limit silently at its default, and `1e20` is not a duration the clock can
/// hold).
pub fn seconds_var(
    name: &str,
    default: std::time::Duration,
    max_s: f64,
) -> crate::error::Result<std::time::Duration> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0 && *s <= max_s)
            .map(std::time::Duration::from_secs_f64)
            .ok_or_else(|| {
                crate::error::Error::invalid(format!(
                    "{name}={v} is not a number of seconds above 0 and at most {max_s}"
                ))
            }),
    }
}
