//! The VM figures of `cargo xtask bench tls`: the guest script (curl in the Debian fixture,
//! timed by curl's own `-w` timers on the guest clock) and what it printed, turned into
//! intercepted against pass-through figures.
//!
//! Paths: `a.shared.test` carries the secret (intercepted, placeholder swapped for the real
//! value), `b.shared.test` is the same server under a name nothing intercepts; `*.wild.test`
//! is intercepted without a secret, for handshakes with a fresh leaf (a new name each time)
//! and a cached one (one name again). Every response closes its connection, so each request
//! is a new connection. Every curl trusts one and the same bundle (the guest's roots, the
//! sandbox CA and the world's CA): curl parses its CA file on each connection, and under
//! TCG a 140-root bundle takes about a second, which would otherwise be charged to
//! whichever path had the bigger one.

use super::net_figures::{guest_clock, CLOCK_LINE};
use super::net_host::met;
use super::stats::Summary;
use super::tls_host::{ADDED_GOAL_MS, RATIO_GOAL};
use anyhow::{bail, Context, Result};
use msb_e2e::networld::{Event, Hit};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The secret's name and real value; the guest sees only a placeholder.
pub const SECRET: &str = "BENCH_KEY";
pub const VALUE: &str = "bench-real-value";
/// The intercepted name (the secret's host) and the pass-through one.
pub const INTERCEPTED: &str = "a.shared.test";
const PASSTHROUGH: &str = "b.shared.test";
/// Where the world's CA goes in the guest's root (added to the bundle every curl trusts).
pub const WORLD_CA: &str = "world-ca.pem";
/// Download and upload sizes.
const DOWN_BYTES: u64 = 64 << 20;
const UP_BYTES: u64 = 32 << 20;
/// Transfer rounds each way and path; the median is reported.
const ROUNDS: usize = 3;

/// What the guest measures.
#[derive(Debug, Clone, Copy)]
pub struct VmParams {
    /// Sequential small GETs, each path.
    pub requests: u32,
    /// Handshakes of each kind.
    pub handshakes: u32,
}

/// The guest's script: one `@KIND PATH NUMBERS…` line per curl (`@fail …` when one fails),
/// after a space: a `-w` format that starts with `@` names a file to read it from.
pub fn script(p: &VmParams) -> String {
    let (a, b) = (INTERCEPTED, PASSTHROUGH);
    format!(
        r#"{CLOCK_LINE}H="Authorization: Bearer ${SECRET}"
cat /.msb/tls/ca-bundle.pem /{WORLD_CA} > /tmp/trust.pem
export CURL_CA_BUNDLE=/tmp/trust.pem
REQ='%{{time_connect}} %{{time_appconnect}} %{{time_total}}'
t() {{ what=$1; fmt=$2; shift 2; curl -sS --fail -o /dev/null -H 'Expect:' -w " @$what $fmt\n" "$@" || echo "@fail $what rc=$?"; }}
t "warm a" "$REQ" -H "$H" https://{a}/warm
t "warm b" "$REQ" -H "$H" https://{b}/warm
head -c {UP_BYTES} /dev/zero > /tmp/up.bin
for i in $(seq {n}); do
  t "req a" "$REQ" -H "$H" https://{a}/small
  t "req b" "$REQ" -H "$H" https://{b}/small
done
for i in $(seq {ROUNDS}); do
  t "down a" '%{{speed_download}}' -H "$H" https://{a}/bytes/{DOWN_BYTES}
  t "down b" '%{{speed_download}}' -H "$H" https://{b}/bytes/{DOWN_BYTES}
  t "up a" '%{{speed_upload}}' -H "$H" --data-binary @/tmp/up.bin https://{a}/upload
  t "up b" '%{{speed_upload}}' -H "$H" --data-binary @/tmp/up.bin https://{b}/upload
done
t "warm c" "$REQ" https://cached.wild.test/hs
for i in $(seq {m}); do
  t "hs fresh" "$REQ" https://h$i.wild.test/hs
  t "hs cached" "$REQ" https://cached.wild.test/hs
  t "hs pass" "$REQ" https://{b}/hs
done
"#,
        n = p.requests,
        m = p.handshakes,
    )
}

/// Samples of one kind and path.
type Samples = BTreeMap<String, Vec<Vec<f64>>>;

/// The `@` lines of `stdout`, by `KIND PATH`; an error if any curl failed.
fn parse(stdout: &str) -> Result<Samples> {
    let mut out = Samples::new();
    for line in stdout.lines().filter_map(|l| l.trim().strip_prefix('@')) {
        if line.starts_with("fail ") {
            bail!("a request in the guest failed: {line}");
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let [kind, path, nums @ ..] = words.as_slice() else {
            bail!("guest line @{line}");
        };
        let nums = nums
            .iter()
            .map(|n| n.parse::<f64>().with_context(|| format!("guest line @{line}")))
            .collect::<Result<Vec<_>>>()?;
        out.entry(format!("{kind} {path}")).or_default().push(nums);
    }
    Ok(out)
}

/// One figure for both paths (intercepted, pass-through) or the three handshake kinds.
fn pick(s: &Samples, key: &str, f: impl Fn(&[f64]) -> f64) -> Result<Summary> {
    let rows = s
        .get(key)
        .with_context(|| format!("no `@{key}` lines from the guest"))?;
    let values: Vec<f64> = rows.iter().map(|r| f(r)).collect();
    Ok(Summary::of_values(&values))
}

/// The VM figures: ms for times, MiB/s for rates.
#[derive(Debug, Clone)]
pub struct VmFigures {
    pub params: VmParams,
    /// `TCG` or `KVM`.
    pub accel: &'static str,
    /// After the handshake (`time_total - time_appconnect`), intercepted and pass-through.
    pub request: [Summary; 2],
    pub download: [Summary; 2],
    pub upload: [Summary; 2],
    /// `time_appconnect - time_connect`: fresh leaf, cached leaf, pass-through.
    pub handshake: [Summary; 3],
    /// Requests the server saw with the real value substituted.
    pub substituted: usize,
    /// The guest's clocksource (reported as `tsc-early` under TCG here, yet curl's timers
    /// move in 4 ms steps: hence means beside medians).
    pub clock: String,
}

/// The figures of one run: `stdout` is what the script printed, `hits` the world's log.
pub fn figures(p: &VmParams, accel: &'static str, stdout: &str, hits: &[Hit]) -> Result<VmFigures> {
    let s = parse(stdout)?;
    let after_handshake = |r: &[f64]| (r[2] - r[1]) * 1e3;
    let handshake = |r: &[f64]| (r[1] - r[0]) * 1e3;
    let mib_s = |r: &[f64]| r[0] / f64::from(1 << 20);
    let both = |kind: &str, f: &dyn Fn(&[f64]) -> f64| -> Result<[Summary; 2]> {
        Ok([pick(&s, &format!("{kind} a"), f)?, pick(&s, &format!("{kind} b"), f)?])
    };
    Ok(VmFigures {
        params: *p,
        accel,
        request: both("req", &after_handshake)?,
        download: both("down", &mib_s)?,
        upload: both("up", &mib_s)?,
        handshake: [
            pick(&s, "hs fresh", handshake)?,
            pick(&s, "hs cached", handshake)?,
            pick(&s, "hs pass", handshake)?,
        ],
        substituted: substituted(p, hits)?,
        clock: guest_clock(stdout),
    })
}

/// How many intercepted requests reached the server with the real value; an error if any
/// did not (the bench would not be measuring substitution) or a pass-through one did.
fn substituted(p: &VmParams, hits: &[Hit]) -> Result<usize> {
    let real = format!("Bearer {VALUE}");
    let (mut good, mut bad) = (0, Vec::new());
    for h in hits {
        let Event::Http {
            host, headers, path, ..
        } = &h.event
        else {
            continue;
        };
        let auth = headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        match (host.as_deref(), auth) {
            (Some(INTERCEPTED), Some(v)) if v == real => good += 1,
            (Some(INTERCEPTED), _) => bad.push(format!("{INTERCEPTED}{path} without the value")),
            (Some(PASSTHROUGH), Some(v)) if v == real => bad.push(format!("{PASSTHROUGH}{path} with the value")),
            _ => {}
        }
    }
    let expected = 1 + p.requests as usize + 2 * ROUNDS;
    if !bad.is_empty() || good != expected {
        bail!("substitution: {good} of {expected} intercepted requests carried the real value; wrong: {bad:?}");
    }
    Ok(good)
}

/// intercepted / pass-through of the medians.
fn ratio(pair: &[Summary; 2]) -> f64 {
    pair[0].median / pair[1].median.max(1e-12)
}

impl VmFigures {
    /// From the means: the guest timers' 4 ms steps under TCG hide it in the medians.
    fn added_ms(&self) -> f64 {
        self.request[0].mean - self.request[1].mean
    }

    pub fn json(&self) -> Value {
        let pair = |x: &[Summary; 2]| json!({ "intercepted": x[0].json(false), "passthrough": x[1].json(false) });
        let (added, down, up) = (self.added_ms(), ratio(&self.download), ratio(&self.upload));
        json!({
            "accel": self.accel,
            "clock": format!("guest's {} (curl -w timers)", self.clock),
            "requests": self.params.requests,
            "handshakes": self.params.handshakes,
            "request_after_handshake_ms": pair(&self.request),
            "added_ms_per_request": { "value": added, "goal_lt": ADDED_GOAL_MS, "met": added < ADDED_GOAL_MS },
            "download_mib_s": pair(&self.download),
            "download_bytes": DOWN_BYTES,
            "download_ratio": { "value": down, "goal_ge": RATIO_GOAL, "met": down >= RATIO_GOAL },
            "upload_mib_s": pair(&self.upload),
            "upload_bytes": UP_BYTES,
            "upload_ratio": { "value": up, "goal_ge": RATIO_GOAL, "met": up >= RATIO_GOAL },
            "handshake_ms": {
                "fresh_leaf": self.handshake[0].json(false),
                "cached_leaf": self.handshake[1].json(false),
                "passthrough": self.handshake[2].json(false),
            },
            "substituted_requests": self.substituted,
        })
    }

    /// The figures as text, each with its goal and ratio.
    pub fn text(&self, out: &mut String) -> std::fmt::Result {
        let p = &self.params;
        writeln!(
            out,
            "TLS interception through a VM, {} (guest clock {}, curl's -w timers; Debian guest, curl; {INTERCEPTED} intercepted with the secret, {PASSTHROUGH} passed through; a new connection per request):",
            super::accel_label(),
            self.clock
        )?;
        let r = &self.request;
        let added = self.added_ms();
        writeln!(
            out,
            "  request after handshake, {:>3} GETs   intercepted {:>7.2} ms mean (median {:.2})   pass-through {:>7.2} ms mean (median {:.2})   added {added:>6.2} ms (means)   goal < {ADDED_GOAL_MS} ms — {}",
            p.requests,
            r[0].mean,
            r[0].median,
            r[1].mean,
            r[1].median,
            met(added < ADDED_GOAL_MS)
        )?;
        for (what, pair, bytes) in [
            ("download", &self.download, DOWN_BYTES),
            ("upload", &self.upload, UP_BYTES),
        ] {
            let x = ratio(pair);
            writeln!(
                out,
                "  {what:<8} {:>3} MiB, median of {ROUNDS}   intercepted {:>7.1} MiB/s        pass-through {:>7.1} MiB/s        ratio {x:>5.2}   goal ≥ {RATIO_GOAL} — {}",
                bytes >> 20,
                pair[0].median,
                pair[1].median,
                met(x >= RATIO_GOAL)
            )?;
        }
        let h = &self.handshake;
        writeln!(
            out,
            "  TLS handshake, median of {:>3}        fresh leaf {:.2} ms   cached leaf {:.2} ms   pass-through {:.2} ms   (fresh / pass-through {:.2}, cached / pass-through {:.2})",
            p.handshakes,
            h[0].median,
            h[1].median,
            h[2].median,
            h[0].median / h[2].median.max(1e-12),
            h[1].median / h[2].median.max(1e-12)
        )?;
        writeln!(
            out,
            "  substitution checked: the server got the real value on all {} intercepted requests",
            self.substituted
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lines_curl_prints_become_figures() {
        let out = " @req a 0.010 0.030 0.045\n @req b 0.010 0.020 0.030\nnoise\n @hs fresh 0.01 0.05 0.06\n";
        let s = parse(out).unwrap();
        let r = pick(&s, "req a", |r| (r[2] - r[1]) * 1e3).unwrap();
        assert!((r.median - 15.0).abs() < 1e-9);
        assert_eq!(s["hs fresh"], vec![vec![0.01, 0.05, 0.06]]);
        assert!(parse(" @req a 1 2 3\n@fail req b rc=7\n").is_err());
    }

    #[test]
    fn no_curl_format_starts_with_an_at_sign() {
        let s = script(&VmParams {
            requests: 5,
            handshakes: 2,
        });
        assert!(!s.contains("-w \"@") && !s.contains("-w '@"), "{s}");
    }
}
