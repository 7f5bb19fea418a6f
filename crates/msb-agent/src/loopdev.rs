//! Read-only loop devices over byte ranges of a disk: how each image layer on the shared
//! layer disk becomes a block device EROFS can mount.

use msb_protocol::Extent;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
/// Reads go straight to the disk: the layer's pages are cached once (by the filesystem),
/// not again under the loop device.
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64` from `<linux/loop.h>` (not in the libc crate).
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config` from `<linux/loop.h>`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// Attaches a read-only loop device to `extent` of `disk` and returns its path.
pub fn attach(control: &File, disk: &File, extent: Extent) -> io::Result<String> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
    let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
    if n < 0 {
        return Err(io::Error::other(format!(
            "no free loop device: {}",
            io::Error::last_os_error()
        )));
    }
    let path = format!("/dev/loop{n}");
    let dev = OpenOptions::new().read(true).open(&path)?;
    let config = LoopConfig {
        fd: disk.as_raw_fd() as u32,
        block_size: 0,
        info: LoopInfo64 {
            device: 0,
            inode: 0,
            rdevice: 0,
            offset: extent.offset,
            sizelimit: extent.len,
            number: 0,
            encrypt_type: 0,
            encrypt_key_size: 0,
            flags: LO_FLAGS_READ_ONLY | LO_FLAGS_DIRECT_IO,
            file_name: [0; 64],
            crypt_name: [0; 64],
            encrypt_key: [0; 32],
            init: [0; 2],
        },
        reserved: [0; 8],
    };
    // SAFETY: `config` is a fully initialised `struct loop_config` that outlives the call;
    // the kernel only reads it.
    let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config as *const LoopConfig) };
    if rc < 0 {
        return Err(io::Error::other(format!(
            "configuring {path} at offset {} (+{} bytes): {}",
            extent.offset,
            extent.len,
            io::Error::last_os_error()
        )));
    }
    Ok(path)
}

/// Opens the loop control device.
pub fn control() -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| io::Error::other(format!("opening /dev/loop-control (kernel without loop support?): {e}")))
}
