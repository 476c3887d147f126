//! `routereval-engine routers`: the routers a run can name, their parameters, the bounds and the
//! plugin ABIs.

use std::io::Write;

use anyhow::Result;

use crate::eval::registry::Registry;
use crate::plugin::{native, wasm};

pub fn list_routers(registry: &Registry, out: &mut dyn Write) -> Result<()> {
    writeln!(out, "routers (use as --router NAME[:key=value,...]):")?;
    for r in registry.iter() {
        writeln!(out, "  {:<10} {}", r.name, r.summary)?;
        writeln!(out, "  {:<10} parameters: {} (and seed)", "", r.params)?;
        for p in r.about.iter().flat_map(|a| a.params) {
            writeln!(out, "  {:<10}   {}={}: {}", "", p.key, p.default, p.doc)?;
        }
    }
    writeln!(
        out,
        "reference bounds (computed by the engine from the test scores):"
    )?;
    writeln!(out, "  {:<10} the best model for every query", "oracle")?;
    writeln!(
        out,
        "  {:<10} a uniformly random model for every query",
        "random"
    )?;
    writeln!(
        out,
        "  {:<10} the oracle with probability p, else random (exact expectation); p=0.5 by default",
        "r_o:p=<p>"
    )?;
    writeln!(
        out,
        "WebAssembly plugins (components of {}), run in the sandbox:\n  --plugin FILE.wasm[:key=value,...]",
        wasm::ABI
    )?;
    writeln!(
        out,
        "native plugins (libraries of {}), isolated per --isolate:\n  --plugin {}[:key=value,...]",
        native::abi(),
        native::library_file_name("router")
    )?;
    Ok(())
}
