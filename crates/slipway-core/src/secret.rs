//! Secret names and values. A value never prints itself.

use crate::Invalid;
use std::fmt;

pub const MAX_NAME_LEN: usize = 128;

/// A project secret with this name verifies the project's GitHub webhook deliveries. It is
/// never put in a sandbox's environment: PR code must not be able to forge deliveries.
pub const WEBHOOK_SECRET_NAME: &str = "GITHUB_WEBHOOK_SECRET";
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// Checks a secret's name: it becomes an environment variable, so `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_name(name: &str) -> Result<(), Invalid> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if !first_ok
        || name.len() > MAX_NAME_LEN
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Invalid::new(
            "name",
            format!(
                "'{}' is not a valid secret name; use letters, digits and '_', \
                 not starting with a digit, at most {MAX_NAME_LEN} characters (e.g. API_KEY)",
                name.escape_debug()
            ),
        ));
    }
    if name.starts_with("SLIPWAY_") {
        return Err(Invalid::new(
            "name",
            format!("'{name}' is reserved: names starting with SLIPWAY_ are Slipway's own"),
        ));
    }
    Ok(())
}

/// A secret's plaintext. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    /// Checks the value: not empty, not too long.
    pub fn new(value: String) -> Result<Self, Invalid> {
        if value.is_empty() {
            return Err(Invalid::new("value", "is empty; a secret needs a value"));
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(Invalid::new(
                "value",
                format!("is larger than {MAX_VALUE_LEN} bytes"),
            ));
        }
        Ok(Self(value))
    }

    /// The plaintext, for the few places that must have it (encryption, a sandbox's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_environment_variable_names() {
        for good in ["API_KEY", "_x", "a1", "DATABASE_URL"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1X", "A-B", "A B", "é", &"A".repeat(129)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
        assert!(validate_name("SLIPWAY_MASTER_KEY")
            .unwrap_err()
            .message
            .contains("reserved"));
    }

    #[test]
    fn values_never_print() {
        let value = SecretValue::new("hunter2".into()).unwrap();
        assert!(!format!("{value:?}").contains("hunter2"));
        assert!(SecretValue::new(String::new()).is_err());
    }
}
