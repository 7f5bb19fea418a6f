//! Resolving `user[:group]` specs against the guest's /etc/passwd and /etc/group.
//!
//! Parsed by hand because the agent is statically linked: glibc's NSS lookups do not work
//! reliably in static binaries.

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
pub fn resolve(spec: &str, passwd: &str, group: &str) -> Result<Identity, String> {
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() {
        return Err(format!("invalid user spec '{spec}'"));
    }
    let users = passwd_entries(passwd);
    let groups = group_entries(group);
    let entry = match user.parse::<u32>() {
        Ok(uid) => users.iter().find(|e| e.uid == uid),
        Err(_) => Some(
            users
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| format!("user '{user}' not found in /etc/passwd"))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user.parse().map_err(|_| format!("invalid user '{user}'"))?,
    };
    let gid = match grp {
        Some(g) if !g.is_empty() => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => groups
                .iter()
                .find(|(name, _, _)| name == g)
                .map(|(_, gid, _)| *gid)
                .ok_or_else(|| format!("group '{g}' not found in /etc/group"))?,
        },
        Some(_) => return Err(format!("invalid user spec '{spec}'")),
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

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbroken line\n";
    const GROUP: &str = "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\n";

    #[test]
    fn numeric_and_named_users_resolve() {
        let a = resolve("alice", PASSWD, GROUP).unwrap();
        assert_eq!(
            (a.uid, a.gid, a.groups.clone(), a.home.as_str()),
            (1000, 1000, vec![1000, 50], "/home/alice")
        );
        assert_eq!(resolve("1000", PASSWD, GROUP).unwrap(), a);
        let unknown = resolve("4242", PASSWD, GROUP).unwrap();
        assert_eq!((unknown.uid, unknown.gid, unknown.home.as_str()), (4242, 0, "/"));
        let explicit = resolve("1000:50", PASSWD, GROUP).unwrap();
        assert_eq!((explicit.gid, explicit.groups), (50, vec![50]));
        assert_eq!(resolve("alice:staff", PASSWD, GROUP).unwrap().gid, 50);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(resolve("bob", PASSWD, GROUP).unwrap_err().contains("bob"));
        assert!(resolve("alice:nogroup", PASSWD, GROUP).unwrap_err().contains("nogroup"));
        assert!(resolve(":1", PASSWD, GROUP).is_err());
        assert!(resolve("1:", PASSWD, GROUP).is_err());
    }
}
