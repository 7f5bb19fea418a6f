//! What a supervisor is told when it starts: one JSON line on its stdin, so nothing of it
//! is re-encoded into arguments or the environment.

use crate::{Error, Result};
use msb_boot::BootPlan;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;

/// Largest input accepted (a plan is a few KiB; an image's layer list makes it grow).
const MAX_INPUT: u64 = 16 << 20;

/// Everything a supervisor needs besides the store's record of its sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupervisorInput {
    /// `$MSB_HOME` of the sandbox.
    pub home: PathBuf,
    /// The sandbox's name.
    pub name: String,
    /// Whether the sandbox belongs to its starter (stops when the starter goes).
    pub owned: bool,
    /// The supervisor's log filter (`warn` when absent).
    pub log_level: Option<String>,
    /// How to boot it.
    pub plan: BootPlan,
}

impl SupervisorInput {
    /// Reads the input from `reader` (the supervisor's stdin) up to its end.
    pub fn read(reader: impl Read) -> Result<SupervisorInput> {
        let mut text = Vec::new();
        reader
            .take(MAX_INPUT)
            .read_to_end(&mut text)
            .map_err(Error::io("reading the supervisor's input"))?;
        serde_json::from_slice(&text).map_err(Error::BadInput)
    }
}
