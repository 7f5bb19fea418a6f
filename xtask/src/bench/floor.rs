//! The floor: the same kernel booted by bare QEMU with the same machine options, into an
//! init that writes one line and reboots at once.
//!
//! The init is a ~200-byte static x86_64 ELF assembled below by hand (write + reboot
//! syscalls): no shell, no libc, no dynamic loader, so the floor is the kernel's own boot
//! plus QEMU start-up and exit, nothing more. It is never run on the host (as root,
//! reboot(2) would reboot the machine); it only goes into the guest's initramfs.

use crate::agent::{newc, CpioEntry};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Printed by the floor init on the console, to prove the guest really reached it.
const MARKER: &[u8] = b"msb-floor: init reached\n";
/// The marker as it is found in the log: the console's tty turns `\n` into `\r\n`.
const MARKER_TEXT: &[u8] = b"msb-floor: init reached";
/// Kernel command line of the floor: ours (see msb-vmm's qemu.rs) with the TCG timer options.
const CMDLINE: &str = "console=ttyS0 reboot=t panic=-1 quiet rdinit=/init nolapic_timer no_timer_check tsc=reliable";
/// Where the ELF is loaded; the usual base for static x86_64 executables.
const BASE: u64 = 0x40_0000;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;

/// Bare QEMU with our kernel and a trivial init, in a directory of its own.
#[derive(Debug)]
pub struct Floor {
    qemu: PathBuf,
    kernel: PathBuf,
    dir: PathBuf,
    cpio: PathBuf,
}

impl Floor {
    /// Writes `floor.cpio` into `dir`; the floor boots with `qemu`.
    pub fn prepare(dir: &Path, kernel: &Path, qemu: Option<PathBuf>) -> Result<Floor> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let init = init_elf();
        let cpio = dir.join("floor.cpio");
        let archive = newc(&[
            CpioEntry::dir("dev"),
            CpioEntry::console(),
            CpioEntry::file("init", 0o755, &init),
        ]);
        std::fs::write(&cpio, archive).with_context(|| format!("writing {}", cpio.display()))?;
        Ok(Floor {
            qemu: qemu.context("the floor needs QEMU")?,
            kernel: kernel.to_path_buf(),
            dir: dir.to_path_buf(),
            cpio,
        })
    }

    /// Boots once and returns the wall time from launching QEMU to its exit. Fails if QEMU
    /// exits with an error or the guest never reached the init.
    pub fn boot(&self, memory_mib: u32) -> Result<Duration> {
        let console = self.dir.join("console.log");
        let _ = std::fs::remove_file(&console);
        let mut cmd = Command::new(&self.qemu);
        cmd.args([
            "-M",
            "microvm,acpi=off,x-option-roms=off",
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "1",
        ])
        .args(["-m", &memory_mib.to_string()])
        .args(["-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&self.kernel)
        .arg("-initrd")
        .arg(&self.cpio)
        .args(["-append", CMDLINE])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        let (elapsed, _) = crate::util::timed(&mut cmd, "bare QEMU")?;
        let log = std::fs::read(&console).with_context(|| format!("reading {}", console.display()))?;
        if !log.windows(MARKER_TEXT.len()).any(|w| w == MARKER_TEXT) {
            bail!("the floor guest never reached its init; see {}", console.display());
        }
        if log.windows(12).any(|w| w == b"Kernel panic") {
            bail!(
                "the floor guest panicked instead of rebooting; see {}",
                console.display()
            );
        }
        Ok(elapsed)
    }
}

/// A static ELF64 executable: `write(1, MARKER)`, `reboot(RB_AUTOBOOT)`, and `exit(1)` should
/// the reboot fail (PID 1 exiting panics the kernel, and `panic=-1` reboots it too).
fn init_elf() -> Vec<u8> {
    let code_off = EHDR_LEN + PHDR_LEN;
    let mut code = Vec::new();
    code.extend([0xb8, 1, 0, 0, 0]); // mov eax, 1 (SYS_write)
    code.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1 (stdout: /dev/console)
    let lea_at = code.len();
    code.extend([0x48, 0x8d, 0x35, 0, 0, 0, 0]); // lea rsi, [rip + disp32] -> MARKER
    code.push(0xba); // mov edx, len
    code.extend((MARKER.len() as u32).to_le_bytes());
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 169, 0, 0, 0]); // mov eax, 169 (SYS_reboot)
    code.push(0xbf); // mov edi, LINUX_REBOOT_MAGIC1
    code.extend(0xfee1_deadu32.to_le_bytes());
    code.push(0xbe); // mov esi, LINUX_REBOOT_MAGIC2
    code.extend(0x2812_1969u32.to_le_bytes());
    code.push(0xba); // mov edx, LINUX_REBOOT_CMD_RESTART (RB_AUTOBOOT)
    code.extend(0x0123_4567u32.to_le_bytes());
    code.extend([0x0f, 0x05]); // syscall
    code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (SYS_exit)
    code.extend([0xbf, 1, 0, 0, 0]); // mov edi, 1
    code.extend([0x0f, 0x05]); // syscall
                               // rip-relative: displacement from the end of the lea (7 bytes) to the marker.
    let disp = (code.len() - (lea_at + 7)) as u32;
    code[lea_at + 3..lea_at + 7].copy_from_slice(&disp.to_le_bytes());
    code.extend(MARKER);
    let total = (code_off + code.len()) as u64;
    let mut elf = elf_header(BASE + code_off as u64);
    elf.extend(program_header(total));
    elf.extend(code);
    elf
}

/// ELF64 header: little-endian x86_64 executable with one program header right after it.
fn elf_header(entry: u64) -> Vec<u8> {
    let mut h = Vec::with_capacity(EHDR_LEN);
    h.extend(b"\x7fELF");
    h.extend([2, 1, 1, 0]); // 64-bit, little-endian, ELF version 1, System V ABI
    h.extend([0; 8]); // ABI version + padding
    h.extend(2u16.to_le_bytes()); // e_type: ET_EXEC
    h.extend(62u16.to_le_bytes()); // e_machine: EM_X86_64
    h.extend(1u32.to_le_bytes()); // e_version
    h.extend(entry.to_le_bytes()); // e_entry
    h.extend((EHDR_LEN as u64).to_le_bytes()); // e_phoff
    h.extend(0u64.to_le_bytes()); // e_shoff: no sections
    h.extend(0u32.to_le_bytes()); // e_flags
    h.extend((EHDR_LEN as u16).to_le_bytes()); // e_ehsize
    h.extend((PHDR_LEN as u16).to_le_bytes()); // e_phentsize
    h.extend(1u16.to_le_bytes()); // e_phnum
    h.extend([0; 6]); // e_shentsize, e_shnum, e_shstrndx
    h
}

/// One PT_LOAD segment mapping the whole file, read + execute, at `BASE`.
fn program_header(size: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PHDR_LEN);
    p.extend(1u32.to_le_bytes()); // p_type: PT_LOAD
    p.extend(5u32.to_le_bytes()); // p_flags: PF_R | PF_X
    p.extend(0u64.to_le_bytes()); // p_offset
    p.extend(BASE.to_le_bytes()); // p_vaddr
    p.extend(BASE.to_le_bytes()); // p_paddr
    p.extend(size.to_le_bytes()); // p_filesz
    p.extend(size.to_le_bytes()); // p_memsz
    p.extend(0x1000u64.to_le_bytes()); // p_align
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_a_small_well_formed_elf() {
        let elf = init_elf();
        assert_eq!(&elf[..4], b"\x7fELF");
        assert!(elf.len() < 256);
        let entry = u64::from_le_bytes(elf[24..32].try_into().unwrap());
        assert_eq!(entry, BASE + (EHDR_LEN + PHDR_LEN) as u64);
        assert!(elf.ends_with(MARKER));
    }
}
