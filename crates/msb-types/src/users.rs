//! Resolving `user[:group]` specs against a root filesystem's /etc/passwd and /etc/group,
//! as docker does. The guest agent resolves them before each exec; the host checks them
//! against the root before booting.
//!
//! Parsed by hand because the agent is statically linked: glibc's NSS lookups do not work
//! reliably in static binaries.

use crate::{Field, SpecError};

/// A resolved identity to run a process as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Home directory (for HOME).
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd_entries(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// (name, gid, members) for each line of /etc/group.
fn group_entries(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(String::from).collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolves `spec` (`uid`, `name`, `uid:gid`, `name:group`, …) against passwd/group texts,
/// the way docker does: a numeric uid need not exist; its group then defaults to 0.
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<Identity, SpecError> {
    let bad = |problem: String| SpecError::new(Field::User, problem);
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || grp.is_some_and(str::is_empty) {
        return Err(bad(format!("'{spec}' is not a user (use uid[:gid] or name[:group])")));
    }
    let users = passwd_entries(passwd);
    let groups = group_entries(group);
    let entry = match numeric_id(user, "uid").map_err(bad)? {
        Some(uid) => users.iter().find(|e| e.uid == uid),
        None => Some(
            users
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| bad(format!("'{user}' is not in the guest's /etc/passwd")))?,
        ),
    };
    let uid = match (entry, numeric_id(user, "uid").map_err(bad)?) {
        (Some(e), _) => e.uid,
        (None, Some(uid)) => uid,
        (None, None) => return Err(bad(format!("'{user}' is not in the guest's /etc/passwd"))),
    };
    let gid = match grp {
        Some(g) => match numeric_id(g, "gid").map_err(bad)? {
            Some(gid) => gid,
            None => groups
                .iter()
                .find(|(name, _, _)| name == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| bad(format!("group '{g}' is not in the guest's /etc/group")))?,
        },
        None => entry.map(|e| e.gid).unwrap_or(0),
    };
    let mut supplementary = vec![gid];
    if let (Some(e), None) = (entry, grp) {
        for (_, g, members) in &groups {
            if members.contains(&e.name) && !supplementary.contains(g) {
                supplementary.push(*g);
            }
        }
    }
    let home = entry.map(|e| e.home.clone()).unwrap_or_else(|| "/".into());
    Ok(Identity {
        uid,
        gid,
        groups: supplementary,
        home,
    })
}

/// `Some(id)` for a number usable as a uid or gid, `None` for a name; an error for a number
/// out of range (the largest id, 4294967295, means "none" to the kernel).
fn numeric_id(text: &str, what: &str) -> Result<Option<u32>, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(id) if id < u32::MAX => Ok(Some(id)),
        _ => Err(format!("{what} {text} is out of range: use 0 to {}", u32::MAX - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\n";

    #[test]
    fn numeric_and_named_users_resolve_user() {
        let a = resolve_user("alice", PASSWD, GROUP).unwrap();
        assert_eq!(
            (a.uid, a.gid, a.groups.clone(), a.home.as_str()),
            (1000, 1000, vec![1000, 50], "/home/alice")
        );
        assert_eq!(resolve_user("1000", PASSWD, GROUP).unwrap(), a);
        let unknown = resolve_user("4242", PASSWD, GROUP).unwrap();
        assert_eq!((unknown.uid, unknown.gid, unknown.home.as_str()), (4242, 0, "/"));
        let explicit = resolve_user("1000:50", PASSWD, GROUP).unwrap();
        assert_eq!((explicit.gid, explicit.groups), (50, vec![50]));
        assert_eq!(resolve_user("alice:staff", PASSWD, GROUP).unwrap().gid, 50);
    }

    #[test]
    fn unknown_names_and_impossible_ids_are_errors() {
        let problem = |spec| resolve_user(spec, PASSWD, GROUP).unwrap_err().problem;
        assert!(problem("bob").contains("bob"));
        assert!(problem("alice:nogroup").contains("nogroup"));
        assert!(problem(":1").contains("not a user"));
        assert!(problem("1:").contains("not a user"));
        assert!(problem("4294967295").contains("out of range"));
        assert!(problem("1:4294967295").contains("out of range"));
        assert!(problem("99999999999").contains("out of range"));
        assert_eq!(resolve_user("4294967294", PASSWD, GROUP).unwrap().uid, 4_294_967_294);
    }
}
