fn main() -> std::process::ExitCode {
    keyhook::run(std::env::args_os())
}
