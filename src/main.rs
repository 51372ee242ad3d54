//! The `shardgate` command line: `serve`, `check`, `plan`.
//!
//! Exit codes (the usage text lists them): 0 success; 1 `serve` could not start or failed at
//! run time (an upstream, this machine, a port), and `check` found it would not start; 2 bad
//! usage or configuration (a file that does not validate, cores this process cannot use,
//! upstreams whose merged names collide), for `serve` and `check` alike.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use shardgate::config::{Config, Cores};
use shardgate::runtime::{self, platform};

const USAGE: &str = "\
usage:
  shardgate [serve] [--config PATH] [--cores N|all] serve MCP (default config: tuning/default.toml, built in)
  shardgate check --config PATH                     validate a config, print a summary, probe upstreams
  shardgate plan [--config PATH] [--cores N|all]    print the memory ceiling per shard and in total

exit status of serve and check (check's predicts serve's):
  0  ok: serve starts (optional upstreams that are down are reported, and join when they answer)
  1  serve cannot start: a required upstream is down or not up within server.startup_timeout_ms,
     or this machine cannot run it (io_uring, RLIMIT_MEMLOCK, a listen port in use)
  2  the configuration is wrong: it does not validate, names cores this process cannot use,
     or two upstreams offer the same merged tool or prompt name";

/// Parsed command line.
struct Args {
    command: String,
    config: Option<PathBuf>,
    cores: Option<Cores>,
}

fn parse_args(raw: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut raw = raw.peekable();
    // No command (`cargo run --release`) or only flags: serve.
    let command = match raw.peek().map(String::as_str) {
        Some("-h" | "--help") => return Err(String::new()),
        None => "serve".to_owned(),
        Some(first) if first.starts_with("--") => "serve".to_owned(),
        Some(_) => raw.next().expect("peeked"),
    };
    if !matches!(command.as_str(), "serve" | "check" | "plan") {
        return Err(format!("unknown command {command:?}"));
    }
    let mut args = Args {
        command,
        config: None,
        cores: None,
    };
    while let Some(flag) = raw.next() {
        let mut value = || raw.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => args.config = Some(PathBuf::from(value()?)),
            "--cores" => args.cores = Some(parse_cores(&value()?)?),
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    if args.command == "check" && args.config.is_none() {
        return Err("check needs --config PATH".into());
    }
    Ok(args)
}

/// `--cores all` or `--cores N` (a count of the cores this process may run on).
fn parse_cores(value: &str) -> Result<Cores, String> {
    match value {
        "all" => Ok(Cores::All),
        n => match n.parse::<u16>() {
            Ok(count) if (1..=platform::SHARDS_MAX).contains(&count) => Ok(Cores::Count(count)),
            _ => Err(format!(
                "--cores takes \"all\" or a count 1..={}, got {value:?}",
                platform::SHARDS_MAX
            )),
        },
    }
}

fn load(args: &Args) -> Result<Config, ExitCode> {
    match &args.config {
        None => Ok(Config::default_embedded()),
        Some(path) => Config::load(path).map_err(|errors| {
            shardgate::support::log(format_args!("invalid configuration:\n{errors}"));
            ExitCode::from(2)
        }),
    }
}

fn cores_for(args: &Args, config: &Config) -> Result<Vec<usize>, ExitCode> {
    // Read the affinity mask before any thread is pinned.
    let available: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let choice = args.cores.as_ref().unwrap_or(&config.server.cores);
    platform::select_cores(choice, &available).map_err(|e| {
        shardgate::support::log(format_args!("{e}"));
        ExitCode::from(2)
    })
}

/// Shards to plan for. A count or a list is taken as given, so a plan can be made for a bigger
/// machine than this one; `all` means the cores this process may use here.
fn plan_shards(args: &Args, config: &Config) -> u16 {
    match args.cores.as_ref().unwrap_or(&config.server.cores) {
        Cores::Count(count) => *count,
        Cores::List(list) => list.len() as u16,
        Cores::All => core_affinity::get_core_ids().map_or(1, |ids| ids.len().max(1) as u16),
    }
}

fn run(args: Args) -> Result<(), ExitCode> {
    let config = load(&args)?;
    match args.command.as_str() {
        "check" => {
            println!("{}", config.summary());
            let shards = cores_for(&args, &config)?.len();
            let probe = runtime::probe_upstreams(Arc::new(config), shards).map_err(|e| {
                shardgate::support::log(format_args!("check: serve would not start: {e}"));
                ExitCode::from(1)
            })?;
            for line in &probe.lines {
                println!("{line}");
            }
            // In the order serve meets them: it stops at a required upstream before it can
            // compare names.
            if !probe.required_down.is_empty() {
                shardgate::support::log(format_args!(
                    "check: serve would not start: required upstream(s) {} not up",
                    probe.required_down.join(", ")
                ));
                return Err(ExitCode::from(1));
            }
            probe.collisions.map_err(|e| {
                shardgate::support::log(format_args!("invalid configuration:\n{e}"));
                ExitCode::from(2)
            })
        }
        "plan" => {
            println!("{}", runtime::plan(&config, plan_shards(&args, &config)));
            Ok(())
        }
        _ => {
            let cores = cores_for(&args, &config)?;
            let path = config.server.path.clone();
            runtime::serve(Arc::new(config), cores, |ready| {
                println!(
                    "shardgate ready: mcp=http://{}{path} admin=http://{} shards={}",
                    ready.mcp, ready.admin, ready.shards
                );
            })
            .map_err(|e| {
                shardgate::support::log(format_args!("{e}"));
                ExitCode::from(e.exit_code())
            })
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) if message.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            shardgate::support::log(format_args!("{message}\n{USAGE}"));
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
