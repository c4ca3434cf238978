//! Writes the CustomResourceDefinitions to `crds/` (or the directory given as the only argument).

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds")), PathBuf::from);
    std::fs::create_dir_all(&dir)?;
    for (file, yaml) in operator::crds::all()? {
        let path = dir.join(file);
        std::fs::write(&path, yaml)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
