fn main() {
    std::process::exit(gpuvet::cli::main());
}
