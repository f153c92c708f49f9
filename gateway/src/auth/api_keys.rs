//! API key material: `pk_{tenant prefix}_{32 random characters}`, stored only
//! as its SHA-256, recognised by a short prefix.

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

/// Random characters after the tenant prefix.
const RANDOM_CHARS: usize = 32;

/// A new key for `tenant` and the prefix shown in listings (`pk_1a2b3c4d_Xy9z`).
pub fn generate(tenant: &str) -> (String, String) {
    let tenant_prefix: String = tenant.chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(RANDOM_CHARS)
        .map(char::from)
        .collect();
    let key = format!("pk_{tenant_prefix}_{random}");
    let shown = format!("pk_{tenant_prefix}_{}", &random[..4]);
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
    fn keys_have_the_documented_shape() {
        let (key, shown) = super::generate("0b7e2f4a-1111-4222-8333-944445555666");
        let parts: Vec<&str> = key.split('_').collect();
        assert_eq!(parts.len(), 3, "{key}");
        assert_eq!(parts[0], "pk");
        assert_eq!(parts[1], "0b7e2f4a");
        assert_eq!(parts[2].len(), 32);
        assert!(parts[2].chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(key.starts_with(&shown));
        assert_ne!(key, super::generate("0b7e2f4a").0);
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            super::hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
