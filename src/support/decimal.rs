//! Decimal numbers written by hand: heads, bodies and ids are written per request, and
//! `write!` would run the formatting machinery for each number in them.

/// Appends `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut buffer = [0u8; 20];
    out.extend_from_slice(decimal_digits(n, &mut buffer));
}

/// The decimal digits of `n`, written at the end of `buffer` (20 digits hold any `u64`).
pub fn decimal_digits(mut n: u64, buffer: &mut [u8; 20]) -> &[u8] {
    let mut start = buffer.len();
    loop {
        start -= 1;
        buffer[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buffer[start..]
}

#[cfg(test)]
mod tests {
    use super::push_decimal;

    #[test]
    fn decimals_are_written_as_format_writes_them() {
        for n in [0, 7, 10, 99, 100, 65_535, 1 << 32, u64::MAX] {
            let mut out = b"x".to_vec();
            push_decimal(&mut out, n);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }
}
