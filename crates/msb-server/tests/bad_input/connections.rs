//! Connections: oversized bodies and headers, slow and silent clients, the connection limit.

use super::*;

#[tokio::test]
async fn a_json_body_over_16_mib_is_413() {
    let server = Server::quick().await;
    let big = format!(
        r#"{{"rootfs": "/x", "name": "{}"}}"#,
        "a".repeat(msb_server::JSON_BODY_LIMIT)
    );
    let request = server
        .request(Method::POST, "/v1/sandboxes")
        .header("content-type", "application/json");
    let (status, answer) = send(request.body(big.clone())).await;
    assert_eq!(
        (status, error_kind(status, &answer).as_str()),
        (413, "payload_too_large"),
        "{answer}"
    );
    // The same without a length up front (chunked): refused once the limit is read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.into_bytes().chunks(1 << 16).map(|c| Ok(c.to_vec())).collect();
    let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let request = server
        .request(Method::POST, "/v1/sandboxes")
        .header("content-type", "application/json");
    let (status, answer) = send(request.body(body)).await;
    assert_eq!(
        (status, error_kind(status, &answer).as_str()),
        (413, "payload_too_large"),
        "{answer}"
    );
}

#[tokio::test]
async fn huge_headers_are_refused_without_the_server_growing() {
    let server = Server::quick().await;
    let mut request = b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: ".to_vec();
    request.extend(std::iter::repeat_n(b'a', 1 << 20));
    request.extend(b"\r\n\r\n");
    let before = rss_kib();
    for _ in 0..3 {
        let tries = (0..10).map(|_| raw(server.addr, &request, Duration::from_secs(10)));
        for answer in futures::future::join_all(tries).await {
            let answer = answer.expect("the connection was closed");
            assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
        }
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "30 requests with 1 MiB headers grew the process by {grown} KiB"
    );
    // Many small headers adding up past the limit, too.
    let mut many = b"GET /health HTTP/1.1\r\nhost: x\r\n".to_vec();
    for i in 0..20_000 {
        many.extend(format!("x-h{i}: {}\r\n", "b".repeat(20)).as_bytes());
    }
    many.extend(b"\r\n");
    let answer = raw(server.addr, &many, Duration::from_secs(10)).await.expect("closed");
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    let (status, _) = send(client().get(format!("{}/health", server.url))).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn slow_or_silent_clients_are_cut_off_after_the_header_timeout() {
    let server = Server::quick().await;
    // Slowloris: a byte every 200 ms; the connection ends after about a second.
    let started = Instant::now();
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.split();
    let drip = async {
        for byte in b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ".iter().cycle() {
            if writer.write_all(&[*byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut answer = Vec::new();
    tokio::select! {
        _ = drip => {}
        read = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer)) => {
            assert!(read.is_ok(), "a slowloris connection was still open after 10 s");
        }
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "closed after {took:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 408"), "{answer}");
    // A connection that sends nothing.
    let started = Instant::now();
    assert!(raw(server.addr, b"", Duration::from_secs(10)).await.is_some());
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    // A kept-alive connection that never starts its next request.
    let started = Instant::now();
    let answer = raw(
        server.addr,
        b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n",
        Duration::from_secs(10),
    )
    .await;
    let answer = answer.expect("an idle kept-alive connection was still open after 10 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test]
async fn connections_over_the_limit_wait_for_a_free_one() {
    let server = Server::start(Limits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
    })
    .await;
    // Two connections that hold their places with a half-sent request.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap();
        held.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("{}/health", server.url);
    let waiting = tokio::spawn(async move { client().get(url).send().await.map(|r| r.status().as_u16()) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served beside two held ones"
    );
    drop(held.pop());
    let status = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once one was free");
    assert_eq!(status.unwrap().unwrap(), 200);
    drop(held);
    // Many at once, two at a time: all served.
    let plain = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let requests = (0..50).map(|_| plain.get(format!("{}/health", server.url)).send());
    for response in futures::future::join_all(requests).await {
        assert_eq!(response.unwrap().status(), 200);
    }
}
