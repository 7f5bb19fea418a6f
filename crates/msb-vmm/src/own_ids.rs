//! A uid and gid of QEMU's own when msb runs as root. A guest that breaks out of QEMU then
//! holds a process of an id that owns no file on the host and no other process: not root's
//! files, not another sandbox's QEMU. Every file QEMU needs is handed to it as a descriptor
//! (see `handed`), so it needs no right to any path.
//!
//! The id is [`BASE`] plus QEMU's own pid, taken in the child just before exec, so no two
//! live QEMUs share one and nothing has to be allocated or given back. The range lies in
//! the block systemd's map of user ids leaves unused (0x70000000–0x7FFDFFFF), above the
//! ranges it gives containers and below the ids some tools treat as negative.

/// The first id of the range.
pub const BASE: u32 = 0x7000_0000;
/// Ids in the range: one per possible pid (the kernel's most, 2^22).
const SPAN: u32 = 1 << 22;

/// QEMU's uid (and gid) when its pid is `pid`.
pub fn of_pid(pid: u32) -> u32 {
    BASE + pid % SPAN
}

/// Whether QEMU gets ids of its own here: msb is root, and the user namespace it runs in
/// maps the whole range (a container's root may have only a few ids).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && maps_range("/proc/self/uid_map") && maps_range("/proc/self/gid_map")
}

/// Whether the id map at `path` maps all of `BASE..BASE + SPAN`.
fn maps_range(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|map| covers(&map, BASE, SPAN))
}

/// Whether one line of an id map (`inside outside count`) covers `first..first + count`.
fn covers(map: &str, first: u32, count: u32) -> bool {
    map.lines().any(|line| {
        let numbers: Vec<u64> = line.split_whitespace().filter_map(|n| n.parse().ok()).collect();
        matches!(numbers[..], [inside, _, len]
            if inside <= u64::from(first) && u64::from(first) + u64::from(count) <= inside + len)
    })
}

/// The group that may open `/dev/kvm`, which QEMU joins to use KVM under ids of its own.
pub fn kvm_group() -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/dev/kvm").ok().map(|m| m.gid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pid_has_its_id_inside_the_range() {
        assert_eq!(of_pid(1), BASE + 1);
        assert_eq!(of_pid(4_194_303), BASE + SPAN - 1);
        assert!(of_pid(u32::MAX) < BASE + SPAN);
    }

    #[test]
    fn only_a_map_that_holds_the_whole_range_will_do() {
        assert!(covers("         0          0 4294967295\n", BASE, SPAN));
        assert!(!covers("0 100000 65536\n", BASE, SPAN));
        assert!(!covers("0 0 1879048193\n", BASE, SPAN));
        assert!(covers("0 1000 1\n1879048192 200000 4194304\n", BASE, SPAN));
        assert!(!covers("garbage\n", BASE, SPAN));
    }
}
