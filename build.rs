//! Compiles every proto under proto/ with protox (a pure-Rust protobuf
//! compiler), so a fresh machine builds the contracts without a system protoc.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = Path::new("proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let mut files = Vec::new();
    collect_protos(proto_root, &mut files)?;
    files.sort();

    let mut compiler = protox::Compiler::new([proto_root])?;
    // Source info keeps the proto comments, so reflection clients
    // (buf curl, grpcurl describe) show the documentation.
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files.iter().map(|f| f.strip_prefix(proto_root).unwrap()))?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("wizdata_descriptor.bin"), compiler.encode_file_descriptor_set())?;

    tonic_prost_build::configure()
        .include_file("wizdata_includes.rs")
        // The google.api.http annotations are read from the descriptor set
        // by the gateway, never as Rust types: no code for them.
        .extern_path(".google.api", "::unused_google_api")
        // Indicator updates are several times the size of the other events:
        // boxed, every MarketEvent (one per subscriber in flight) stays small.
        .boxed(".wizdata.streaming.v1.MarketEvent.payload.indicator")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}

fn collect_protos(dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(path);
        }
    }
    Ok(())
}
