//! Tar header blocks: writing GNU-format headers, parsing ustar and GNU headers strictly.
//!
//! Job: convert between 512-byte header blocks and (name, type, mode, size). Nothing here
//! reads or writes streams.
//!
//! Format written (invariants the writer relies on):
//! - GNU tar format (magic `"ustar "`, version `" \0"`), which is what `tar --format=gnu`
//!   (GNU tar's default) writes and what GNU tar, bsdtar, Python `tarfile`, Go
//!   `archive/tar` and the `tar` crate read;
//! - names longer than 100 bytes are preceded by a GNU long-name record (a `././@LongLink`
//!   header of type `L` whose data is the name plus a NUL); the real header's name field
//!   then holds the first 100 bytes, as GNU tar does;
//! - numeric fields in octal, zero padded, NUL terminated; sizes of 8 GiB and more in GNU
//!   base-256; mtime, uid, gid, devmajor/devminor 0; uname and gname empty (numeric
//!   owners); checksum as six octal digits, NUL, space;
//! - every byte is a function of (name, type, mode, size, and the numeric owner when
//!   [`encode_owned`] gives one): headers are deterministic.
//!
//! Parsing accepts POSIX ustar (`"ustar\0"` `"00"`, with the prefix field) and GNU headers,
//! verifies the checksum (unsigned, or signed as old tars computed it) and never panics on
//! any input: every field access is within the fixed 512-byte block, and numbers that do not
//! fit are errors.

/// Size of a tar block.
pub const BLOCK: usize = 512;

/// Type flag of a regular file.
pub const TYPE_FILE: u8 = b'0';
/// Type flag of a directory.
pub const TYPE_DIR: u8 = b'5';
/// Type flag of a GNU long-name record.
pub const TYPE_GNU_LONGNAME: u8 = b'L';

const NAME_LEN: usize = 100;
/// Largest size the 11 octal digits of the size field hold; above, base-256 is used.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;

/// Bytes of padding after `size` bytes of entry data.
pub fn padding(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Appends the header block(s) of one entry to `out`: a GNU long-name record first when
/// `name` (including a directory's trailing `/`) is longer than 100 bytes.
pub fn encode(out: &mut Vec<u8>, name: &str, typeflag: u8, mode: u32, size: u64) {
    encode_owned(out, name, typeflag, mode, size, Owner::ROOT);
}

/// Numeric owner of an entry (uid, gid). Kit entries are always [`Owner::ROOT`]; only the
/// advisory AI volume primer's directories carry another owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// uid 0, gid 0.
    pub const ROOT: Owner = Owner { uid: 0, gid: 0 };
}

/// [`encode`] with an explicit numeric owner (uid and gid fit the 7 octal digits of the
/// field up to 0o7777777 = 2097151; larger ids are refused by the caller).
pub fn encode_owned(
    out: &mut Vec<u8>,
    name: &str,
    typeflag: u8,
    mode: u32,
    size: u64,
    owner: Owner,
) {
    let name = name.as_bytes();
    if name.len() > NAME_LEN {
        let data_len = name.len() as u64 + 1;
        out.extend_from_slice(&block(
            b"././@LongLink",
            TYPE_GNU_LONGNAME,
            0o644,
            data_len,
            Owner::ROOT,
        ));
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len() + padding(data_len) as usize, 0);
    }
    out.extend_from_slice(&block(name, typeflag, mode, size, owner));
}

/// Largest uid or gid the octal owner fields hold.
pub const MAX_OWNER_ID: u32 = 0o7_777_777;

/// One GNU header block; `name` is truncated to 100 bytes (the caller wrote a long-name
/// record before when it is longer).
fn block(name: &[u8], typeflag: u8, mode: u32, size: u64, owner: Owner) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(NAME_LEN);
    h[..n].copy_from_slice(&name[..n]);
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], u64::from(owner.uid));
    put_octal(&mut h[116..124], u64::from(owner.gid));
    if size <= MAX_OCTAL_SIZE {
        put_octal(&mut h[124..136], size);
    } else {
        // GNU base-256: high bit of the first byte set, big-endian value in the rest.
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    put_octal(&mut h[136..148], 0); // mtime
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    // Checksum: computed with the checksum field as eight spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let digits = format!("{sum:06o}");
    h[148..154].copy_from_slice(&digits.as_bytes()[digits.len() - 6..]);
    h[154] = 0;
    h[155] = b' ';
    h
}

/// Writes `value` as zero-padded octal digits followed by a NUL, filling `field`.
fn put_octal(field: &mut [u8], value: u64) {
    let width = field.len() - 1;
    let digits = format!("{value:0width$o}");
    let digits = digits.as_bytes();
    // Callers keep values within the field; keep the low digits if not (never panics).
    let start = digits.len().saturating_sub(width);
    field[..width].copy_from_slice(&digits[start..]);
    field[width] = 0;
}

/// What a parsed header block says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// An all-zero block (half of the end-of-archive marker).
    Zero,
    /// A header.
    Header(Header),
}

/// The fields of a header the reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Raw name bytes: ustar prefix + `/` + name, or the name field alone.
    pub name: Vec<u8>,
    /// Raw link target (for error messages about links).
    pub linkname: Vec<u8>,
    pub typeflag: u8,
    pub mode: u64,
    pub size: u64,
    /// The uid field, `None` when it does not parse (the reader of kits ignores it).
    pub uid: Option<u64>,
    /// The gid field, `None` when it does not parse.
    pub gid: Option<u64>,
}

/// Why a header block could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    Checksum,
    Magic,
    Number(&'static str),
}

impl HeaderProblem {
    pub fn reason(self) -> &'static str {
        match self {
            HeaderProblem::Checksum => "checksum mismatch",
            HeaderProblem::Magic => "not a ustar or GNU tar header",
            HeaderProblem::Number(field) => field,
        }
    }
}

/// Parses one header block.
pub fn parse(h: &[u8; BLOCK]) -> Result<Parsed, HeaderProblem> {
    if h.iter().all(|&b| b == 0) {
        return Ok(Parsed::Zero);
    }
    let stored = parse_octal(&h[148..156]).ok_or(HeaderProblem::Checksum)?;
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && i64::try_from(stored).ok() != Some(signed) {
        return Err(HeaderProblem::Checksum);
    }
    let magic = &h[257..263];
    let version = &h[263..265];
    let ustar = magic == b"ustar\0" && version == b"00";
    let gnu = magic == b"ustar " && version == b" \0";
    if !ustar && !gnu {
        return Err(HeaderProblem::Magic);
    }
    let mut name = Vec::new();
    if ustar {
        let prefix = field_str(&h[345..500]);
        if !prefix.is_empty() {
            name.extend_from_slice(prefix);
            name.push(b'/');
        }
    }
    name.extend_from_slice(field_str(&h[0..100]));
    let mode = parse_octal(&h[100..108]).ok_or(HeaderProblem::Number("bad mode field"))?;
    let size = parse_number(&h[124..136]).ok_or(HeaderProblem::Number("bad size field"))?;
    Ok(Parsed::Header(Header {
        name,
        linkname: field_str(&h[157..257]).to_vec(),
        typeflag: h[156],
        mode,
        size,
        uid: parse_number(&h[108..116]),
        gid: parse_number(&h[116..124]),
    }))
}

/// The bytes of a NUL-terminated (or full) string field.
fn field_str(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..end]
}

/// Parses an octal field: optional leading spaces, octal digits, then NULs or spaces. An
/// empty field is 0. Anything else, or a value past `u64`, is `None`.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let rest = &field[start..];
    let end = rest
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(rest.len());
    let (digits, tail) = rest.split_at(end);
    if !tail.iter().all(|&b| b == 0 || b == b' ') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        v = v.checked_mul(8)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// Parses a numeric field that may use GNU base-256 (first byte 0x80: positive value,
/// big-endian in the remaining bytes). Negative base-256 values are refused.
fn parse_number(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(&0x80) => {
            let mut v: u64 = 0;
            for &b in &field[1..] {
                if v >> 56 != 0 {
                    return None;
                }
                v = (v << 8) | u64::from(b);
            }
            Some(v)
        }
        Some(&b) if b & 0x80 != 0 => None,
        _ => parse_octal(field),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_block(out: &[u8]) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        b.copy_from_slice(&out[..BLOCK]);
        b
    }

    #[test]
    fn bundle_header_round_trip() {
        let mut out = Vec::new();
        encode(&mut out, "secrets/key.pem", TYPE_FILE, 0o600, 12345);
        assert_eq!(out.len(), BLOCK);
        let Ok(Parsed::Header(h)) = parse(&first_block(&out)) else {
            panic!("parse failed")
        };
        assert_eq!(h.name, b"secrets/key.pem");
        assert_eq!((h.typeflag, h.mode, h.size), (TYPE_FILE, 0o600, 12345));
        assert_eq!((h.uid, h.gid), (Some(0), Some(0)));
    }

    #[test]
    fn bundle_header_owner_round_trip() {
        let mut out = Vec::new();
        let owner = Owner {
            uid: 1654,
            gid: MAX_OWNER_ID,
        };
        encode_owned(&mut out, "queue/", TYPE_DIR, 0o770, 0, owner);
        let Ok(Parsed::Header(h)) = parse(&first_block(&out)) else {
            panic!("parse failed")
        };
        assert_eq!(h.uid, Some(1654));
        assert_eq!(h.gid, Some(u64::from(MAX_OWNER_ID)));
        assert_eq!((h.typeflag, h.mode), (TYPE_DIR, 0o770));
    }

    #[test]
    fn bundle_header_large_size_base256() {
        let size = 20 * 1024 * 1024 * 1024u64;
        let mut out = Vec::new();
        encode(&mut out, "big.bin", TYPE_FILE, 0o644, size);
        let Ok(Parsed::Header(h)) = parse(&first_block(&out)) else {
            panic!("parse failed")
        };
        assert_eq!(h.size, size);
    }

    #[test]
    fn bundle_header_long_name_record() {
        let name = format!("{}/file.txt", "d".repeat(150));
        let mut out = Vec::new();
        encode(&mut out, &name, TYPE_FILE, 0o644, 1);
        // long-name header + one data block (151+9+1 bytes) + real header
        assert_eq!(out.len(), 3 * BLOCK);
        let Ok(Parsed::Header(l)) = parse(&first_block(&out)) else {
            panic!("parse failed")
        };
        assert_eq!(l.typeflag, TYPE_GNU_LONGNAME);
        assert_eq!(l.size, name.len() as u64 + 1);
        assert_eq!(&out[BLOCK..BLOCK + name.len()], name.as_bytes());
    }

    #[test]
    fn bundle_header_checksum_and_numbers() {
        let mut out = Vec::new();
        encode(&mut out, "a", TYPE_FILE, 0o644, 1);
        let mut b = first_block(&out);
        b[0] = b'b';
        assert_eq!(parse(&b), Err(HeaderProblem::Checksum));
        assert_eq!(parse_octal(b"0000644\0"), Some(0o644));
        assert_eq!(parse_octal(b"  644 \0"), Some(0o644));
        assert_eq!(parse_octal(b"\0\0\0"), Some(0));
        assert_eq!(parse_octal(b"0009\0"), None);
        assert_eq!(parse_octal(b"12\x0134"), None);
        assert_eq!(parse_number(&[0xff; 12]), None);
        assert_eq!(
            parse_number(&[0x80, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }
}
