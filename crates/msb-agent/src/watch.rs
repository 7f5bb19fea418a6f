//! `FsOp::Watch`: changes below a guest path, from inotify, sent as `FsEvent`s within the
//! host's output credit until the host says stop (`StdinEof`). With `recursive`, every
//! directory below is watched, and a directory made later is watched as it appears (what
//! was put in it before its watch took hold is reported as created).

use crate::files::{acting, failure};
use crate::session::{Credit, Link};
use futures::StreamExt;
use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use msb_protocol::{FsEvent, FsEventKind, FsFailure, Message, StreamKind};
use msb_types::Identity;
use std::collections::HashMap;
use std::path::Path;
use tokio::sync::{mpsc, watch};

type FsResult<T> = Result<T, FsFailure>;

/// Watches `root` until the host stops the watch or `root` itself goes away.
/// Directories are added to the watch as `who` (root when `None`): one it may not read is
/// not watched.
pub async fn run(
    link: &Link,
    root: &str,
    recursive: bool,
    who: Option<Identity>,
    mut inbox: mpsc::UnboundedReceiver<Message>,
) -> FsResult<()> {
    let inotify = Inotify::init().map_err(|e| failure("starting a watch", e))?;
    let mut watcher = Watcher {
        watches: inotify.watches(),
        dirs: HashMap::new(),
        recursive,
        who,
        last: None,
    };
    let root_wd = watcher.add(Path::new(root))?;
    if recursive {
        watcher.add_below(Path::new(root), &mut Vec::new());
    }
    let credit = Credit::default();
    let window = credit.semaphore(StreamKind::Stdout);
    let (stop_tx, mut stop) = watch::channel(false);
    let listener = tokio::task::spawn_local(async move {
        while let Some(msg) = inbox.recv().await {
            if matches!(msg, Message::StdinEof) {
                break;
            }
            credit.apply(&msg);
        }
        let _ = stop_tx.send(true);
    });
    let mut events = inotify
        .into_event_stream(vec![0u8; 64 * 1024])
        .map_err(|e| failure("starting a watch", e))?;
    link.send(Message::FsWatching).await;
    let result = async {
        loop {
            let raw = tokio::select! {
                _ = stop.changed() => return Ok(()),
                raw = events.next() => raw,
            };
            let Some(raw) = raw else { return Ok(()) };
            let raw = raw.map_err(|e| failure("watching", e))?;
            let (found, root_gone) = watcher.translate(&raw, &root_wd, root);
            for event in found {
                let permits = tokio::select! {
                    _ = stop.changed() => return Ok(()),
                    permits = window.acquire_many(event.cost()) => permits,
                };
                let Ok(permits) = permits else { return Ok(()) };
                permits.forget();
                if !link.send(Message::FsEvent(event)).await {
                    return Ok(());
                }
            }
            if root_gone {
                return Ok(());
            }
        }
    }
    .await;
    listener.abort();
    result
}

struct Watcher {
    watches: Watches,
    /// The path each watch stands for.
    dirs: HashMap<WatchDescriptor, String>,
    recursive: bool,
    who: Option<Identity>,
    /// The last event sent and when: writes to one file in a row, within
    /// [`COALESCE`], are reported once.
    last: Option<(FsEventKind, String, std::time::Instant)>,
}

/// How long writes in a row to one file count as one (a later write is news again).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(200);

const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::DONT_FOLLOW)
    .union(WatchMask::EXCL_UNLINK);

impl Watcher {
    fn add(&mut self, path: &Path) -> FsResult<WatchDescriptor> {
        let watches = &mut self.watches;
        let wd = acting(self.who.clone(), || {
            watches.add(path, MASK).map_err(|e| failure(&path.to_string_lossy(), e))
        })?;
        self.dirs.insert(wd.clone(), path.to_string_lossy().into_owned());
        Ok(wd)
    }

    /// Stops watching directory `path` and everything below it.
    fn forget(&mut self, path: &str) {
        let below = format!("{}/", path.trim_end_matches('/'));
        let gone: Vec<WatchDescriptor> = self
            .dirs
            .iter()
            .filter(|(_, p)| p.as_str() == path || p.starts_with(&below))
            .map(|(wd, _)| wd.clone())
            .collect();
        for wd in gone {
            self.dirs.remove(&wd);
            let _ = self.watches.remove(wd);
        }
    }

    /// Watches every directory below `dir`, noting what it finds in `found` (paths and
    /// whether they are directories). Entries that vanish meanwhile are passed over.
    fn add_below(&mut self, dir: &Path, found: &mut Vec<(String, bool)>) {
        let Ok(items) = std::fs::read_dir(dir) else { return };
        for item in items.flatten() {
            let path = item.path();
            let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
            found.push((path.to_string_lossy().into_owned(), is_dir));
            if is_dir && self.add(&path).is_ok() {
                self.add_below(&path, found);
            }
        }
    }

    /// The events one inotify event stands for, and whether the watched root went away.
    fn translate(
        &mut self,
        raw: &inotify::Event<std::ffi::OsString>,
        root_wd: &WatchDescriptor,
        root: &str,
    ) -> (Vec<FsEvent>, bool) {
        let mut out = Vec::new();
        if raw.mask.contains(EventMask::Q_OVERFLOW) {
            self.last = None;
            out.push(event(FsEventKind::Overflow, root.to_string(), true));
            return (out, false);
        }
        if raw.mask.contains(EventMask::IGNORED) {
            self.dirs.remove(&raw.wd);
            return (out, raw.wd == *root_wd);
        }
        let Some(dir) = self.dirs.get(&raw.wd).cloned() else {
            return (out, false);
        };
        let is_dir = raw.mask.contains(EventMask::ISDIR);
        let path = match &raw.name {
            Some(name) => format!("{}/{}", dir.trim_end_matches('/'), name.to_string_lossy()),
            None => dir.clone(),
        };
        let self_gone = raw.mask.intersects(EventMask::DELETE_SELF | EventMask::MOVE_SELF);
        if self_gone {
            // A directory below reports itself through its parent's watch; only the root's
            // own departure is news.
            if raw.wd == *root_wd {
                out.push(event(FsEventKind::Remove, path, is_dir));
            }
            return (out, raw.wd == *root_wd);
        }
        let kind = if raw.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
            FsEventKind::Create
        } else if raw.mask.contains(EventMask::MODIFY) {
            FsEventKind::Write
        } else if raw.mask.contains(EventMask::DELETE) {
            FsEventKind::Remove
        } else if raw.mask.contains(EventMask::MOVED_FROM) {
            FsEventKind::Rename
        } else if raw.mask.contains(EventMask::ATTRIB) {
            FsEventKind::Chmod
        } else {
            return (out, false);
        };
        let now = std::time::Instant::now();
        let again = kind == FsEventKind::Write
            && self
                .last
                .as_ref()
                .is_some_and(|(k, p, at)| *k == kind && *p == path && now.duration_since(*at) < COALESCE);
        if !again {
            self.last = Some((kind, path.clone(), now));
            out.push(event(kind, path.clone(), is_dir));
        }
        if kind == FsEventKind::Rename && is_dir {
            // Moved away: its watches would report under the old path. If it moved within
            // the tree, the MOVED_TO that follows watches it afresh under the new one.
            self.forget(&path);
        }
        if kind == FsEventKind::Create && is_dir && self.recursive && self.add(Path::new(&path)).is_ok() {
            let mut found = Vec::new();
            self.add_below(Path::new(&path), &mut found);
            out.extend(found.into_iter().map(|(p, d)| event(FsEventKind::Create, p, d)));
        }
        (out, false)
    }
}

fn event(kind: FsEventKind, path: String, is_dir: bool) -> FsEvent {
    FsEvent { kind, path, is_dir }
}
