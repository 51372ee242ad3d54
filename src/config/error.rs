//! Config errors: one per problem found, each naming the file, the key path and the value.
//!
//! Loading collects every problem it can find before giving up, so a user fixes a file in one
//! pass. `ConfigErrors` prints one error per line.

use std::fmt;

/// Line and column (both 1-based) of a problem in the TOML text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Location {
    /// The location of byte `offset` in `text` (clamped to the end of the text).
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        Location {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

/// What is wrong; each variant says when it arises and what it carries.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// The file could not be read; carries the operating system's message.
    Io { error: String },
    /// The text is not valid TOML; carries the parser's message (the location is set).
    Syntax { message: String },
    /// A key the schema does not have; carries the keys accepted at that level.
    UnknownKey { accepted: Vec<&'static str> },
    /// A key the schema has, but not for this upstream kind; carries the kind and the keys
    /// that kind accepts.
    KeyNotForKind {
        kind: &'static str,
        accepted: Vec<&'static str>,
    },
    /// A key required by the value of another key (an `http` upstream's `url`) is absent;
    /// carries what it is required for and what is expected.
    Missing {
        required_by: String,
        expected: String,
    },
    /// A value of the wrong TOML type, or a required key missing; carries the decoder's message.
    WrongType { message: String },
    /// A number outside its accepted range; carries the value and the range as `min..=max`.
    OutOfRange { value: String, accepted: String },
    /// A value of the right type that is not acceptable; carries the value and why.
    Invalid { value: String, reason: String },
    /// Keys that are each valid but do not fit together; carries the rule that was broken.
    Conflict { reason: String },
}

/// One problem in one config source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the config came from: a file path, or a label such as `built-in defaults`.
    pub origin: String,
    /// Where in the text, when known.
    pub location: Option<Location>,
    /// The key path (`limits.header_bytes_max`, `upstreams[1].name`); empty for the whole file.
    pub key: String,
    /// What is wrong.
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(location) = self.location {
            write!(f, ":{}:{}", location.line, location.column)?;
        }
        write!(f, ": ")?;
        let key = &self.key;
        match &self.kind {
            ConfigErrorKind::Io { error } => write!(f, "cannot read config file: {error}"),
            ConfigErrorKind::Syntax { message } => write!(f, "invalid toml: {message}"),
            ConfigErrorKind::UnknownKey { accepted } => {
                write!(f, "unknown key {key} (accepted: {})", accepted.join(", "))
            }
            ConfigErrorKind::KeyNotForKind { kind, accepted } => write!(
                f,
                "key {key} does not apply to kind = \"{kind}\" ({kind} upstreams accept: {})",
                accepted.join(", ")
            ),
            ConfigErrorKind::Missing {
                required_by,
                expected,
            } => write!(
                f,
                "{key} is missing: {required_by} requires it ({expected})"
            ),
            ConfigErrorKind::WrongType { message } if key.is_empty() => write!(f, "{message}"),
            ConfigErrorKind::WrongType { message } => write!(f, "{key}: {message}"),
            ConfigErrorKind::OutOfRange { value, accepted } => {
                write!(f, "{key} = {value} is out of range (accepted {accepted})")
            }
            ConfigErrorKind::Invalid { value, reason } => {
                write!(f, "{key} = {value} is invalid: {reason}")
            }
            ConfigErrorKind::Conflict { reason } => write!(f, "{key}: {reason}"),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config source; never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors {
    errors: Vec<ConfigError>,
}

impl ConfigErrors {
    /// Wraps a non-empty list of errors.
    pub(crate) fn new(errors: Vec<ConfigError>) -> ConfigErrors {
        assert!(
            !errors.is_empty(),
            "config errors must name at least one problem"
        );
        ConfigErrors { errors }
    }

    /// The errors, in the order they were found.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.errors.iter()
    }

    /// How many problems were found (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: a `ConfigErrors` names at least one problem.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.errors.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_counts_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(
            Location::of_offset(text, 0),
            Location { line: 1, column: 1 }
        );
        let offset = text.find('=').unwrap();
        assert_eq!(
            Location::of_offset(text, offset),
            Location { line: 1, column: 3 }
        );
        let offset = text.rfind('=').unwrap();
        assert_eq!(
            Location::of_offset(text, offset),
            Location { line: 2, column: 4 }
        );
        assert_eq!(
            Location::of_offset(text, 999),
            Location { line: 3, column: 1 }
        );
    }

    #[test]
    fn errors_display_one_per_line() {
        let error = |key: &str| ConfigError {
            origin: "x.toml".to_owned(),
            location: None,
            key: key.to_owned(),
            kind: ConfigErrorKind::OutOfRange {
                value: "0".to_owned(),
                accepted: "1..=2".to_owned(),
            },
        };
        let errors = ConfigErrors::new(vec![error("a.b"), error("c.d")]);
        assert_eq!(
            errors.to_string(),
            "x.toml: a.b = 0 is out of range (accepted 1..=2)\n\
             x.toml: c.d = 0 is out of range (accepted 1..=2)"
        );
    }
}
