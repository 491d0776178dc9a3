fn main() -> Result<(), Box<dyn std::error::Error>> {
    // protoc comes from a registry crate so a fresh machine needs no apt step.
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; nothing else reads the env concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/periscope/v1/periscope.proto");
    tonic_prost_build::configure().compile_protos(&["proto/periscope/v1/periscope.proto"], &["proto"])?;
    Ok(())
}
