//! Installs (or finds) the Flink distribution of a `flinkVersion` the way `flinkpilot local`
//! does, and prints its `FLINK_HOME`:
//!
//! ```sh
//! cargo run -p flinkpilot-local --example provision -- v2_3 [CACHE_DIR]
//! ```

use std::sync::Arc;

use flinkpilot_local::FlinkHomes;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let version: api::FlinkVersion = serde_json::from_value(serde_json::Value::String(
        args.next().unwrap_or_else(|| "v2_3".to_string()),
    ))?;
    let mut homes = FlinkHomes::from_env(None)
        .provisioning(true)
        .on_progress(Arc::new(|m| eprintln!("{m}")));
    if let Some(cache) = args.next() {
        homes = FlinkHomes::with_cache(cache)
            .provisioning(true)
            .on_progress(Arc::new(|m| eprintln!("{m}")));
    }
    let started = std::time::Instant::now();
    let home = homes.resolve(version)?;
    eprintln!("Flink {} in {:.1?}", home.version, started.elapsed());
    println!("{}", home.path.display());
    Ok(())
}
