//! The gateway's one log: a line on stderr per event, prefixed `shardgate:`.

/// Writes one line to stderr. A closed stderr (the supervisor went away) must not stop the
/// gateway from draining and exiting, so write errors are ignored rather than panicking.
pub fn log(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "shardgate: {line}");
}
