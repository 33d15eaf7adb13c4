//! What a validation's cell may use: the administrator's ceilings, and what a pull
//! request's `[sandbox]` asks for within them. A pull request may lower a limit, never raise
//! it past its ceiling (it is clamped, and the log says so).

use crate::pipeline::SandboxSection;

/// Quotas and log limits of one validation (or the ceilings they are clamped to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    pub memory_mb: u64,
    pub max_processes: u64,
    pub disk_mb: u64,
    pub cpu_secs: u64,
    /// Files and directories in the workspace and `/tmp` together.
    pub max_files: u64,
    /// Log lines kept per step: the first half as they come, then only the last half.
    pub log_lines: u64,
    /// Log megabytes kept per step, split the same way.
    pub log_mb: u64,
}

impl Default for SandboxLimits {
    /// The built-in defaults, which are also the default ceilings.
    fn default() -> Self {
        Self {
            memory_mb: 2_048,
            max_processes: 512,
            disk_mb: 2_048,
            cpu_secs: 3_600,
            max_files: 500_000,
            log_lines: 20_000,
            log_mb: 16,
        }
    }
}

/// The administrator's ceilings as environment variables, with what each limits.
pub const CEILING_VARS: [(&str, &str); 7] = [
    ("SLIPWAY_SANDBOX_MAX_MEMORY_MB", "memory_mb"),
    ("SLIPWAY_SANDBOX_MAX_PROCESSES", "max_processes"),
    ("SLIPWAY_SANDBOX_MAX_DISK_MB", "disk_mb"),
    ("SLIPWAY_SANDBOX_MAX_CPU_SECS", "cpu_secs"),
    ("SLIPWAY_SANDBOX_MAX_FILES", "max_files"),
    ("SLIPWAY_SANDBOX_MAX_LOG_LINES", "log_lines"),
    ("SLIPWAY_SANDBOX_MAX_LOG_MB", "log_mb"),
];

impl SandboxLimits {
    /// The value of the limit named as in `[sandbox]`.
    pub fn get(&self, key: &str) -> Option<u64> {
        Some(match key {
            "memory_mb" => self.memory_mb,
            "max_processes" => self.max_processes,
            "disk_mb" => self.disk_mb,
            "cpu_secs" => self.cpu_secs,
            "max_files" => self.max_files,
            "log_lines" => self.log_lines,
            "log_mb" => self.log_mb,
            _ => return None,
        })
    }

    fn slot(&mut self, key: &str) -> Option<&mut u64> {
        Some(match key {
            "memory_mb" => &mut self.memory_mb,
            "max_processes" => &mut self.max_processes,
            "disk_mb" => &mut self.disk_mb,
            "cpu_secs" => &mut self.cpu_secs,
            "max_files" => &mut self.max_files,
            "log_lines" => &mut self.log_lines,
            "log_mb" => &mut self.log_mb,
            _ => return None,
        })
    }

    /// Sets the limit named as in `[sandbox]`; `false` for an unknown name.
    pub fn set(&mut self, key: &str, value: u64) -> bool {
        self.slot(key).map(|slot| *slot = value).is_some()
    }

    /// What a validation gets: `section`'s values where it gives them, the defaults
    /// elsewhere, each at most its ceiling in `self`. Also says what was clamped.
    pub fn within(&self, section: Option<&SandboxSection>) -> (SandboxLimits, Vec<String>) {
        let asked = section.cloned().unwrap_or_default();
        let defaults = SandboxLimits::default();
        let mut limits = *self;
        let mut notes = Vec::new();
        for (key, value) in [
            ("memory_mb", asked.memory_mb),
            ("max_processes", asked.max_processes),
            ("disk_mb", asked.disk_mb),
            ("cpu_secs", asked.cpu_secs),
            ("max_files", asked.max_files),
            ("log_lines", asked.log_lines),
            ("log_mb", asked.log_mb),
        ] {
            let ceiling = self.get(key).expect("known key");
            let wanted = value.unwrap_or_else(|| defaults.get(key).expect("known key"));
            if value.is_some() && wanted > ceiling {
                notes.push(format!(
                    "[sandbox] {key} = {wanted} is above this server's ceiling of {ceiling}; \
                     {ceiling} is used (an administrator raises it with {})",
                    ceiling_var(key)
                ));
            }
            limits.set(key, wanted.min(ceiling));
        }
        (limits, notes)
    }
}

impl SandboxLimits {
    /// The ceilings from the `SLIPWAY_SANDBOX_MAX_*` variables (`var` reads one), the
    /// defaults where unset; a bad value is refused with the variable and what is accepted.
    pub fn ceilings_from(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut ceilings = SandboxLimits::default();
        for (name, key) in CEILING_VARS {
            let Some(text) = var(name).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let (_, min, max) = crate::pipeline::LIMIT_RANGES
                .into_iter()
                .find(|(k, _, _)| *k == key)
                .expect("every limit has a range");
            match text.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => {
                    ceilings.set(key, value);
                }
                _ => {
                    return Err(format!(
                        "invalid value '{text}' for environment variable {name}: expected a \
                         whole number from {min} to {max}"
                    ))
                }
            }
        }
        Ok(ceilings)
    }
}

fn ceiling_var(key: &str) -> &'static str {
    CEILING_VARS
        .iter()
        .find(|(_, k)| *k == key)
        .map(|(var, _)| *var)
        .expect("every limit has a ceiling variable")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(memory_mb: Option<u64>, log_lines: Option<u64>) -> SandboxSection {
        SandboxSection {
            memory_mb,
            log_lines,
            ..SandboxSection::default()
        }
    }

    #[test]
    fn a_pull_request_may_lower_a_limit() {
        let (limits, notes) = SandboxLimits::default().within(Some(&section(Some(256), Some(100))));
        assert_eq!(limits.memory_mb, 256);
        assert_eq!(limits.log_lines, 100);
        assert_eq!(limits.disk_mb, SandboxLimits::default().disk_mb);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn a_pull_request_cannot_raise_a_limit_past_its_ceiling_and_is_told() {
        let (limits, notes) =
            SandboxLimits::default().within(Some(&section(Some(262_144), Some(10_000_000))));
        assert_eq!(limits.memory_mb, 2_048);
        assert_eq!(limits.log_lines, 20_000);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("memory_mb = 262144"), "{}", notes[0]);
        assert!(
            notes[0].contains("SLIPWAY_SANDBOX_MAX_MEMORY_MB"),
            "{}",
            notes[0]
        );
    }

    #[test]
    fn ceilings_are_read_from_their_variables_and_bad_values_refused() {
        let vars = |name: &str| match name {
            "SLIPWAY_SANDBOX_MAX_MEMORY_MB" => Some("8192".to_owned()),
            "SLIPWAY_SANDBOX_MAX_LOG_LINES" => Some("500".to_owned()),
            _ => None,
        };
        let ceilings = SandboxLimits::ceilings_from(vars).unwrap();
        assert_eq!(ceilings.memory_mb, 8_192);
        assert_eq!(ceilings.log_lines, 500);
        assert_eq!(ceilings.disk_mb, SandboxLimits::default().disk_mb);
        let error = SandboxLimits::ceilings_from(|name: &str| {
            (name == "SLIPWAY_SANDBOX_MAX_PROCESSES").then(|| "lots".to_owned())
        })
        .unwrap_err();
        assert!(error.contains("SLIPWAY_SANDBOX_MAX_PROCESSES"), "{error}");
        assert!(error.contains("8 to 65536"), "{error}");
    }

    #[test]
    fn absent_keys_take_the_defaults_under_lower_ceilings() {
        let mut ceilings = SandboxLimits::default();
        ceilings.set("memory_mb", 512);
        ceilings.set("cpu_secs", 8_000);
        let (limits, notes) = ceilings.within(None);
        assert_eq!(limits.memory_mb, 512);
        assert_eq!(
            limits.cpu_secs, 3_600,
            "a higher ceiling is not the default"
        );
        assert!(notes.is_empty());
        let (limits, _) = ceilings.within(Some(&SandboxSection {
            cpu_secs: Some(7_000),
            ..SandboxSection::default()
        }));
        assert_eq!(limits.cpu_secs, 7_000, "asked for, under the ceiling");
    }
}
