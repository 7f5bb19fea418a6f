//! Sizes as people write them (`4G`, `512m`, `1.5GiB`, `64k`, a bare number of MiB), in MiB:
//! one syntax for every flag and option that takes a size.

/// Parses `text` into MiB: a number (fractions allowed) and an optional unit `k`, `m`, `g`
/// or `t` (also `kb`/`kib`, …, any case); no unit means MiB. Rounds up to whole MiB and
/// refuses zero and sizes beyond `u32::MAX` MiB.
pub fn parse_size_mib(text: &str) -> Result<u32, String> {
    let lower = text.trim().to_ascii_lowercase();
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(split);
    let scale = match unit.trim() {
        "k" | "kb" | "kib" => 1.0 / 1024.0,
        "" | "m" | "mb" | "mib" => 1.0,
        "g" | "gb" | "gib" => 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0,
        _ => return Err(format!("'{text}' is not a size (use e.g. 4G, 512M, 64k)")),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a size (use e.g. 4G, 512M, 64k)"))?;
    let mib = (value * scale).ceil();
    if !(1.0..=f64::from(u32::MAX)).contains(&mib) {
        return Err(format!(
            "size '{text}' is out of range (1 MiB to {} TiB)",
            u32::MAX >> 20
        ));
    }
    Ok(mib as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_to_mib() {
        assert_eq!(parse_size_mib("4G"), Ok(4096));
        assert_eq!(parse_size_mib("1.5g"), Ok(1536));
        assert_eq!(parse_size_mib("512M"), Ok(512));
        assert_eq!(parse_size_mib("512MiB"), Ok(512));
        assert_eq!(parse_size_mib("100"), Ok(100));
        assert_eq!(parse_size_mib("64k"), Ok(1));
        assert_eq!(parse_size_mib("2049KB"), Ok(3));
        assert_eq!(parse_size_mib("1t"), Ok(1 << 20));
        assert!(parse_size_mib("lots").is_err());
        assert!(parse_size_mib("0").is_err());
        assert!(parse_size_mib("5x").is_err());
        assert!(parse_size_mib("").is_err());
        assert!(parse_size_mib("1.2.3g").is_err());
        assert!(parse_size_mib("99999t").is_err());
    }
}
