//! Named volumes: directories under `$MSB_HOME/volumes` that outlive sandboxes and that any
//! number of them mount (`-v NAME:/path`, `.mount(Mount::Volume …)`). `msb.volumes()`.

use crate::{Microsandbox, MicrosandboxError, MicrosandboxResult};
use msb_store::SandboxState;
use msb_store::{Store, VolumeRecord};
use msb_types::{Mount, SandboxSpec};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The volumes of one home.
#[derive(Debug, Clone)]
pub struct Volumes {
    msb: Microsandbox,
}

/// A named volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Volume {
    /// Its name.
    pub name: String,
    /// The host directory holding its contents (a directory volume's).
    pub path: PathBuf,
    /// Where a sized volume's ext4 image is (nothing there for a directory volume).
    #[serde(skip)]
    disk: PathBuf,
    /// Free-form labels.
    pub labels: BTreeMap<String, String>,
    /// When it was created (Unix seconds).
    pub created_at: i64,
}

impl Volume {
    /// Bytes its files take, measured now from the filesystem (not a stored number): for a
    /// sized volume, the blocks its ext4 has in use as last written back.
    pub fn used_bytes(&self) -> MicrosandboxResult<u64> {
        let measured = match self.size_bytes() {
            Some(_) => ext4_used(&self.disk),
            None => disk_usage(&self.path),
        };
        measured.map_err(MicrosandboxError::io(format!("measuring {}", self.path.display())))
    }

    /// Its files, read and written on the host without a VM (a directory volume; a sized
    /// volume's files are inside its ext4, which only a VM mounts).
    pub fn fs(&self) -> MicrosandboxResult<crate::HostFs> {
        if self.size_bytes().is_some() {
            return Err(MicrosandboxError::Config(format!(
                "volume '{}' is sized: its files are in its ext4 disk; mount it in a sandbox to reach them",
                self.name
            )));
        }
        Ok(crate::HostFs::new(self.path.clone()))
    }

    /// A sized volume's ext4 image; `None` for a directory volume.
    pub fn disk(&self) -> Option<&Path> {
        self.size_bytes().map(|_| self.disk.as_path())
    }

    /// The size limit of a sized volume (the size of its filesystem); `None` for a
    /// directory volume.
    pub fn size_bytes(&self) -> Option<u64> {
        std::fs::symlink_metadata(&self.disk)
            .ok()
            .filter(|m| m.file_type().is_file())
            .map(|m| m.len())
    }
}

/// A volume being described, then created.
#[derive(Debug, Clone)]
pub struct VolumeBuilder {
    volumes: Volumes,
    name: String,
    labels: BTreeMap<String, String>,
    quota_mib: Option<u32>,
}

impl VolumeBuilder {
    /// A label (free-form metadata).
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// A size limit, in MiB: the volume is an ext4 filesystem of that size on a disk of its
    /// own, so a guest that fills it gets ENOSPC. One running sandbox at a time may mount
    /// it read-write.
    pub fn quota(mut self, mib: u32) -> Self {
        self.quota_mib = Some(mib);
        self
    }

    /// Creates it; a volume of that name already there is an error.
    pub async fn create(self) -> MicrosandboxResult<Volume> {
        let volume = self.volumes.create_now(&self.name, &self.labels)?;
        if let Some(mib) = self.quota_mib {
            if let Err(e) = make_disk(&volume.disk, mib) {
                let _ = self.volumes.remove(&self.name, true).await;
                return Err(e);
            }
        }
        Ok(volume)
    }
}

impl Volumes {
    pub(crate) fn of(msb: Microsandbox) -> Volumes {
        Volumes { msb }
    }

    fn store(&self) -> MicrosandboxResult<Store> {
        Ok(Store::open(self.msb.paths())?)
    }

    fn volume(&self, record: VolumeRecord) -> Volume {
        Volume {
            path: self.msb.paths().volume_dir(&record.name),
            disk: self.msb.paths().volume_disk(&record.name),
            name: record.name,
            labels: record.labels,
            created_at: record.created_at,
        }
    }

    /// Describes a new volume `name` (see [`VolumeBuilder`]).
    pub fn builder(&self, name: impl Into<String>) -> VolumeBuilder {
        VolumeBuilder {
            volumes: self.clone(),
            name: name.into(),
            labels: BTreeMap::new(),
            quota_mib: None,
        }
    }

    /// Creates an empty volume `name`.
    pub async fn create(&self, name: &str) -> MicrosandboxResult<Volume> {
        self.create_now(name, &BTreeMap::new())
    }

    fn create_now(&self, name: &str, labels: &BTreeMap<String, String>) -> MicrosandboxResult<Volume> {
        let record = self.store()?.insert_volume(name, labels)?;
        let volume = self.volume(record);
        if let Err(e) = std::fs::create_dir_all(&volume.path) {
            let _ = self.store()?.delete_volume(name);
            return Err(MicrosandboxError::io(format!("creating {}", volume.path.display()))(e));
        }
        Ok(volume)
    }

    /// The volume `name`.
    pub async fn get(&self, name: &str) -> MicrosandboxResult<Volume> {
        self.find(name)?
            .ok_or_else(|| MicrosandboxError::VolumeNotFound(name.to_string()))
    }

    fn find(&self, name: &str) -> MicrosandboxResult<Option<Volume>> {
        Ok(self.store()?.get_volume(name)?.map(|r| self.volume(r)))
    }

    /// Every volume, newest first.
    pub async fn list(&self) -> MicrosandboxResult<Vec<Volume>> {
        Ok(self
            .store()?
            .list_volumes()?
            .into_iter()
            .map(|r| self.volume(r))
            .collect())
    }

    /// The sandboxes (in any state) whose spec mounts volume `name`.
    pub async fn users(&self, name: &str) -> MicrosandboxResult<Vec<String>> {
        Ok(self.all_users().await?.remove(name).unwrap_or_default())
    }

    /// For every volume some sandbox mounts, those sandboxes (in any state): the sandboxes
    /// are read once, however many volumes there are.
    pub async fn all_users(&self) -> MicrosandboxResult<BTreeMap<String, Vec<String>>> {
        let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for record in self.store()?.list_sandboxes()? {
            let Ok(spec) = record.spec::<SandboxSpec>() else {
                continue;
            };
            let mut names: Vec<&str> = volume_mounts(&spec).map(|(n, _)| n).collect();
            names.sort_unstable();
            names.dedup();
            for name in names {
                users.entry(name.to_string()).or_default().push(record.name.clone());
            }
        }
        Ok(users)
    }

    /// Removes volume `name` and everything in it; refused while a sandbox mounts it unless
    /// `force`.
    pub async fn remove(&self, name: &str, force: bool) -> MicrosandboxResult<()> {
        let volume = self.get(name).await?;
        let users = self.users(name).await?;
        if !users.is_empty() && !force {
            return Err(MicrosandboxError::VolumeInUse {
                name: name.to_string(),
                sandboxes: users,
            });
        }
        let gone = |result: std::io::Result<()>, what: &Path| match result {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(MicrosandboxError::io(format!("removing {}", what.display()))(e))
            }
            _ => Ok(()),
        };
        gone(std::fs::remove_dir_all(&volume.path), &volume.path)?;
        gone(std::fs::remove_file(&volume.disk), &volume.disk)?;
        self.store()?.delete_volume(name)?;
        Ok(())
    }

    /// Removes every volume no sandbox mounts; returns their names.
    pub async fn prune(&self) -> MicrosandboxResult<Vec<String>> {
        let mut removed = Vec::new();
        let users = self.all_users().await?;
        for volume in self.list().await? {
            if !users.contains_key(&volume.name) {
                self.remove(&volume.name, false).await?;
                removed.push(volume.name);
            }
        }
        Ok(removed)
    }

    /// Makes sure every volume `mounts` names exists, creating the missing ones (as docker
    /// does); returns the names of those it created.
    pub(crate) fn ensure(&self, mounts: &[Mount]) -> MicrosandboxResult<Vec<String>> {
        let mut created = Vec::new();
        for mount in mounts {
            if let Mount::Volume { name, .. } = mount {
                if self.find(name)?.is_none() {
                    match self.create_now(name, &BTreeMap::new()) {
                        Ok(_) => created.push(name.clone()),
                        // Made meanwhile by another process: just as good.
                        Err(MicrosandboxError::Store(e))
                            if matches!(*e, msb_store::StoreError::VolumeExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(created)
    }
}

impl Volumes {
    /// Refuses to start `spec` while a sized volume it mounts is mounted by another running
    /// sandbox and either of them writes to it (one kernel at a time may own an ext4).
    pub(crate) fn check_disks_free(
        &self,
        spec: &SandboxSpec,
        all: &[msb_store::SandboxRecord],
    ) -> MicrosandboxResult<()> {
        let sized = |name: &str| self.msb.paths().is_sized_volume(name);
        for (name, readonly) in volume_mounts(spec) {
            if !sized(name) {
                continue;
            }
            for other in all
                .iter()
                .filter(|r| r.state == SandboxState::Running && r.name != spec.name)
            {
                let Ok(other_spec) = other.spec::<SandboxSpec>() else {
                    continue;
                };
                let holds = volume_mounts(&other_spec).any(|(n, ro)| n == name && !(ro && readonly));
                if holds {
                    return Err(MicrosandboxError::VolumeInUse {
                        name: name.to_string(),
                        sandboxes: vec![other.name.clone()],
                    });
                }
            }
        }
        Ok(())
    }
}

/// The volumes a spec mounts, with whether read-only.
fn volume_mounts(spec: &SandboxSpec) -> impl Iterator<Item = (&str, bool)> {
    spec.mounts.iter().filter_map(|m| match m {
        Mount::Volume { name, readonly, .. } => Some((name.as_str(), *readonly)),
        _ => None,
    })
}

/// Writes an empty ext4 of `mib` MiB (sparse) at `path`, made by our own writer.
fn make_disk(path: &Path, mib: u32) -> MicrosandboxResult<()> {
    if mib < MIN_DISK_MIB {
        return Err(msb_types::SpecError::new(
            msb_types::Field::Mounts,
            format!("a sized volume needs at least {MIN_DISK_MIB} MiB"),
        )
        .into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let root = msb_ext4::Dir::new(msb_ext4::Metadata::root(0o755, now));
    let opts = msb_ext4::Options {
        size: u64::from(mib) << 20,
        now,
        ..msb_ext4::Options::default()
    }
    .with_random_ids()
    .map_err(MicrosandboxError::io("reading /dev/urandom"))?;
    let io = |what: &str| MicrosandboxError::io(format!("{what} {}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
    }
    let file = std::fs::File::create_new(path).map_err(io("creating"))?;
    msb_ext4::write(&root, &file, &opts)
        .map_err(|e| MicrosandboxError::io(format!("writing {}", path.display()))(std::io::Error::other(e)))?;
    file.sync_all().map_err(io("syncing"))
}

/// The smallest sized volume (the smallest ext4 image msb-ext4 writes).
const MIN_DISK_MIB: u32 = 16;

/// Bytes in use in the ext4 at `path`, from its superblock (blocks minus free blocks).
fn ext4_used(path: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    let mut sb = [0u8; 1024];
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(1024))?;
    file.read_exact(&mut sb)?;
    let le32 = |at: usize| u64::from(u32::from_le_bytes([sb[at], sb[at + 1], sb[at + 2], sb[at + 3]]));
    if u16::from_le_bytes([sb[0x38], sb[0x39]]) != 0xEF53 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an ext4 filesystem",
        ));
    }
    let blocks = le32(0x04) | (le32(0x150) << 32);
    let free = le32(0x0C) | (le32(0x158) << 32);
    let block_size = 1024u64 << le32(0x18).min(16);
    Ok(blocks.saturating_sub(free) * block_size)
}

impl Microsandbox {
    /// The named volumes of this home.
    pub fn volumes(&self) -> Volumes {
        Volumes::of(self.clone())
    }
}

/// Bytes the files below `dir` take on disk (allocated blocks; symlinks not followed, each
/// inode counted once).
pub(crate) fn disk_usage(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for item in std::fs::read_dir(&d)? {
            let item = item?;
            let meta = item.metadata()?;
            if seen.insert((meta.dev(), meta.ino())) {
                total += meta.blocks() * 512;
            }
            if meta.is_dir() {
                stack.push(item.path());
            }
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_blocks_once_per_inode() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 64 * 1024]).unwrap();
        std::fs::hard_link(dir.path().join("a"), dir.path().join("b")).unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::fs::write(dir.path().join("d/c"), vec![1u8; 8192]).unwrap();
        let used = disk_usage(dir.path()).unwrap();
        assert!((72 * 1024..200 * 1024).contains(&used), "{used}");
    }
}
