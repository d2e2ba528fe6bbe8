//! Input rules that need no database. Every error names its field.

use crate::error::{Error, Result};

/// The longest title, in characters, after trimming.
pub const MAX_TITLE_CHARS: usize = 200;

/// Refuses text that holds a NUL character (U+0000). PostgreSQL cannot store one in `text` or
/// `jsonb`, so refusing it here keeps every backend's behaviour the same.
pub fn text<'a>(field: &str, value: &'a str) -> Result<&'a str> {
    if value.contains('\0') {
        Err(Error::validation(field, "must not contain NUL characters"))
    } else {
        Ok(value)
    }
}

/// [`text`] for an optional value.
pub fn optional_text(field: &str, value: Option<&str>) -> Result<()> {
    value.map(|v| text(field, v)).transpose().map(drop)
}

/// Trims a title and checks that 1..=200 characters remain.
pub fn title(raw: &str) -> Result<String> {
    let trimmed = text("title", raw)?.trim();
    let chars = trimmed.chars().count();
    if chars == 0 {
        return Err(Error::validation("title", "must not be blank"));
    }
    if chars > MAX_TITLE_CHARS {
        return Err(Error::validation(
            "title",
            format!("must be at most {MAX_TITLE_CHARS} characters (got {chars})"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Checks that a percentage is within 0..=100.
pub fn percent(field: &str, value: i32) -> Result<i32> {
    if (0..=100).contains(&value) {
        Ok(value)
    } else {
        Err(Error::validation(field, "must be between 0 and 100"))
    }
}

/// Checks a lease length: 10..=86400 seconds.
pub fn lease_seconds(value: i64) -> Result<i64> {
    use crate::model::{MAX_LEASE_SECONDS, MIN_LEASE_SECONDS};
    if (MIN_LEASE_SECONDS..=MAX_LEASE_SECONDS).contains(&value) {
        Ok(value)
    } else {
        Err(Error::validation(
            "lease_seconds",
            format!("must be between {MIN_LEASE_SECONDS} and {MAX_LEASE_SECONDS}"),
        ))
    }
}

/// Checks that an actor or worker id is usable.
pub fn actor_id(field: &str, value: &str) -> Result<()> {
    if text(field, value)?.trim().is_empty() {
        Err(Error::validation(field, "must not be blank"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_is_trimmed_and_bounded() {
        assert_eq!(title("  hi  ").unwrap(), "hi");
        assert!(title("   ").is_err());
        let exactly = "é".repeat(200);
        assert_eq!(title(&format!(" {exactly} ")).unwrap(), exactly);
        let err = title(&"x".repeat(201)).unwrap_err();
        assert!(err.to_string().starts_with("title: "), "{err}");
    }

    #[test]
    fn nul_characters_are_refused() {
        assert_eq!(
            text("description", "a\0b").unwrap_err().to_string(),
            "description: must not contain NUL characters"
        );
        assert!(title("x\0").is_err());
        assert!(actor_id("id", "\0").is_err());
        assert!(optional_text("note", Some("\u{0}")).is_err());
        assert!(optional_text("note", None).is_ok());
        assert_eq!(text("t", "fine").unwrap(), "fine");
    }

    #[test]
    fn percents() {
        assert!(percent("percent", -1).is_err());
        assert!(percent("percent", 101).is_err());
        assert_eq!(percent("percent", 0).unwrap(), 0);
        assert_eq!(percent("percent", 100).unwrap(), 100);
    }
}
