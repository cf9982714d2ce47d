//! Container images as OCI image layouts: `images/<name>/<arch>/` with `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>` (layers, config, manifest).
//!
//! Layers are ustar archives of "binary-looking" files: uncompressed (media type `tar`), or
//! in the compressed variant `tar+gzip`, written by two deflate producers (see [`crate::gz`]:
//! layers alternate between zlib and miniz), with the config's `diff_ids` naming the
//! uncompressed tars and the manifest's descriptors the gzip blobs. The base OS layer,
//! the .NET runtime layer and the Advisory AI common layer are shared between images of an
//! architecture and written byte-identically into each image that uses them. Each image
//! has one app layer; each day exactly one of the eight app layers (4 images x 2 arches) is
//! rebuilt: a few of its files change, so its blob is replaced, while every other layer
//! blob stays byte-identical.

use crate::fsutil::{HashWriter, create_hashed, finish_hashed, write_file};
use crate::gz::{GzWriter, Header, Producer};
use crate::rng::{Sm, fill_binary, h, hs};
use crate::schedule::{LAYER_REBUILDS, rebuild_days, rebuild_time};
use crate::text::{DAY, T0, rfc3339};
use serde_json::json;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Image names, in slot order.
pub const IMAGES: [&str; 4] = [
    "stella-ops",
    "zastava",
    "advisory-ai-web",
    "advisory-ai-worker",
];
/// (directory name, OCI architecture).
pub const ARCHES: [(&str, &str); 2] = [("x86_64", "amd64"), ("arm64", "arm64")];
/// Image tag used in annotations and references.
pub const IMAGE_TAG: &str = "2025.10.0";
/// Registry prefix used in image references.
pub const REGISTRY: &str = "registry.stella-ops.org/stellaops";

const TAG_SEG: u64 = 0x7365_676d;
const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
const LAYER_MEDIA_TYPE_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// Deflate level of the gzip layers (`gzip -6`, Docker's and Go's default).
const LAYER_GZIP_LEVEL: u32 = 6;

struct LayerDef {
    key: &'static str,
    /// Share of the architecture's image bytes, per image that carries it (permille).
    permille: u64,
    /// Which images (indices into [`IMAGES`]) carry it.
    users: &'static [usize],
    /// Directory inside the archive.
    prefix: &'static str,
    /// The app layer of `users[0]`, rebuilt by the calendar.
    app: bool,
    created_by: &'static str,
}

const LAYERS: [LayerDef; 7] = [
    LayerDef {
        key: "base-os",
        permille: 100,
        users: &[0, 1, 2, 3],
        prefix: "usr/lib",
        app: false,
        created_by: "ADD rootfs.tar / # debian:bookworm-slim",
    },
    LayerDef {
        key: "dotnet-runtime",
        permille: 70,
        users: &[0, 2, 3],
        prefix: "usr/share/dotnet/shared/Microsoft.NETCore.App/10.0.0",
        app: false,
        created_by: "COPY /dotnet /usr/share/dotnet # aspnet:10.0",
    },
    LayerDef {
        key: "advisory-ai-common",
        permille: 60,
        users: &[2, 3],
        prefix: "opt/advisory-ai/lib",
        app: false,
        created_by: "COPY /models/runtime /opt/advisory-ai/lib",
    },
    LayerDef {
        key: "app-stella-ops",
        permille: 100,
        users: &[0],
        prefix: "app",
        app: true,
        created_by: "COPY /publish /app # stella-ops",
    },
    LayerDef {
        key: "app-zastava",
        permille: 40,
        users: &[1],
        prefix: "usr/local/bin",
        app: true,
        created_by: "COPY /publish /usr/local/bin # zastava",
    },
    LayerDef {
        key: "app-advisory-ai-web",
        permille: 60,
        users: &[2],
        prefix: "app",
        app: true,
        created_by: "COPY /publish /app # advisory-ai-web",
    },
    LayerDef {
        key: "app-advisory-ai-worker",
        permille: 70,
        users: &[3],
        prefix: "app",
        app: true,
        created_by: "COPY /publish /app # advisory-ai-worker",
    },
];

const EXTS: [&str; 6] = ["so", "dll", "bin", "dat", "json", "pak"];

/// The slot (0..8) of an app layer in the rebuild calendar.
fn slot(image: usize, arch: usize) -> u64 {
    (image * 2 + arch) as u64
}

/// The gzip producer of the compressed variant's layer `LAYERS[i]`: alternating, so the
/// shared layers and the daily rebuilt app layers each come from both.
fn layer_producer(i: usize) -> Producer {
    if i.is_multiple_of(2) {
        Producer::Zlib
    } else {
        Producer::Miniz
    }
}

/// A finished blob.
#[derive(Clone)]
struct Blob {
    digest: String,
    size: u64,
    path: PathBuf,
    /// The digest of the uncompressed content (the config's `diff_id`): `digest` itself
    /// for an uncompressed layer or a JSON blob.
    diff_id: String,
}

/// Writes a ustar header for a regular file.
fn tar_header(name: &str, size: u64, mtime: i64) -> [u8; 512] {
    let mut hd = [0u8; 512];
    let n = name.len().min(100);
    hd[..n].copy_from_slice(&name.as_bytes()[..n]);
    hd[100..108].copy_from_slice(b"0000644\0");
    hd[108..116].copy_from_slice(b"0000000\0");
    hd[116..124].copy_from_slice(b"0000000\0");
    hd[124..136].copy_from_slice(format!("{:011o}\0", size & 0o777_7777_7777).as_bytes());
    hd[136..148].copy_from_slice(format!("{:011o}\0", mtime.max(0) & 0o777_7777_7777).as_bytes());
    hd[148..156].copy_from_slice(b"        ");
    hd[156] = b'0';
    hd[257..263].copy_from_slice(b"ustar\0");
    hd[263..265].copy_from_slice(b"00");
    hd[265..269].copy_from_slice(b"root");
    hd[297..301].copy_from_slice(b"root");
    let sum: u32 = hd.iter().map(|&b| u32::from(b)).sum();
    hd[148..156].copy_from_slice(format!("{:06o}\0 ", sum & 0o77_7777).as_bytes());
    hd
}

/// Streams one layer archive into `dir/blobs/sha256/`, named by its digest; gzipped by
/// `gzip`'s producer when given.
fn write_layer(
    dir: &Path,
    seed: u64,
    def: &LayerDef,
    arch: usize,
    size: u64,
    rebuilds: &[u32],
    gzip: Option<Producer>,
) -> io::Result<Blob> {
    let lkey = h(&[seed, hs(def.key), arch as u64]);
    // Fixed file list: sizes 2..128 KiB until the layer reaches its size.
    let mut plan = Sm::new(lkey);
    let mut files: Vec<(String, usize)> = Vec::new();
    let mut acc = 1024u64;
    while acc < size || files.is_empty() {
        let len = plan.range(2 * 1024, 128 * 1024) as usize;
        let word = plan.pick(crate::words::NAME_PARTS);
        let ext = plan.pick(&EXTS);
        let name = format!("{}/{}-{}.{}", def.prefix, word, files.len(), ext);
        acc += 512 + (len as u64).div_ceil(512) * 512;
        files.push((name, len));
    }
    let tmp = dir.join("blobs/sha256").join(format!(".tmp-{}", def.key));
    let file = create_hashed(&tmp)?;
    let (file, diff_id) = match gzip {
        None => {
            let mut w = file;
            write_tar(&mut w, lkey, &files, rebuilds)?;
            (w, None)
        }
        Some(producer) => {
            // Container tools write no name and no time in a layer's gzip header.
            let header = Header {
                mtime: 0,
                name: None,
                os: 255,
            };
            let mut tar = HashWriter::new(GzWriter::new(file, producer, LAYER_GZIP_LEVEL, header));
            write_tar(&mut tar, lkey, &files, rebuilds)?;
            let (gz, diff, _) = tar.finish();
            (gz.finish()?, Some(format!("sha256:{}", hex::encode(diff))))
        }
    };
    let (digest, size) = finish_hashed(file)?;
    let hexd = hex::encode(digest);
    let path = dir.join("blobs/sha256").join(&hexd);
    fs::rename(&tmp, &path)?;
    let digest = format!("sha256:{hexd}");
    Ok(Blob {
        diff_id: diff_id.unwrap_or_else(|| digest.clone()),
        digest,
        size,
        path,
    })
}

/// Writes the tar stream of a layer's `files` (name, length) at the revision each has
/// after `rebuilds`.
fn write_tar(
    w: &mut impl Write,
    lkey: u64,
    files: &[(String, usize)],
    rebuilds: &[u32],
) -> io::Result<()> {
    let nfiles = files.len() as u64;
    let mut buf = vec![0u8; 128 * 1024];
    for (i, (name, len)) in files.iter().enumerate() {
        // The file's content revision: the last rebuild that touched it.
        let mut rev = 0u64;
        for &r in rebuilds {
            let mut t = Sm::new(h(&[lkey, TAG_SEG, u64::from(r)]));
            let forced = t.below(nfiles);
            let touched = forced == i as u64
                || Sm::new(h(&[lkey, TAG_SEG, u64::from(r), i as u64])).chance(6);
            if touched {
                rev = u64::from(r);
            }
        }
        let body = &mut buf[..*len];
        fill_binary(body, h(&[lkey, i as u64, rev]));
        w.write_all(&tar_header(name, *len as u64, T0 - 30 * DAY))?;
        w.write_all(body)?;
        let pad = (512 - len % 512) % 512;
        w.write_all(&[0u8; 512][..pad])?;
    }
    w.write_all(&[0u8; 1024])
}

fn write_json_blob(dir: &Path, value: &serde_json::Value) -> io::Result<Blob> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    let hexd = hex::encode(crate::fsutil::sha256(&bytes));
    let path = dir.join("blobs/sha256").join(&hexd);
    write_file(&path, &bytes)?;
    let digest = format!("sha256:{hexd}");
    Ok(Blob {
        diff_id: digest.clone(),
        digest,
        size: bytes.len() as u64,
        path,
    })
}

/// Writes the four images of architecture `arch` (index into [`ARCHES`]) of day `day`,
/// with about `arch_bytes` bytes of (uncompressed) layers; `compressed` gzips the layers.
pub fn write_arch(
    root: &Path,
    seed: u64,
    day: u32,
    arch: usize,
    arch_bytes: u64,
    compressed: bool,
) -> io::Result<()> {
    let (arch_dir, oci_arch) = ARCHES[arch % ARCHES.len()];
    let mut shared: HashMap<&'static str, Blob> = HashMap::new();
    for (img, name) in IMAGES.iter().enumerate() {
        let dir = root.join("images").join(name).join(arch_dir);
        fs::create_dir_all(dir.join("blobs/sha256"))?;
        write_file(
            &dir.join("oci-layout"),
            b"{\"imageLayoutVersion\":\"1.0.0\"}",
        )?;
        let mut layers: Vec<Blob> = Vec::new();
        let mut history = Vec::new();
        let mut created = T0 - 3 * DAY;
        for (li, def) in LAYERS
            .iter()
            .enumerate()
            .filter(|(_, d)| d.users.contains(&img))
        {
            let size = arch_bytes * def.permille / 1000;
            let gzip = compressed.then(|| layer_producer(li));
            let blob = if def.app {
                let days = rebuild_days(seed, LAYER_REBUILDS, 8, slot(img, arch), day);
                if let Some(&last) = days.last() {
                    created = rebuild_time(seed, LAYER_REBUILDS, last);
                }
                write_layer(&dir, seed, def, arch, size, &days, gzip)?
            } else if let Some(src) = shared.get(def.key) {
                let path = dir
                    .join("blobs/sha256")
                    .join(src.digest.trim_start_matches("sha256:"));
                fs::copy(&src.path, &path)?;
                Blob {
                    path,
                    ..src.clone()
                }
            } else {
                let b = write_layer(&dir, seed, def, arch, size, &[], gzip)?;
                shared.insert(def.key, b.clone());
                b
            };
            history
                .push(json!({ "created": rfc3339(T0 - 30 * DAY), "created_by": def.created_by }));
            layers.push(blob);
        }
        let config = json!({
            "architecture": oci_arch,
            "os": "linux",
            "created": rfc3339(created),
            "config": {
                "Env": [
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "DOTNET_RUNNING_IN_CONTAINER=true",
                    format!("STELLAOPS_COMPONENT={name}"),
                ],
                "Entrypoint": [format!("/app/{name}")],
                "WorkingDir": "/app",
                "User": "10001:10001",
                "Labels": {
                    "org.opencontainers.image.title": name,
                    "org.opencontainers.image.version": IMAGE_TAG,
                    "org.opencontainers.image.source": "https://git.stella-ops.org/stella-ops.org/git.stella-ops.org",
                },
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|b| b.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": history,
        });
        let config_blob = write_json_blob(&dir, &config)?;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_blob.digest,
                "size": config_blob.size,
            },
            "layers": layers.iter().map(|b| json!({
                "mediaType": if compressed { LAYER_MEDIA_TYPE_GZIP } else { LAYER_MEDIA_TYPE },
                "digest": b.digest,
                "size": b.size,
            })).collect::<Vec<_>>(),
            "annotations": {
                "org.opencontainers.image.created": rfc3339(created),
                "org.opencontainers.image.ref.name": IMAGE_TAG,
            },
        });
        let manifest_blob = write_json_blob(&dir, &manifest)?;
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_blob.digest,
                "size": manifest_blob.size,
                "platform": { "architecture": oci_arch, "os": "linux" },
                "annotations": {
                    "org.opencontainers.image.ref.name": format!("{REGISTRY}/{name}:{IMAGE_TAG}"),
                },
            }],
        });
        let mut bytes = serde_json::to_vec_pretty(&index).map_err(io::Error::other)?;
        bytes.push(b'\n');
        write_file(&dir.join("index.json"), &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_header_checksum_is_valid() {
        let hd = tar_header("app/x.so", 1234, T0);
        let mut copy = hd;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        let recorded = u32::from_str_radix(std::str::from_utf8(&hd[148..154]).unwrap(), 8).unwrap();
        assert_eq!(sum, recorded);
        assert_eq!(&hd[124..136], b"00000002322\0");
    }
}
