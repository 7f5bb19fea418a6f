//! Resource use of host processes (the VMM and its helpers), from /proc.

/// CPU time (user + system) of `pid` in clock ticks; 0 if it is gone.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default())
}

/// utime + stime from the text of a `/proc/PID/stat` file; 0 if it cannot be parsed.
fn stat_cpu_ticks(stat: &str) -> u64 {
    // Fields after the command name (which may hold spaces) start at field 3.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 of the rest.
    let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    field(11) + field(12)
}

/// Resident memory of `pid` in bytes; 0 if it is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Clock ticks per second.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A stat line whose fields 14-17 (utime, stime, cutime, cstime) all differ.
    fn stat_line(comm: &str) -> String {
        format!("4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 200 3 4 1111 222 33 4 20 0 1 0 5 6 7")
    }

    #[test]
    fn cpu_ticks_are_utime_plus_stime() {
        assert_eq!(stat_cpu_ticks(&stat_line("qemu-system-x86")), 1111 + 222);
    }

    #[test]
    fn a_command_name_with_spaces_and_parentheses_does_not_shift_the_fields() {
        assert_eq!(stat_cpu_ticks(&stat_line("a) b (c")), 1333);
        assert_eq!(stat_cpu_ticks(&stat_line(") 9 9 9 9 9 9 9 9 9 9 9 9 (")), 1333);
    }

    #[test]
    fn unparsable_stat_is_zero() {
        assert_eq!(stat_cpu_ticks(""), 0);
        assert_eq!(stat_cpu_ticks("4242 no-parenthesis S 1 2 3"), 0);
        assert_eq!(stat_cpu_ticks("4242 (short) S 1 2"), 0);
    }

    #[test]
    fn our_own_cpu_time_grows_as_we_spin() {
        let me = std::process::id();
        let start = cpu_ticks(me);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut x = 0u64;
        while cpu_ticks(me) < start + 2 {
            assert!(
                Instant::now() < deadline,
                "10 s of spinning did not show 2 ticks of CPU time"
            );
            for i in 0..100_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
    }

    #[test]
    fn memory_of_our_own_process_and_of_none() {
        assert!(rss_bytes(std::process::id()) > 1 << 20);
        assert_eq!(rss_bytes(u32::MAX), 0);
        assert_eq!(cpu_ticks(u32::MAX), 0);
    }
}
