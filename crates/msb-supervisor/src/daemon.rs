//! Detaching the supervisor from whoever started it.

/// Detaches the calling process from its parent and terminal: it forks, the parent exits at
/// once (so whoever started it reaps it right away and no zombie is left), and the child
/// starts a session of its own (no terminal, no signals from the starter's process group)
/// and moves to `/` (so it keeps no directory busy).
///
/// # Safety
///
/// The process must have a single thread (call it before any runtime or thread starts):
/// after `fork` only the calling thread exists in the child, and locks held by other
/// threads would stay locked forever.
pub unsafe fn detach() -> std::io::Result<()> {
    // SAFETY: the caller guarantees the process is single-threaded, so the child can go on
    // running ordinary code after fork.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { .. } => std::process::exit(0),
        nix::unistd::ForkResult::Child => {}
    }
    nix::unistd::setsid()?;
    std::env::set_current_dir("/")
}
