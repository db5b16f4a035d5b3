use clap::Parser;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = microcash::cli::Cli::parse();
    if let Err(e) = microcash::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
