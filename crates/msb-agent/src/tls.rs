//! The interception CA in the guest's trust: the system bundles of Debian/Ubuntu/Alpine and
//! RHEL/Fedora get it as a marked block (replaced at each boot, since the host makes a new
//! CA at each start, and removed at a boot without one), and `/.msb/tls` holds the CA alone
//! and a bundle of the system roots plus the CA, which processes are pointed at through
//! `SSL_CERT_FILE` and friends (see `spawn`).

use msb_protocol::{GUEST_TLS_BUNDLE, GUEST_TLS_CA};
use std::io;
use std::path::{Path, PathBuf};

/// System CA bundles, by distribution family.
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
const BEGIN: &str = "# msb: sandbox TLS interception CA (replaced at each boot)";
const END: &str = "# msb: end of sandbox TLS interception CA";

/// Installs `ca` (PEM) where the guest's TLS clients look, or takes out one an earlier boot
/// installed when there is none. System bundles that cannot be written (a read-only root)
/// are left alone: the `/.msb/tls` files and the variables pointing at them still work.
pub fn install(ca: Option<&str>) -> io::Result<()> {
    let mut first_bundle = None;
    for path in system_bundles() {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        let updated = with_block(&text, ca);
        if updated != text {
            if let Err(e) = std::fs::write(&path, &updated) {
                eprintln!("msb-agent: cannot update {}: {e}", path.display());
            }
        }
        first_bundle.get_or_insert(updated);
    }
    let Some(ca) = ca else { return Ok(()) };
    crate::init::ensure_dir(Path::new(GUEST_TLS_CA).parent().unwrap_or(Path::new("/")), 0o755)?;
    std::fs::write(GUEST_TLS_CA, ca)?;
    let bundle = first_bundle.unwrap_or_else(|| with_block("", Some(ca)));
    std::fs::write(GUEST_TLS_BUNDLE, bundle)
}

/// The system bundles present, each file once (`/etc/ssl/cert.pem` is often a link to
/// another of them).
fn system_bundles() -> Vec<PathBuf> {
    let mut seen = Vec::new();
    for path in SYSTEM_BUNDLES {
        if let Ok(real) = std::fs::canonicalize(path) {
            if real.is_file() && !seen.contains(&real) {
                seen.push(real);
            }
        }
    }
    seen
}

/// `text` without any earlier block, and with one holding `ca` at its end when given.
fn with_block(text: &str, ca: Option<&str>) -> String {
    let mut out = String::with_capacity(text.len() + 1024);
    let mut inside = false;
    for line in text.lines() {
        match line {
            BEGIN => inside = true,
            END if inside => inside = false,
            _ if !inside => {
                out.push_str(line);
                out.push('\n');
            }
            _ => {}
        }
    }
    if let Some(ca) = ca {
        out.push_str(BEGIN);
        out.push('\n');
        out.push_str(ca.trim_end());
        out.push('\n');
        out.push_str(END);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_block_is_replaced_not_piled_up_and_goes_when_there_is_no_ca() {
        let system = "-----BEGIN CERTIFICATE-----\nROOT\n-----END CERTIFICATE-----\n";
        let once = with_block(system, Some(CA));
        assert!(once.starts_with(system) && once.contains("MIIB"));
        let other = CA.replace("MIIB", "MIIC");
        let twice = with_block(&once, Some(&other));
        assert_eq!(twice.matches(BEGIN).count(), 1);
        assert!(twice.contains("MIIC") && !twice.contains("MIIB"));
        assert_eq!(with_block(&twice, None), system);
        assert_eq!(with_block(system, None), system);
    }
}
