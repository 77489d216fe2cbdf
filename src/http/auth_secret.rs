//! Tokens and password hashes for signing in.
//!
//! Session cookies, CSRF tokens and sign-in links are 32 random bytes from a cryptographic
//! generator seeded by the operating system (256 bits: not guessable, not enumerable), written as hex. The database
//! keeps only their SHA-256, so a leaked copy of it signs nobody in; a fast hash suffices
//! because the tokens are long random strings, not words a person chose.
//!
//! Passwords are hashed with argon2id at the crate's default parameters (19 MiB, two passes,
//! one lane: the OWASP recommendation), each with its own random salt, in PHC form so the
//! parameters travel with the hash.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

/// The shortest password `leadloop users add|passwd` accepts, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The longest password accepted: argon2 takes any length, but a megabyte "password" would
/// be a way to make the server work for nothing.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Why a password was not hashed.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// Shorter than 12 characters.
    #[error("the password is too short: at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    /// Longer than 1024 bytes.
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// The hasher refused (it does not for valid input).
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// A new random token, as 64 hex digits.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// The SHA-256 of `token` as hex: what the database keeps in its place.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Whether `token` has the shape [`new_token`] gives (anything else is not looked up).
pub fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Compares two tokens in time that depends on their lengths only, so an attacker cannot
/// learn a CSRF token byte by byte from response times.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The argon2id hash of `password` in PHC form, with a new random salt.
///
/// # Errors
/// The password is too short or too long.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC `hash`. A hash that cannot be read matches nothing.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password is checked against except to spend the same time on an unknown
/// address (or one without a password) as on a known one, so the answer's timing does not
/// tell which addresses may sign in.
pub fn decoy_hash() -> &'static str {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        hash_password(&new_token()).unwrap_or_else(|_| {
            // Not reached (a token is long enough); a hash that never matches will do.
            "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned()
        })
    });
    &DECOY
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed_apart() {
        let (a, b) = (new_token(), new_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!is_token("../../etc"));
        assert!(!is_token(&a[1..]));
    }

    #[test]
    fn tokens_compare_equal_only_when_equal() {
        assert!(same_token("abcd", "abcd"));
        assert!(!same_token("abcd", "abce"));
        assert!(!same_token("abcd", "abc"));
        assert!(!same_token("", "a"));
    }

    #[test]
    fn a_password_matches_its_own_hash_only() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("correct horse battery", "not a hash"));
        let again = hash_password("correct horse battery").unwrap();
        assert_ne!(hash, again, "each hash has its own salt");
        assert!(!verify_password("correct horse battery", decoy_hash()));
    }

    #[test]
    fn passwords_have_a_minimum_and_a_maximum_length() {
        assert!(matches!(
            hash_password("elevenchars"),
            Err(PasswordError::TooShort)
        ));
        // Characters, not bytes: twelve accented letters are enough.
        assert!(hash_password("éééééééééééé").is_ok());
        assert!(matches!(
            hash_password(&"x".repeat(MAX_PASSWORD_BYTES + 1)),
            Err(PasswordError::TooLong)
        ));
    }
}
