//! API key material: `pk_{tenant}_{32 random characters}` with the whole tenant
//! id, stored only as its SHA-256, recognised by its prefix (the tenant and the
//! first random characters).
//!
//! A key is looked up by its hash and never parsed, so keys made before the
//! whole tenant id was included (`pk_{8 characters of it}_…`) keep working.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Random characters after the tenant.
const RANDOM_CHARS: usize = 32;

/// Random characters shown in listings after the tenant.
const SHOWN_RANDOM_CHARS: usize = 4;

/// A new key for `tenant` (a valid tenant id, so safe in a header) and the
/// prefix shown in listings (`pk_{tenant}_Xy9z`).
pub fn generate(tenant: &str) -> (String, String) {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let key = format!("pk_{tenant}_{random}");
    let shown = format!("pk_{tenant}_{}", &random[..SHOWN_RANDOM_CHARS]);
    (key, shown)
}

/// The hex SHA-256 of `key`, under which it is stored and looked up.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_carry_the_whole_tenant_id() {
        for tenant in ["0b7e2f4a-1111-4222-8333-944445555666", "demo", "team_a.prod"] {
            let (key, shown) = super::generate(tenant);
            let random = key
                .strip_prefix(&format!("pk_{tenant}_"))
                .unwrap_or_else(|| panic!("{key} starts with pk_{tenant}_"));
            assert_eq!(random.len(), 32, "{key}");
            assert!(random.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
            assert_eq!(shown, format!("pk_{tenant}_{}", &random[..4]));
            assert_ne!(key, super::generate(tenant).0);
        }
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
