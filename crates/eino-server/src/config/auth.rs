//! `auth:`: API keys (as SHA-256 hashes) and JWT validation.

use serde::{Deserialize, Serialize};

use super::{valid_name, ConfigError};

/// One API key, stored as its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// Hex SHA-256 of the key (`eino keys hash KEY` prints it).
    pub sha256: String,
    /// The tenant whose data this key sees.
    pub tenant: String,
    /// A label for logs and metrics.
    #[serde(default)]
    pub name: Option<String>,
}

/// `auth:` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accepted API keys (`Authorization: Bearer KEY`).
    pub api_keys: Vec<ApiKeyConfig>,
    /// JWT validation.
    pub jwt: Option<JwtConfig>,
}

/// JWT validation: HS256 with a shared secret from the environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// Environment variable holding the HMAC secret.
    pub secret_env: String,
    /// Required `iss`, if any.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Required `aud`, if any.
    #[serde(default)]
    pub audience: Option<String>,
    /// The claim naming the tenant (default `tenant`).
    #[serde(default)]
    pub tenant_claim: Option<String>,
    /// Accept a token without the tenant claim as tenant `sub` (off: such a token is
    /// refused, so a JWT subject can never read an API-key tenant of the same name by
    /// accident). Turn on only when subjects are tenant names by design.
    #[serde(default)]
    pub tenant_from_sub: bool,
}

impl AuthConfig {
    /// Check the section; the error names the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, k) in self.api_keys.iter().enumerate() {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::new(
                    format!("auth.api_keys[{i}].sha256"),
                    "must be the 64-hex-digit SHA-256 of the key (see `eino keys hash`)",
                ));
            }
            if !valid_name(&k.tenant) {
                return Err(ConfigError::new(
                    format!("auth.api_keys[{i}].tenant"),
                    "tenants are 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
        }
        Ok(())
    }
}
