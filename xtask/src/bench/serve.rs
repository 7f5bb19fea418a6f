//! `cargo xtask bench serve`: what the HTTP API costs over the SDK, measured in one run
//! against one release `msb serve`: exec round trips of `true` through the API beside the
//! SDK in this process (the same sandbox), create → first output through the API beside the
//! SDK, and requests per second of `GET /v1/sandboxes` and of exec with 16 clients. VM
//! figures are QEMU TCG (software emulation) on hosts without usable KVM, and say so.

use super::console;
use super::stats::Summary;
use crate::{demo, rootfs, util};
use anyhow::{bail, Context, Result};
use microsandbox::Microsandbox;
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Parameters of the run.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Params {
    /// Exec round trips timed on each path.
    #[arg(long, default_value_t = 100)]
    pub execs: usize,
    /// Create → first output rounds on each path (after one warm-up).
    #[arg(long, default_value_t = 3)]
    pub creates: usize,
    /// Concurrent clients for the throughput figures.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds each throughput figure runs.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
}

#[derive(Debug, Default)]
struct Figures {
    accel: String,
    sdk_exec: Vec<Duration>,
    api_exec: Vec<Duration>,
    sdk_first_output: Vec<Duration>,
    api_first_output: Vec<Duration>,
    list_rps: f64,
    exec_rps: f64,
}

/// Where the API answers, and its token.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    pub(super) url: String,
    pub(super) token: String,
}

/// A release `msb serve` in a home under `tmp`.
pub(super) struct Server {
    child: Child,
    pub(super) api: Endpoint,
    /// Its E2B listener's URL, when started with one.
    pub(super) e2b_url: Option<String>,
    home: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the benchmark; prints text or one JSON object.
pub fn run(p: Params, json: bool) -> Result<()> {
    if p.execs == 0 || p.creates == 0 || p.clients == 0 {
        bail!("--execs, --creates and --clients must be at least 1");
    }
    let tmp = tempfile::Builder::new().prefix("msb-bench-serve-").tempdir()?;
    let (msb, root) = console::stdout_to_stderr(|| prepare(tmp.path()))??;
    let mut f = Figures {
        accel: super::accel_label(),
        ..Figures::default()
    };
    let measured = start(&msb, tmp.path(), false).and_then(|server| {
        let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        rt.block_on(measure(&mut f, p, &server, &msb, &root))
    });
    super::finish(tmp.path(), measured, json, || to_json(&f), || print(&f, p))
}

/// The release `msb` and the busybox root the sandboxes copy.
fn prepare(tmp: &Path) -> Result<(PathBuf, PathBuf)> {
    let msb = demo::build_msb(true)?;
    let root = rootfs::build()?;
    std::fs::create_dir_all(tmp.join("home/lib"))?;
    for file in ["vmlinux", "initramfs.cpio"] {
        std::os::unix::fs::symlink(crate::paths::msb_lib_dir().join(file), tmp.join("home/lib").join(file))?;
    }
    Ok((msb, root))
}

/// Starts `msb serve` on a free loopback port.
pub(super) fn start(msb: &Path, tmp: &Path, e2b: bool) -> Result<Server> {
    let home = tmp.join("home");
    let mut cmd = Command::new(msb);
    cmd.args(["serve", "--listen", "127.0.0.1:0"]);
    if e2b {
        cmd.args(["--e2b-listen", "127.0.0.1:0"]);
    }
    let mut child = cmd
        .env("MSB_HOME", &home)
        .env("MSB_BIN", msb)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting msb serve")?;
    let mut out = std::io::BufReader::new(child.stdout.take().context("msb serve's stdout")?);
    let mut line = |prefix: &str| -> Result<String> {
        let mut line = String::new();
        out.read_line(&mut line)?;
        line.trim()
            .strip_prefix(prefix)
            .map(str::to_string)
            .with_context(|| format!("msb serve said {line:?}, not {prefix:?}…"))
    };
    let url = line("listening on ")?;
    let e2b_url = if e2b { Some(line("e2b listening on ")?) } else { None };
    let token = std::fs::read_to_string(home.join("server/token"))?.trim().to_string();
    Ok(Server {
        child,
        api: Endpoint { url, token },
        e2b_url,
        home,
    })
}

/// A fresh copy of `root` under the server's home, for one sandbox.
fn root_copy(server: &Server, root: &Path, name: &str) -> Result<PathBuf> {
    let copy = server.home.join("roots").join(name);
    std::fs::create_dir_all(server.home.join("roots"))?;
    util::run(Command::new("cp").args(["-a", "--reflink=auto"]).arg(root).arg(&copy))?;
    Ok(copy)
}

/// `POST path` with a JSON body; fails unless the status is `want`.
async fn post(http: &reqwest::Client, api: &Endpoint, path: &str, body: &Value, want: u16) -> Result<Value> {
    let r = http
        .post(format!("{}{path}", api.url))
        .bearer_auth(&api.token)
        .json(body)
        .send()
        .await?;
    let status = r.status().as_u16();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    if status != want {
        bail!("POST {path}: {status} {answer}");
    }
    Ok(answer)
}

async fn measure(f: &mut Figures, p: Params, s: &Server, msb: &Path, root: &Path) -> Result<()> {
    let http = reqwest::Client::new();
    let sdk = Microsandbox::at(&s.home).with_supervisor(msb);
    for round in 0..=p.creates {
        console::progress("serve", &format!("create → first output, round {round}/{}", p.creates));
        let api_name = format!("api-{round}");
        let copy = root_copy(s, root, &api_name)?;
        let t0 = Instant::now();
        post(
            &http,
            &s.api,
            "/v1/sandboxes",
            &json!({"name": api_name, "rootfs": copy}),
            201,
        )
        .await?;
        let out = post(
            &http,
            &s.api,
            &format!("/v1/sandboxes/{api_name}/exec"),
            &json!({"cmd": ["echo", "first"]}),
            200,
        )
        .await?;
        let api = t0.elapsed();
        if out["stdout"] != "first\n" {
            bail!("the first exec printed {out}");
        }
        let sdk_name = format!("sdk-{round}");
        let copy = root_copy(s, root, &sdk_name)?;
        let t0 = Instant::now();
        let sb = sdk.builder(&sdk_name).rootfs(copy).create_detached().await?;
        sb.exec("echo", ["first"]).await?;
        let direct = t0.elapsed();
        if round > 0 {
            f.api_first_output.push(api);
            f.sdk_first_output.push(direct);
        }
        if round < p.creates {
            for name in [&api_name, &sdk_name] {
                sdk.remove(name, true).await?;
            }
        }
    }
    let name = format!("api-{}", p.creates);
    console::progress("serve", "exec round trips");
    let sb = sdk.connect(&name).await?;
    let exec_path = format!("/v1/sandboxes/{name}/exec");
    let body = json!({"cmd": ["true"]});
    for i in 0..=p.execs {
        let t = Instant::now();
        sb.exec("true", Vec::<String>::new()).await?;
        let direct = t.elapsed();
        let t = Instant::now();
        post(&http, &s.api, &exec_path, &body, 200).await?;
        let api = t.elapsed();
        if i > 0 {
            f.sdk_exec.push(direct);
            f.api_exec.push(api);
        }
    }
    console::progress("serve", &format!("GET /v1/sandboxes, {} clients", p.clients));
    f.list_rps = throughput(p, &s.api, |http, api| {
        http.get(format!("{}/v1/sandboxes", api.url)).bearer_auth(&api.token)
    })
    .await?;
    console::progress("serve", &format!("exec, {} clients", p.clients));
    f.exec_rps = throughput(p, &s.api, move |http, api| {
        http.post(format!("{}{exec_path}", api.url))
            .bearer_auth(&api.token)
            .json(&body)
    })
    .await?;
    for round in 0..=p.creates {
        for prefix in ["api", "sdk"] {
            sdk.remove(&format!("{prefix}-{round}"), true).await.ok();
        }
    }
    Ok(())
}

/// Successful requests per second from `p.clients` clients, each sending `request` in a
/// loop for `p.seconds`.
async fn throughput<F>(p: Params, api: &Endpoint, request: F) -> Result<f64>
where
    F: Fn(&reqwest::Client, &Endpoint) -> reqwest::RequestBuilder + Send + Sync + Clone + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(p.seconds);
    let mut tasks = Vec::new();
    for _ in 0..p.clients {
        let (done, request, api) = (done.clone(), request.clone(), api.clone());
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            while Instant::now() < until {
                let r = request(&http, &api).send().await?;
                if !r.status().is_success() {
                    bail!("{} answered {}", r.url(), r.status());
                }
                r.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        }));
    }
    let t0 = Instant::now();
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64())
}

fn print(f: &Figures, p: Params) {
    let ms = |d: f64| format!("{:.2} ms", d * 1e3);
    let (sdk, api) = (Summary::of(&f.sdk_exec), Summary::of(&f.api_exec));
    println!("msb serve — VMs under {}", f.accel);
    println!("exec round trip of `true`, {} each, sequential (same sandbox):", sdk.n);
    println!("  SDK in this process   median {}  p99 {}", ms(sdk.median), ms(sdk.p99));
    println!("  HTTP API              median {}  p99 {}", ms(api.median), ms(api.p99));
    println!(
        "  the API adds          {} at the median ({:.2}x the SDK)",
        ms(api.median - sdk.median),
        api.median / sdk.median.max(f64::EPSILON)
    );
    let (sdk, api) = (Summary::of(&f.sdk_first_output), Summary::of(&f.api_first_output));
    println!("create → first output, {} rounds each:", sdk.n);
    println!("  SDK in this process   {}", sdk.secs());
    println!("  HTTP API              {}", api.secs());
    println!("throughput, {} clients for {} s each:", p.clients, p.seconds);
    println!("  GET /v1/sandboxes     {:.0} requests/s", f.list_rps);
    println!("  POST exec `true`      {:.0} requests/s", f.exec_rps);
}

fn to_json(f: &Figures) -> Value {
    json!({
        "accel": f.accel,
        "exec_round_trip": {
            "sdk": Summary::of(&f.sdk_exec).json(true),
            "api": Summary::of(&f.api_exec).json(true),
        },
        "create_first_output": {
            "sdk": Summary::of(&f.sdk_first_output).json(false),
            "api": Summary::of(&f.api_first_output).json(false),
        },
        "list_requests_per_sec": f.list_rps,
        "exec_requests_per_sec": f.exec_rps,
    })
}
