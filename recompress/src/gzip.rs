//! gzip (RFC 1952): one or more members, then optional trailing bytes.
//!
//! Plain form of a member: its header bytes verbatim, the decoded deflate data, then the 8
//! trailer bytes (CRC-32, ISIZE) verbatim. After the last member (what follows does not
//! start with the gzip magic and method 8), the rest of the file is verbatim.
//!
//! Invariants: header fields are parsed with bounded look-ahead (a file name or comment
//! longer than [`MAX_FIELD`] is refused); the trailer is checked against the decoded data,
//! so a damaged member is refused by both `decode` and `analyze` alike.

use crate::input::Input;
use crate::sink::Sink;
use crate::{RecompressError, Result, deflate};

/// Longest FNAME or FCOMMENT field accepted.
const MAX_FIELD: usize = 64 << 10;

const FTEXT_FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;

fn malformed(message: String) -> RecompressError {
    RecompressError::Malformed {
        what: "gzip",
        message,
    }
}

/// Length of the member header at the start of `input` (which starts with the magic).
fn header_len(input: &mut Input<'_>) -> Result<usize> {
    if input.fill(10)? < 10 {
        return Err(malformed("truncated member header".into()));
    }
    let flags = input.peek()[3];
    if flags & 0xe0 != 0 {
        return Err(malformed(format!("reserved header flags {flags:#x}")));
    }
    let mut len = 10usize;
    if flags & FEXTRA != 0 {
        if input.fill(len + 2)? < len + 2 {
            return Err(malformed("truncated FEXTRA".into()));
        }
        let p = input.peek();
        len += 2 + usize::from(u16::from_le_bytes([p[len], p[len + 1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag == 0 {
            continue;
        }
        // Find the terminating zero within the bound.
        let have = input.fill(len + MAX_FIELD + 1)?;
        let field = input.peek().get(len..have).unwrap_or_default();
        match field.iter().position(|&b| b == 0) {
            Some(z) => len += z + 1,
            None => return Err(malformed("unterminated or overlong name/comment".into())),
        }
    }
    if flags & FTEXT_FHCRC != 0 {
        len += 2;
    }
    if input.fill(len)? < len {
        return Err(malformed("truncated member header".into()));
    }
    Ok(len)
}

pub(crate) fn walk(input: &mut Input<'_>, sink: &mut Sink<'_>) -> Result<()> {
    loop {
        let hlen = header_len(input)?;
        // XFL: zlib's gzip writers (and GNU gzip) set 2 for level 9 and 4 for level 1.
        let level_hint = match input.peek()[8] {
            2 => Some(9),
            4 => Some(1),
            _ => None,
        };
        sink.copy(input, hlen as u64, "gzip")?;
        let s = deflate::stream(input, sink, "gzip", level_hint)?;
        if input.fill(8)? < 8 {
            return Err(malformed("truncated member trailer".into()));
        }
        let t = input.peek();
        let crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
        let isize = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
        if crc != s.crc || isize != s.plain_len as u32 {
            return Err(malformed(format!(
                "member trailer (crc {crc:#010x}, size {isize}) does not match its data (crc {:#010x}, size {})",
                s.crc, s.plain_len
            )));
        }
        sink.copy(input, 8, "gzip")?;
        input.fill(3)?;
        if !input.peek().starts_with(&[0x1f, 0x8b, 8]) {
            return sink.copy_rest(input);
        }
    }
}
