fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc comes from a registry crate so a fresh machine needs no apt step.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let files = ["namespaces", "containers", "tasks", "snapshots"].map(|f| format!("proto/containerd/{f}.proto"));
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    // Client side only: the agent calls containerd, it serves nothing of it.
    tonic_prost_build::configure().build_server(false).compile_protos(&files, &["proto/containerd".to_string()])?;
    Ok(())
}
