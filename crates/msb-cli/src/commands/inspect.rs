//! `msb inspect NAME`: everything known about a sandbox, as JSON; with `--boot-plan`, how it
//! would boot now.

use anyhow::Result;
use microsandbox::{Microsandbox, PlannedBoot};

/// Arguments of `msb inspect`.
#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// The sandbox.
    name: String,
    /// Show its boot plan (devices, disks, shares, kernel and guest settings) and the exact
    /// VMM command line, without booting.
    #[arg(long)]
    boot_plan: bool,
    /// With --boot-plan: print the plan as one JSON object.
    #[arg(long, requires = "boot_plan")]
    json: bool,
}

/// Prints the sandbox's record, spec and files as JSON, or its boot plan.
pub async fn run(args: InspectArgs) -> Result<i32> {
    let msb = Microsandbox::from_env();
    if args.boot_plan {
        let planned = msb.boot_plan(&args.name).await?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&planned)?);
        } else {
            print_plan(&planned)?;
        }
        return Ok(0);
    }
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

/// The plan for people: the command line one argument per line (a shell could run it),
/// then the VM's and the guest's settings.
fn print_plan(planned: &PlannedBoot) -> Result<()> {
    let plan = &planned.plan;
    println!("VMM command line:");
    let mut args = planned.command_line.iter();
    if let Some(program) = args.next() {
        print!("  {}", crate::output::shell_quote(program));
    }
    for arg in args {
        if arg.starts_with('-') {
            print!(" \\\n   ");
        }
        print!(" {}", crate::output::shell_quote(arg));
    }
    println!();
    match &plan.accel_note {
        Some(note) => println!("\naccelerator: {} ({note})", plan.vm.accel),
        None => println!("\naccelerator: {}", plan.vm.accel),
    }
    println!("\nVM:\n{}", serde_json::to_string_pretty(&plan.vm)?);
    println!("\nguest:\n{}", serde_json::to_string_pretty(&plan.guest)?);
    Ok(())
}
