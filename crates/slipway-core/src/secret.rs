//! Secret names and values. A value never prints itself.

use crate::Invalid;
use std::fmt;

pub const MAX_NAME_LEN: usize = 128;

/// A project secret with this name verifies the project's GitHub webhook deliveries. It is
/// never put in a sandbox's environment: PR code must not be able to forge deliveries.
pub const WEBHOOK_SECRET_NAME: &str = "GITHUB_WEBHOOK_SECRET";
pub const MAX_VALUE_LEN: usize = 64 * 1024;
/// A new secret's shortest value, in characters; see [`SecretValue::new_secret`].
pub const MIN_SECRET_CHARS: usize = 4;
/// Values shorter than this (in characters) are masked only as whole tokens.
pub const WHOLE_TOKEN_BELOW: usize = 8;

/// Checks a secret's name: it becomes an environment variable, so `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_name(name: &str) -> Result<(), Invalid> {
    validate_env_name(name, "secret")
}

/// Checks the name of a secret or a variable (`what`), an environment variable's name.
pub fn validate_env_name(name: &str, what: &str) -> Result<(), Invalid> {
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
                "'{}' is not a valid {what} name; use letters, digits and '_', \
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

    /// A value about to be stored as a secret: refused under [`MIN_SECRET_CHARS`] characters
    /// (it would hide innocent words and its own value would be guessed from the gaps: a
    /// variable is the place for it); under [`WHOLE_TOKEN_BELOW`] characters it is accepted
    /// with a warning, as it is masked only where it stands as a whole token.
    pub fn new_secret(value: String) -> Result<(Self, Option<String>), Invalid> {
        let value = Self::new(value)?;
        let chars = value.0.chars().count();
        if chars < MIN_SECRET_CHARS {
            return Err(Invalid::new(
                "value",
                format!(
                    "is {chars} character(s): a secret needs at least {MIN_SECRET_CHARS}, as a shorter one would be masked inside ordinary words; store a value like this (a switch, a mode) as a variable instead: shown, never masked"
                ),
            ));
        }
        let warning = (chars < WHOLE_TOKEN_BELOW).then(|| {
            format!(
                "a value of {chars} characters is masked only where it stands as a whole word (not inside longer words); a longer value is masked everywhere"
            )
        });
        Ok((value, warning))
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

    #[test]
    fn short_values_are_refused_as_secrets_or_warned() {
        let refused = SecretValue::new_secret("on".into()).unwrap_err();
        assert!(refused.message.contains("variable"), "{}", refused.message);
        assert!(SecretValue::new_secret("abc".into()).is_err());
        let (_, warning) = SecretValue::new_secret("test".into()).unwrap();
        assert!(warning.unwrap().contains("whole word"));
        let (_, warning) = SecretValue::new_secret("1234567".into()).unwrap();
        assert!(warning.is_some());
        let (value, warning) = SecretValue::new_secret("12345678".into()).unwrap();
        assert_eq!((value.expose(), warning), ("12345678", None));
        // Stored short values still read back (see Store::secret_values).
        assert!(SecretValue::new("on".into()).is_ok());
    }
}
