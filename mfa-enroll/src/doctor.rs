//! `doctor`: check the host's setup and print each finding with its fix.

use std::io::Write;
use std::path::Path;

use mfa_core::doctor::{self, Level, SystemPaths};
use mfa_core::fsutil::FileTrust;
use mfa_core::text::escape;
use serde_json::json;

use crate::cli::JsonArg;
use crate::context::{require_root, write_out};
use crate::error::CliError;
use crate::render;

/// `mfa-enroll doctor [--json]`.
pub fn doctor(config_path: &Path, args: &JsonArg, out: &mut impl Write) -> Result<(), CliError> {
    require_root("doctor")?;
    let findings = doctor::run(config_path, FileTrust::ROOT, &SystemPaths::default());
    let errors = findings.iter().filter(|f| f.level == Level::Error).count();
    if args.json {
        let list: Vec<_> = findings
            .iter()
            .map(|f| json!({"level": f.level.as_str(), "area": f.area, "message": f.message, "fix": f.fix}))
            .collect();
        write_out(
            out,
            &render::json_line(&json!({ "findings": list, "errors": errors })),
        )?;
    } else {
        for f in &findings {
            // Findings quote paths, file names and configuration values.
            let mut shown = f.clone();
            shown.area = escape(&f.area).into_owned();
            shown.message = escape(&f.message).into_owned();
            shown.fix = escape(&f.fix).into_owned();
            write_out(out, &format!("{shown}\n"))?;
        }
    }
    if errors > 0 {
        return Err(CliError::DoctorFound(errors));
    }
    Ok(())
}
