// Shared by both targets: open an image and touch everything in it.

use std::io::{Cursor, Read};

use msb_erofs::{FileKind, Reader};

pub fn walk_image(img: Vec<u8>) -> Result<(), msb_erofs::Error> {
    let mut r = Reader::new(Cursor::new(img))?;
    let mut found = Vec::new();
    r.walk(|path, ino| {
        found.push((path.to_vec(), ino.clone()));
        Ok(())
    })?;
    let mut sink = [0u8; 4096];
    for (path, ino) in found {
        match ino.kind {
            FileKind::File => {
                // Read a bounded amount: sparse files may be huge but cheap.
                let mut f = r.open_file(&ino).take(1 << 20);
                while f.read(&mut sink).map_err(msb_erofs::Error::Read)? > 0 {}
            }
            FileKind::Symlink => drop(r.read_link(&ino)?),
            FileKind::Dir => drop(r.read_dir(&ino)?),
            _ => {}
        }
        let _ = r.lookup(&path)?;
    }
    Ok(())
}
