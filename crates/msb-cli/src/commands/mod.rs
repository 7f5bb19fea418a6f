//! One module per CLI verb.

pub mod completion;
pub mod cp;
pub mod create;
pub mod doctor;
pub mod exec;
pub mod fork;
pub mod fs;
pub mod image;
pub mod inspect;
pub mod install;
pub mod kill;
pub mod logs;
pub mod ls;
pub mod mcp;
pub mod metrics;
pub mod pull;
pub mod registry;
pub mod restart;
pub mod rm;
pub mod run;
pub mod serve;
pub mod shell;
pub mod snapshot;
pub mod start;
pub mod stop;
pub mod volume;

use microsandbox::MicrosandboxResult;
use std::future::Future;

/// Applies `op` to each named sandbox in turn, printing the name of each that succeeded
/// (unless `-q`) and the error of each that did not; exit status 1 if any failed.
pub async fn each<F, Fut>(names: &[String], op: F) -> anyhow::Result<i32>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = MicrosandboxResult<()>>,
{
    let mut failed = false;
    for name in names {
        match op(name.clone()).await {
            Ok(()) if crate::output::is_quiet() => {}
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("msb: error: {e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}
