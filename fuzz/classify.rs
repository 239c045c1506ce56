//! `classify <target> <file>…`: for each file, `accepted` or `refused` by the target's
//! entry point (`entries.rs`), one line each. `run-all.sh` names the inputs it keeps by
//! this, as `fuzz_corpus.rs` expects (`valid…` accepted, every other seed refused).

mod entries;

fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(target) = args.next() else {
        eprintln!("usage: classify <target> <file>…");
        return std::process::ExitCode::from(2);
    };
    let Some((_, run)) = entries::TARGETS.iter().find(|(n, _)| *n == target) else {
        eprintln!("classify: no target {target}");
        return std::process::ExitCode::from(2);
    };
    for file in args {
        match std::fs::read(&file) {
            Ok(bytes) if run(&bytes) => println!("accepted"),
            Ok(_) => println!("refused"),
            Err(e) => {
                eprintln!("classify: {file}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        }
    }
    std::process::ExitCode::SUCCESS
}
