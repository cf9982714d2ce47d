//! Tar archives built byte by byte: headers with any field value, GNU long names, pax
//! records, and the member boundaries of a real archive, so tests can build archives the
//! bundle writer would never produce.

/// Block size.
pub const BLOCK: usize = 512;
/// Largest size the 11 octal digits hold.
pub const MAX_OCTAL: u64 = 0o77_777_777_777;

fn octal(field: &mut [u8], v: u64) {
    let digits = field.len() - 1;
    let s = format!("{v:0digits$o}");
    let s = &s.as_bytes()[s.len().saturating_sub(digits)..];
    field[..s.len()].copy_from_slice(s);
    field[digits] = 0;
}

/// Recompute the header checksum of block `h`.
pub fn set_checksum(h: &mut [u8]) {
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h[..BLOCK].iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}");
    h[148..154].copy_from_slice(s.as_bytes());
    h[154] = 0;
    h[155] = b' ';
}

/// One GNU header block with any name (truncated to 100 bytes), type, mode, size
/// field and link name. Sizes past the octal range use GNU base-256.
pub fn header(name: &[u8], typeflag: u8, mode: u64, size: u64, linkname: &[u8]) -> [u8; 512] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    if size > MAX_OCTAL {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    } else {
        octal(&mut h[124..136], size);
    }
    octal(&mut h[136..148], 0);
    h[156] = typeflag;
    let l = linkname.len().min(100);
    h[157..157 + l].copy_from_slice(&linkname[..l]);
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    octal(&mut h[329..337], 0);
    octal(&mut h[337..345], 0);
    set_checksum(&mut h);
    h
}

/// Zero padding after `n` bytes of data.
pub fn padding(n: u64) -> usize {
    ((BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64) as usize
}

/// A GNU long-name record for `name`.
pub fn long_name(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let len = name.len() as u64 + 1;
    out.extend_from_slice(&header(b"././@LongLink", b'L', 0o644, len, b""));
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len() + padding(len), 0);
    out
}

/// A pax extended header (`x`) with `records`.
pub fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3;
        let mut len = rest + 1;
        while format!("{len}").len() + rest != len {
            len += 1;
        }
        body.extend_from_slice(format!("{len} {k}=").as_bytes());
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    let mut out = header(b"PaxHeaders/x", b'x', 0o644, body.len() as u64, b"").to_vec();
    out.extend_from_slice(&body);
    out.resize(out.len() + padding(body.len() as u64), 0);
    out
}

/// A member: header (plus a long-name record when the name needs one), data, padding.
pub fn entry(name: &str, typeflag: u8, mode: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 1024);
    if name.len() > 100 {
        out.extend(long_name(name.as_bytes()));
    }
    out.extend_from_slice(&header(
        name.as_bytes(),
        typeflag,
        mode,
        data.len() as u64,
        b"",
    ));
    out.extend_from_slice(data);
    out.resize(out.len() + padding(data.len() as u64), 0);
    out
}

/// A regular file member.
pub fn file(name: &str, mode: u64, data: &[u8]) -> Vec<u8> {
    entry(name, b'0', mode, data)
}

/// The end-of-archive marker.
pub fn end() -> Vec<u8> {
    vec![0u8; 2 * BLOCK]
}

/// One member of an existing archive.
#[derive(Debug, Clone)]
pub struct Member {
    /// First byte (of a long-name or pax record when there is one).
    pub start: usize,
    /// The main header block.
    pub header: usize,
    /// First data byte.
    pub data: usize,
    /// Data length.
    pub size: u64,
    /// One past the padding.
    pub end: usize,
    /// Name (long name resolved).
    pub name: String,
    /// Type flag.
    pub typeflag: u8,
}

fn parse_size(f: &[u8]) -> u64 {
    if f[0] & 0x80 != 0 {
        let mut v = 0u64;
        for &b in &f[4..] {
            v = (v << 8) | u64::from(b);
        }
        return v;
    }
    let s: String = f
        .iter()
        .take_while(|&&b| b != 0 && b != b' ')
        .map(|&b| b as char)
        .collect();
    u64::from_str_radix(s.trim(), 8).unwrap_or(0)
}

fn cstr(f: &[u8]) -> Vec<u8> {
    f.iter().take_while(|&&b| b != 0).copied().collect()
}

/// The members of a well-formed archive and the offset of its end marker.
pub fn parse(tar: &[u8]) -> (Vec<Member>, usize) {
    let mut out = Vec::new();
    let mut off = 0;
    let mut start = None;
    let mut long: Option<Vec<u8>> = None;
    while off + BLOCK <= tar.len() {
        let h = &tar[off..off + BLOCK];
        if h.iter().all(|&b| b == 0) {
            return (out, off);
        }
        let size = parse_size(&h[124..136]);
        let typeflag = h[156];
        let data = off + BLOCK;
        let end = data + size as usize + padding(size);
        match typeflag {
            b'L' => {
                start.get_or_insert(off);
                long = Some(cstr(&tar[data..data + size as usize]));
            }
            b'x' => {
                start.get_or_insert(off);
            }
            _ => {
                let name = long.take().unwrap_or_else(|| cstr(&h[..100]));
                out.push(Member {
                    start: start.take().unwrap_or(off),
                    header: off,
                    data,
                    size,
                    end,
                    name: String::from_utf8_lossy(&name).into_owned(),
                    typeflag,
                });
            }
        }
        off = end;
    }
    (out, off)
}
