//! Reading configuration from the environment, with errors that name the variable.
//!
//! Lambda functions are configured only through environment variables (set by Pulumi), so
//! every setting has one name and one parser here. This module must not hold defaults for
//! particular settings: their owners do.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{name} must be a whole number, got {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("{name} is not valid UTF-8")]
    NotUnicode { name: &'static str },
    #[error("{name} must be true or false, got {value:?}")]
    NotABool { name: &'static str, value: String },
}

/// An optional non-negative integer setting; unset or empty means "use the default".
pub fn env_number(name: &'static str) -> Result<Option<u64>, ConfigError> {
    match env_string(name)? {
        None => Ok(None),
        Some(value) => value
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::NotANumber { name, value }),
    }
}

/// An optional yes/no setting (`true`/`false`, `1`/`0`); unset or empty means the default.
pub fn env_bool(name: &'static str) -> Result<Option<bool>, ConfigError> {
    match env_string(name)? {
        None => Ok(None),
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Some(true)),
            "false" | "0" | "no" => Ok(Some(false)),
            _ => Err(ConfigError::NotABool { name, value }),
        },
    }
}

/// A directory setting; unset or empty means `default`.
pub fn env_path(name: &'static str, default: &Path) -> PathBuf {
    std::env::var_os(name)
        .filter(|value| !value.is_empty())
        .map_or_else(|| default.to_owned(), PathBuf::from)
}

/// An optional string setting; unset or empty means `None`.
pub fn env_string(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
    }
}
