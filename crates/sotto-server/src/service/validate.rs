//! Input rules for names and passwords, each with an error that says what is accepted.

use super::ServiceError;

/// Shortest and longest username, in characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Shortest and longest login password, in bytes (the upper bound caps hashing cost).
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=1024;
/// Longest display name or token name, in characters.
pub const NAME_MAX_CHARS: usize = 64;

/// ASCII letters, digits, `.`, `_`, `-`; starts with a letter or digit.
pub fn username(u: &str) -> Result<(), ServiceError> {
    let ok_len = USERNAME_LEN.contains(&u.len());
    let ok_chars = u
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    let ok_start = u.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    if ok_len && ok_chars && ok_start {
        Ok(())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "username: {}–{} characters of ASCII letters, digits, '.', '_' or '-', starting with a letter or digit",
            USERNAME_LEN.start(),
            USERNAME_LEN.end()
        )))
    }
}

/// Length limits only: any characters are allowed in a password.
pub fn password(p: &str) -> Result<(), ServiceError> {
    if PASSWORD_LEN.contains(&p.len()) {
        Ok(())
    } else {
        Err(ServiceError::InvalidInput(format!(
            "password: {}–{} bytes",
            PASSWORD_LEN.start(),
            PASSWORD_LEN.end()
        )))
    }
}

/// A display or token name: trimmed, 1–64 characters, no control characters.
/// `field` names it in the error.
pub fn name(field: &str, n: &str) -> Result<String, ServiceError> {
    let n = n.trim();
    let count = n.chars().count();
    if count == 0 || count > NAME_MAX_CHARS || n.chars().any(char::is_control) {
        return Err(ServiceError::InvalidInput(format!(
            "{field}: 1–{NAME_MAX_CHARS} characters, no control characters"
        )));
    }
    Ok(n.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        for good in ["bob", "Alice.B", "a_1-2", "x".repeat(32).as_str()] {
            assert!(username(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "ab",
            "-bob",
            ".bob",
            "bo b",
            "bób",
            "a/b",
            "x".repeat(33).as_str(),
        ] {
            assert!(
                matches!(username(bad), Err(ServiceError::InvalidInput(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn passwords_and_names() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"p".repeat(1025)).is_err());
        assert_eq!(name("n", "  Zoë  ").unwrap(), "Zoë");
        assert!(name("n", "   ").is_err());
        assert!(name("n", "a\u{7}b").is_err());
        assert!(name("n", &"é".repeat(64)).is_ok());
        assert!(name("n", &"é".repeat(65)).is_err());
    }
}
