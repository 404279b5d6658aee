//! A secret (the API key) that cannot end up in a log line, a `Debug` dump, a panic message or the status:
//! it has no `Display`, its `Debug` shows at most the last four characters (as Datadog's agent does, so an
//! operator can tell which key is in use), and only [`Secret::expose`] gives the value, for the one request
//! header that needs it.

/// A string that is never printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself: only for where it must be sent.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `***` and, for a key of 16 characters or more, its last four (`***abcd`).
    pub fn redacted(&self) -> String {
        let n = self.0.chars().count();
        if n >= 16 {
            let tail: String = self.0.chars().skip(n - 4).collect();
            format!("***{tail}")
        } else {
            "***".to_string()
        }
    }
}

/// A secret as `kelpie config` shows it, `************cdef`: a star per character, and for more than eight
/// characters the last four. Unlike [`Secret::redacted`] (`***cdef`, used by `Debug`), it shows the length.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    let keep = if chars.len() > 8 { 4 } else { 0 };
    let shown: String = chars[chars.len() - keep..].iter().collect();
    format!("{}{shown}", "*".repeat(chars.len() - keep))
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Secret {
        Secret(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Secret {
        Secret(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let key = "0123456789abcdef0123456789abcdef";
        let s = Secret::new(key);
        let shown = format!("{s:?} {:?}", Some(&s));
        assert!(!shown.contains(key), "{shown}");
        assert!(!shown.contains("0123456789abcdef0123"), "{shown}");
        assert_eq!(format!("{s:?}"), "Secret(***cdef)");
        assert_eq!(format!("{:?}", Secret::new("short")), "Secret(***)");
        assert_eq!(s.expose(), key);
    }
}
