//! [`Secret`]: a credential (a bearer token, an S3 secret key) whose `Debug`
//! never prints it, so structs that hold one can derive `Debug` and be
//! logged safely. Read it with [`Secret::expose`], where it is used.

/// A credential. `Debug` shows `Secret(<redacted>)`; deserialises from, and
/// parses as, a plain string.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The credential itself, for the one place that sends or checks it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret(value.to_string())
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn debug_never_shows_the_value() {
        #[derive(Debug)]
        #[allow(dead_code, reason = "only printed")]
        struct Holder {
            token: Option<Secret>,
        }
        let h = Holder {
            token: Some(Secret::new("s3cr3t-token-value")),
        };
        let printed = format!("{h:?} {h:#?}");
        assert!(!printed.contains("s3cr3t"), "{printed}");
        assert!(printed.contains("Secret(<redacted>)"));
        assert_eq!(h.token.unwrap().expose(), "s3cr3t-token-value");
    }
}
