//! Sizes with units, as the reference writes them: `.memory(512)`, `.memory(1.gib())`.

/// A size in MiB (what memory and disk settings take); a bare `u32` is MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mebibytes(pub u32);

impl From<u32> for Mebibytes {
    fn from(mib: u32) -> Self {
        Mebibytes(mib)
    }
}

/// Units on integers: `64.mib()`, `2.gib()`; `kib()` rounds up to whole MiB.
pub trait SizeExt {
    /// This many KiB, as MiB (rounded up).
    fn kib(self) -> Mebibytes;
    /// This many MiB.
    fn mib(self) -> Mebibytes;
    /// This many GiB (saturating at `u32::MAX` MiB).
    fn gib(self) -> Mebibytes;
}

impl SizeExt for u32 {
    fn kib(self) -> Mebibytes {
        Mebibytes(self.div_ceil(1024))
    }

    fn mib(self) -> Mebibytes {
        Mebibytes(self)
    }

    fn gib(self) -> Mebibytes {
        Mebibytes(self.saturating_mul(1024))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_convert_to_mib() {
        assert_eq!(512.mib(), Mebibytes(512));
        assert_eq!(2.gib(), Mebibytes(2048));
        assert_eq!(1500.kib(), Mebibytes(2));
        assert_eq!(Mebibytes::from(64), Mebibytes(64));
        assert_eq!(u32::MAX.gib(), Mebibytes(u32::MAX));
    }
}
