//! `delta-tool diff OLD NEW PATCH` / `delta-tool apply OLD PATCH OUT`: qbsdiff (the patcher
//! airlock uses, with the publisher's settings) on its own, so that bench/run-delta can time it
//! and read its peak memory with /usr/bin/time next to `zstd --patch-from`.

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [cmd, a, b, c] = args.as_slice() else {
        bail!("usage: delta-tool diff OLD NEW PATCH | delta-tool apply OLD PATCH OUT");
    };
    let read = |p: &str| std::fs::read(p).with_context(|| format!("reading {p}"));
    match cmd.as_str() {
        "diff" => {
            let patch = airlock_repo::delta::make_patch(&read(a)?, &read(b)?)?;
            std::fs::write(c, patch).with_context(|| format!("writing {c}"))?;
        }
        "apply" => {
            let (old, patch) = (read(a)?, read(b)?);
            let out = std::fs::File::create(c).with_context(|| format!("creating {c}"))?;
            let mut out = std::io::BufWriter::new(out);
            qbsdiff::Bspatch::new(&patch)?.apply(&old, &mut out)?;
        }
        _ => bail!("unknown command {cmd}"),
    }
    Ok(())
}
