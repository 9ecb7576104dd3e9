//! `hakv`: one binary for the server and its tools.
//!
//! ```text
//! hakv up [--nodes 3] [--dir ./hakv-data] [--port 7001]    a local cluster, one process per node
//! hakv ctl status [--dir ./hakv-data]                     every node's role, term, leader, log
//! hakv server --id N --data-dir D --listen A --peer-listen P --cluster 1=A1/P1,2=A2/P2,…
//! hakv bench resp://127.0.0.1:7001 | etcd://127.0.0.1:2379 [-c 10 -P 1 -r 0.5 …]   load generator
//! ```

mod ctl;
mod server;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "hakv",
    version,
    about = "A highly available, strongly consistent key-value store (Redis protocol)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a local cluster: every node its own process on 127.0.0.1.
    Up(up::UpArgs),
    /// Run one node.
    Server(server::ServerArgs),
    /// Operator commands.
    Ctl(ctl::CtlArgs),
    /// Load generator: drive hakv or Redis (RESP) or etcd (gRPC) with one workload.
    Bench(loadgen::BenchArgs),
}

fn main() {
    // Die quietly when a pipe closes (`hakv ctl status | head`), like other CLI tools,
    // instead of panicking on the failed print.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    let code = match cli.command {
        Cmd::Up(a) => up::run(a),
        Cmd::Server(a) => server::run(a),
        Cmd::Ctl(a) => ctl::run(a),
        Cmd::Bench(a) => loadgen::run(a),
    };
    std::process::exit(code);
}
