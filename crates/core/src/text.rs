//! Text from outside made safe for one line of a log or an error.

/// `text` with its control characters written as escapes (`\n`, `\r`, `\u{1b}`): a line break
/// would forge a log line or split a list of problems, and an ANSI escape would repaint the
/// terminal that reads it. Everything else is kept as it is.
pub fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_become_escapes_and_nothing_else_changes() {
        assert_eq!(
            escape_controls("a\r\n\u{1b}[31mb\0 é ✓"),
            "a\\r\\n\\u{1b}[31mb\\u{0} é ✓"
        );
    }
}
