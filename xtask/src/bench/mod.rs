use clap::Args;

#[derive(Debug, Args)]
pub struct Options {}

pub fn run(_options: &Options) -> anyhow::Result<()> {
    anyhow::bail!("not written yet")
}
