//! `msb inspect NAME`: everything known about a sandbox, as JSON.

use anyhow::Result;
use microsandbox::Microsandbox;

/// Arguments of `msb inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The sandbox.
    name: String,
}

/// Prints the sandbox's record, spec and files as JSON.
pub async fn run(args: InspectArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    let info = msb.get(&args.name).await?;
    let dir = msb.paths().sandbox_dir(&args.name);
    let mut value = serde_json::to_value(&info)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert(
            "image".into(),
            serde_json::json!(info.spec.image.as_ref().map(|i| &i.reference)),
        );
        obj.insert("resources".into(), serde_json::to_value(info.spec.resources)?);
        obj.insert(
            "paths".into(),
            serde_json::json!({
                "dir": dir,
                "console_log": dir.join("logs/console.log"),
                "exec_log": dir.join("logs/exec.log"),
                "output_log": dir.join("logs/output.log"),
                "supervisor_log": dir.join("logs/supervisor.log"),
            }),
        );
    }
    println!("{}", serde_json::to_string_pretty(&value)?);
    Ok(0)
}
