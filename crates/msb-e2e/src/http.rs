//! Reaching a sandbox's published port from the host's loopback (nothing leaves the machine).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// A port free on the host's loopback now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("the free port's address").port()
}

/// `GET path` on 127.0.0.1:`port`, again until the answer holds `needle` (a server in a
/// guest may take a moment to come up); panics after a minute.
pub fn get_until(port: u16, path: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = std::net::TcpStream::connect(("127.0.0.1", port)).and_then(|mut conn| {
            conn.set_read_timeout(Some(Duration::from_secs(10)))?;
            conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
            let mut answer = String::new();
            conn.read_to_string(&mut answer)?;
            Ok(answer)
        });
        match got {
            Ok(answer) if answer.contains(needle) => return answer,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(300)),
            other => panic!("port {port} never served {needle:?}: {other:?}"),
        }
    }
}
