//! Generates the Rust types of E2B's envd protocol (`proto/e2b/*.proto`, as E2B publishes
//! them) with prost, and their proto3 JSON mapping with pbjson: the E2B endpoint speaks
//! both Connect codecs. protox compiles the files in Rust, so no `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/e2b/process.proto", "proto/e2b/filesystem.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto/e2b"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out.join("e2b_descriptors.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&descriptors))?;

    prost_build::Config::new()
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_protos(&protos, &["proto/e2b"])?;
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptor_path)?)?
        // As envd's own clients do: a newer peer's extra fields are not an error.
        .ignore_unknown_fields()
        .build(&[".process", ".filesystem"])?;
    Ok(())
}
