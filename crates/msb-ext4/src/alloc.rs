//! Block allocation: one cursor that walks the data area of each group in order. Since
//! nothing is ever freed, the used blocks of every group are exactly its metadata plus a
//! prefix of its data area, which is what makes the bitmaps and free counts trivial to
//! derive afterwards.

use crate::layout::{Geometry, GroupUsage};

/// Hands out data blocks in ascending order.
#[derive(Debug)]
pub(crate) struct Allocator<'g> {
    geo: &'g Geometry,
    group: u32,
    next: u64,
    end: u64,
    allocated: u64,
}

impl<'g> Allocator<'g> {
    /// An allocator starting at the first data block of group 0.
    pub(crate) fn new(geo: &'g Geometry) -> Allocator<'g> {
        Allocator {
            geo,
            group: 0,
            next: geo.data_start(0),
            end: geo.group_len(0),
            allocated: 0,
        }
    }

    /// Up to `max` contiguous blocks (`max` > 0): `(first, count)`, or `None` when full.
    pub(crate) fn run(&mut self, max: u64) -> Option<(u64, u64)> {
        while self.next >= self.end {
            if self.group + 1 >= self.geo.groups {
                return None;
            }
            self.group += 1;
            self.next = self.geo.data_start(self.group);
            self.end = self.geo.group_start(self.group) + self.geo.group_len(self.group);
        }
        let n = max.min(self.end - self.next);
        let first = self.next;
        self.next += n;
        self.allocated += n;
        Some((first, n))
    }

    /// One block, or `None` when full.
    pub(crate) fn one(&mut self) -> Option<u64> {
        self.run(1).map(|(b, _)| b)
    }

    /// `n` blocks, possibly in several runs, or `None` when full.
    pub(crate) fn many(&mut self, n: u64) -> Option<Vec<u64>> {
        let mut out = Vec::with_capacity(n as usize);
        while (out.len() as u64) < n {
            let (first, count) = self.run(n - out.len() as u64)?;
            out.extend(first..first + count);
        }
        Some(out)
    }

    /// Data blocks handed out so far.
    pub(crate) fn allocated(&self) -> u64 {
        self.allocated
    }

    /// Used blocks per group: metadata plus the allocated prefix of the data area.
    pub(crate) fn usage(&self) -> Vec<GroupUsage> {
        (0..self.geo.groups)
            .map(|g| {
                let used = match g.cmp(&self.group) {
                    std::cmp::Ordering::Less => self.geo.group_len(g),
                    std::cmp::Ordering::Equal => self.next - self.geo.group_start(g),
                    std::cmp::Ordering::Greater => self.geo.overhead(g),
                };
                GroupUsage {
                    used_blocks: used,
                    ..GroupUsage::default()
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_skip_group_metadata_and_stop_at_the_end() {
        let geo = Geometry::new(2 * 32768 * 4096, 16384).unwrap();
        let mut a = Allocator::new(&geo);
        let first = geo.data_start(0);
        assert_eq!(a.run(10), Some((first, 10)));
        let rest0 = 32768 - first - 10;
        assert_eq!(a.run(u64::MAX), Some((first + 10, rest0)));
        assert_eq!(a.one(), Some(geo.data_start(1)));
        let usage = a.usage();
        assert_eq!(usage[0].used_blocks, 32768);
        assert_eq!(usage[1].used_blocks, geo.overhead(1) + 1);
        let left = geo.group_len(1) - geo.overhead(1) - 1;
        assert_eq!(a.many(left).map(|v| v.len() as u64), Some(left));
        assert_eq!(a.one(), None);
        assert_eq!(a.allocated(), 32768 - first + geo.group_len(1) - geo.overhead(1));
    }
}
