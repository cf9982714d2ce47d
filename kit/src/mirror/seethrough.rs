//! See-through tar streams: a bundle's tar with each compressed member (an OCI layer, a
//! `.json.gz` feed, a zip, a zstd file) replaced by its plain form ([`ouk_recompress`]).
//!
//! Weekly roll-ups rebuild their compressed members (another producer, level or mtime), so
//! the members' compressed bytes differ every week even when their content barely does.
//! Stored see-through, those members share chunks from week to week; one [`MemberRecipe`]
//! per substituted member, kept in the catalog record, gives the original bytes back.
//!
//! Add side: [`plan`] walks the plain tar (a scratch file), analyses every regular-file
//! member that sniffs as gzip/zip/zstd and is at least [`MIN_MEMBER`] bytes, and spools the
//! plain forms it accepted into a second scratch file; [`Stream`] then reads the
//! see-through stream (tar ranges and plain forms, in order) without copying it again.
//! Export side: [`Rebuilder`] is the `Write` the stored stream is read into; it passes
//! bytes outside members through and turns each member's plain range back into the
//! member's original bytes with [`ouk_recompress::rebuild`].
//!
//! Invariants:
//! - A substitution is a byte range, not a tar entry: the plain range
//!   `[offset, offset + plain_len)` of the stored stream is replaced by the `original_len`
//!   bytes its recipe re-creates. The tar walk only proposes candidates: a wrong walk costs
//!   dedup, never bytes, because each analysis is checked exact by `ouk_recompress` and the
//!   whole bundle is reproduced from the store before it is cataloged.
//! - Members in a record are sorted, disjoint, inside the stream, and each recipe passes
//!   `ouk_recompress`'s own checks with lengths equal to the record's
//!   ([`validate_members`], run on every decoded record). Export still checks the
//!   bundle's SHA-256 and size, so a recipe that passes and lies is a refused export.
//! - Memory is bounded: ranges stream through positional reads and a member's plain form
//!   is spooled to an unnamed scratch file, never buffered whole. Analysis is bounded by
//!   [`ouk_recompress::Limits`] and a total plain budget, recipes by byte caps.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ouk_recompress::{Limits, RecompressError};
use serde::{Deserialize, Serialize};

use crate::bundle::header::{self, BLOCK, Parsed};

/// Members smaller than this are kept as they are: a recipe and the chunk boundaries
/// around a substitution cost more than such a member could save.
pub const MIN_MEMBER: u64 = 4096;
/// Most members one record substitutes.
pub const MAX_MEMBERS: usize = 100_000;
/// Largest recipe of one member (a recipe near the member's own size saves nothing).
pub const MAX_RECIPE_BYTES: usize = 1 << 20;
/// Largest sum of a record's recipes (records live in the index and the store's truth).
pub const MAX_TOTAL_RECIPE_BYTES: usize = 16 << 20;

/// One substituted member of a see-through stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberRecipe {
    /// Where the member's plain form starts in the stored stream.
    pub offset: u64,
    /// Length of the plain form (in the stored stream).
    pub plain_len: u64,
    /// Length of the member's original bytes (in the bundle's tar).
    pub original_len: u64,
    /// The `ouk_recompress` recipe that re-creates the original bytes from the plain form.
    pub recipe: Vec<u8>,
}

/// Bounds for analysing, validating and rebuilding members: `ouk_recompress`'s own.
fn member_limits() -> Limits {
    Limits::default()
}

/// Plain bytes `plan` may spool for a tar of `tar_len` bytes: a bundle of highly
/// compressed members is worth seeing through, a decompression bomb is not.
fn plain_budget(tar_len: u64) -> u64 {
    tar_len.saturating_mul(16).max(256 << 20)
}

/// Check a record's member list against the stored stream's `size`; see the module doc.
pub fn validate_members(members: &[MemberRecipe], size: u64) -> Result<(), String> {
    if members.is_empty() {
        return Err("a see-through record names no member".into());
    }
    if members.len() > MAX_MEMBERS {
        return Err(format!("{} members (at most {MAX_MEMBERS})", members.len()));
    }
    let limits = member_limits();
    let mut prev_end = 0u64;
    let mut recipe_bytes = 0usize;
    for (i, m) in members.iter().enumerate() {
        if m.offset < prev_end {
            return Err(format!("member {i} starts before the previous one ends"));
        }
        let end = m
            .offset
            .checked_add(m.plain_len)
            .filter(|&e| e <= size)
            .ok_or_else(|| format!("member {i} runs past the stream's {size} bytes"))?;
        if m.plain_len == 0 || m.original_len == 0 {
            return Err(format!("member {i} is empty"));
        }
        if m.recipe.len() > MAX_RECIPE_BYTES {
            return Err(format!(
                "member {i}: recipe larger than {MAX_RECIPE_BYTES} bytes"
            ));
        }
        recipe_bytes += m.recipe.len();
        if recipe_bytes > MAX_TOTAL_RECIPE_BYTES {
            return Err(format!(
                "recipes larger than {MAX_TOTAL_RECIPE_BYTES} bytes in all"
            ));
        }
        let s = ouk_recompress::recipe_summary(&m.recipe, &limits)
            .map_err(|e| format!("member {i}: {e}"))?;
        if s.plain_len != m.plain_len || s.out_len != m.original_len {
            return Err(format!(
                "member {i}: the recipe rebuilds {} bytes from {}, the record says {} from {}",
                s.out_len, s.plain_len, m.original_len, m.plain_len
            ));
        }
        prev_end = end;
    }
    Ok(())
}

/// Reads `[pos, end)` of a file with positional reads (no shared cursor).
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let got = self.file.read_at(&mut buf[..n], self.pos)?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "scratch file shorter than what was written to it",
            ));
        }
        self.pos += got as u64;
        Ok(got)
    }
}

/// A `Read` over bytes `[start, end)` of `file` (positional reads: `file`'s cursor is
/// neither used nor moved).
pub(crate) fn file_range(file: &File, start: u64, end: u64) -> impl Read + '_ {
    RangeReader {
        file,
        pos: start,
        end,
    }
}

/// Writes from `pos` on with positional writes.
struct AtWriter<'a> {
    file: &'a File,
    pos: u64,
}

impl Write for AtWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A member [`plan`] substitutes.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// Where its bytes start in the tar.
    tar_offset: u64,
    /// Their length.
    original_len: u64,
    /// Where its plain form starts in the scratch file.
    scratch_offset: u64,
    /// Its length.
    plain_len: u64,
    /// The recipe.
    recipe: Vec<u8>,
}

/// Walk the tar in `tar` (`tar_len` bytes) and analyse its compressed members, spooling
/// their plain forms into `scratch`; see the module doc. A member that does not analyse
/// exactly, or whose recipe is too large, is left out (kept as its bytes); only an I/O
/// failure of the scratch files is an error. The walk stops at the end-of-archive marker
/// or at anything it does not understand: what follows stays as it is.
pub(crate) fn plan(tar: &File, tar_len: u64, scratch: &File) -> io::Result<Vec<Planned>> {
    let mut out = Vec::new();
    let mut budget = plain_budget(tar_len);
    let mut recipe_bytes = 0usize;
    let mut scratch_len = 0u64;
    let mut pos = 0u64;
    let mut block = [0u8; BLOCK];
    while out.len() < MAX_MEMBERS
        && pos
            .checked_add(BLOCK as u64)
            .is_some_and(|end| end <= tar_len)
    {
        tar.read_exact_at(&mut block, pos)?;
        let h = match header::parse(&block) {
            Ok(Parsed::Header(h)) => h,
            Ok(Parsed::Zero) | Err(_) => break,
        };
        let data = pos + BLOCK as u64;
        let Some(end) = data.checked_add(h.size).filter(|&e| e <= tar_len) else {
            break;
        };
        // Regular files only ('0', or NUL from old tars): other entries' data are names,
        // pax records or nothing.
        if matches!(h.typeflag, b'0' | 0) && h.size >= MIN_MEMBER && budget > 0 {
            let mut head = [0u8; 4];
            tar.read_exact_at(&mut head, data)?;
            if ouk_recompress::sniff(&head).is_some() {
                let limits = Limits {
                    max_plain: budget.min(member_limits().max_plain),
                    ..member_limits()
                };
                let mut input = BufReader::with_capacity(
                    1 << 20,
                    RangeReader {
                        file: tar,
                        pos: data,
                        end,
                    },
                );
                let mut plain = BufWriter::with_capacity(
                    1 << 20,
                    AtWriter {
                        file: scratch,
                        pos: scratch_len,
                    },
                );
                let analysed = ouk_recompress::analyze(&mut input, &mut plain, &limits);
                let flushed = plain.flush();
                match analysed {
                    Ok(a) => {
                        flushed?;
                        let recipe_ok = a.recipe.len() <= MAX_RECIPE_BYTES
                            // A recipe near the member's size (verbatim tiers) saves nothing.
                            && (a.recipe.len() as u64) <= h.size / 4
                            && recipe_bytes + a.recipe.len() <= MAX_TOTAL_RECIPE_BYTES;
                        if a.plain_size > 0 && a.plain_size <= budget && recipe_ok {
                            recipe_bytes += a.recipe.len();
                            out.push(Planned {
                                tar_offset: data,
                                original_len: h.size,
                                scratch_offset: scratch_len,
                                plain_len: a.plain_size,
                                recipe: a.recipe,
                            });
                            scratch_len += a.plain_size;
                            budget -= a.plain_size;
                        }
                    }
                    // Writing the scratch file failed (a full disk): that is the add's
                    // failure, not the member's.
                    Err(RecompressError::Io(e))
                        if !matches!(
                            e.kind(),
                            io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                        ) =>
                    {
                        return Err(e);
                    }
                    // Not exact, malformed, too large, unsupported: keep the bytes.
                    Err(_) => {}
                }
            }
        }
        pos = end.saturating_add(header::padding(h.size));
    }
    Ok(out)
}

/// One range of the see-through stream: from the tar or from the scratch file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    from_scratch: bool,
    start: u64,
    len: u64,
}

/// The see-through stream of a tar and its [`plan`], as a `Read`.
pub(crate) struct Stream<'a> {
    tar: &'a File,
    scratch: &'a File,
    segments: Vec<Segment>,
    /// The segment being read and how far into it.
    at: usize,
    done: u64,
}

impl<'a> Stream<'a> {
    /// The stream, the record's member list (offsets in the stream) and the stream's size.
    pub(crate) fn new(
        tar: &'a File,
        tar_len: u64,
        scratch: &'a File,
        plan: &[Planned],
    ) -> (Stream<'a>, Vec<MemberRecipe>, u64) {
        let mut segments = Vec::with_capacity(plan.len() * 2 + 1);
        let mut members = Vec::with_capacity(plan.len());
        let mut cursor = 0u64;
        let mut size = 0u64;
        for p in plan {
            // `plan` gives members in tar order, disjoint, inside the tar.
            let before = p.tar_offset - cursor;
            segments.push(Segment {
                from_scratch: false,
                start: cursor,
                len: before,
            });
            size += before;
            members.push(MemberRecipe {
                offset: size,
                plain_len: p.plain_len,
                original_len: p.original_len,
                recipe: p.recipe.clone(),
            });
            segments.push(Segment {
                from_scratch: true,
                start: p.scratch_offset,
                len: p.plain_len,
            });
            size += p.plain_len;
            cursor = p.tar_offset + p.original_len;
        }
        segments.push(Segment {
            from_scratch: false,
            start: cursor,
            len: tar_len - cursor,
        });
        size += tar_len - cursor;
        (
            Stream {
                tar,
                scratch,
                segments,
                at: 0,
                done: 0,
            },
            members,
            size,
        )
    }
}

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(seg) = self.segments.get(self.at).copied() {
            if self.done == seg.len {
                self.at += 1;
                self.done = 0;
                continue;
            }
            let file = if seg.from_scratch {
                self.scratch
            } else {
                self.tar
            };
            let n = RangeReader {
                file,
                pos: seg.start + self.done,
                end: seg.start + seg.len,
            }
            .read(buf)?;
            self.done += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// The `Write` a stored see-through stream is read into: writes the original tar to the
/// inner writer; see the module doc. [`Rebuilder::finish`] checks that every member was
/// rebuilt.
pub(crate) struct Rebuilder<'a, W: Write> {
    out: W,
    members: &'a [MemberRecipe],
    /// The next member to rebuild.
    next: usize,
    /// Bytes of the stored stream seen so far.
    pos: u64,
    /// Where scratch files go (unnamed, gone when dropped).
    dir: &'a Path,
    /// The current member's plain form, spooled; reused from member to member.
    spool: Option<BufWriter<File>>,
}

impl<'a, W: Write> Rebuilder<'a, W> {
    /// A rebuilder for `members` (a validated list) writing to `out`.
    pub(crate) fn new(out: W, members: &'a [MemberRecipe], dir: &'a Path) -> Self {
        Rebuilder {
            out,
            members,
            next: 0,
            pos: 0,
            dir,
            spool: None,
        }
    }

    fn spool(&mut self) -> io::Result<&mut BufWriter<File>> {
        if self.spool.is_none() {
            self.spool = Some(BufWriter::with_capacity(
                1 << 20,
                tempfile::tempfile_in(self.dir)?,
            ));
        }
        self.spool
            .as_mut()
            .ok_or_else(|| io::Error::other("scratch file missing"))
    }

    /// The current member's plain form is whole: rebuild its original bytes.
    fn rebuild_member(&mut self, m: &MemberRecipe) -> io::Result<()> {
        let spool = self
            .spool
            .take()
            .ok_or_else(|| io::Error::other("scratch file missing"))?;
        let mut file = spool.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        let mut plain = BufReader::with_capacity(1 << 20, (&file).take(m.plain_len));
        let wrote = ouk_recompress::rebuild(&m.recipe, &mut plain, &mut self.out, &member_limits())
            .map_err(|e| match e {
                RecompressError::Io(e) => e,
                other => io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the member at byte {} of the stored stream does not rebuild: {other}",
                        m.offset
                    ),
                ),
            })?;
        if wrote != m.original_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the member at byte {} rebuilt as {wrote} bytes, not {}",
                    m.offset, m.original_len
                ),
            ));
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        self.spool = Some(BufWriter::with_capacity(1 << 20, file));
        Ok(())
    }

    /// The inner writer, once the stream ended after the last member.
    pub(crate) fn finish(self) -> io::Result<W> {
        if self.next != self.members.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the stored stream ended at byte {} before member {} of {}",
                    self.pos,
                    self.next,
                    self.members.len()
                ),
            ));
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for Rebuilder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let members = self.members;
        let mut rest = buf;
        while !rest.is_empty() {
            let Some(m) = members.get(self.next) else {
                self.out.write_all(rest)?;
                self.pos += rest.len() as u64;
                break;
            };
            let take = |until: u64, pos: u64, rest: &[u8]| {
                usize::try_from(until - pos).map_or(rest.len(), |n| n.min(rest.len()))
            };
            if self.pos < m.offset {
                let n = take(m.offset, self.pos, rest);
                self.out.write_all(&rest[..n])?;
                self.pos += n as u64;
                rest = &rest[n..];
                continue;
            }
            // Inside the member's plain range (validated: plain_len > 0, so it ends ahead).
            let end = m.offset + m.plain_len;
            let n = take(end, self.pos, rest);
            self.spool()?.write_all(&rest[..n])?;
            self.pos += n as u64;
            rest = &rest[n..];
            if self.pos == end {
                self.rebuild_member(m)?;
                self.next += 1;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(data: &[u8], level: u32) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, data) in files {
            header::encode(&mut out, name, b'0', 0o644, data.len() as u64);
            out.extend_from_slice(data);
            out.resize(out.len() + header::padding(data.len() as u64) as usize, 0);
        }
        out.resize(out.len() + 2 * BLOCK, 0);
        out
    }

    fn file_with(bytes: &[u8]) -> File {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(bytes, 0).unwrap();
        f
    }

    #[test]
    fn a_see_through_stream_rebuilds_the_tar() {
        let text: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {i} {}\n", i * 7919 % 1000).into_bytes())
            .collect();
        let tar = tar_of(&[
            ("a.json.gz", gz(&text, 9)),
            ("small.gz", gz(b"tiny", 6)),
            ("plain.txt", text.clone()),
            ("b.gz", gz(&text[..50_000], 1)),
            (
                "not-really.gz",
                [&[0x1f, 0x8b, 8][..], &text[..5000]].concat(),
            ),
        ]);
        let tar_file = file_with(&tar);
        let scratch = tempfile::tempfile().unwrap();
        let plan = plan(&tar_file, tar.len() as u64, &scratch).unwrap();
        // The two real gzip members; the tiny one and the impostor stay as they are.
        assert_eq!(plan.len(), 2, "{plan:?}");
        let (mut stream, members, size) = Stream::new(&tar_file, tar.len() as u64, &scratch, &plan);
        let mut stored = Vec::new();
        stream.read_to_end(&mut stored).unwrap();
        assert_eq!(stored.len() as u64, size);
        validate_members(&members, size).unwrap();
        // The plain form (gzip framing kept aside, then the content) is in the stream.
        let first = &stored[members[0].offset as usize..][..members[0].plain_len as usize];
        assert!(memchr::memmem::find(first, &text).is_some());
        // Fed in odd-sized writes, the rebuilder gives the tar back.
        let dir = tempfile::tempdir().unwrap();
        let mut r = Rebuilder::new(Vec::new(), &members, dir.path());
        for piece in stored.chunks(777) {
            r.write_all(piece).unwrap();
        }
        assert_eq!(r.finish().unwrap(), tar);
        // A stream cut short is refused at finish.
        let mut r = Rebuilder::new(Vec::new(), &members, dir.path());
        r.write_all(&stored[..members[1].offset as usize + 10])
            .unwrap();
        assert!(r.finish().is_err());
    }

    #[test]
    fn member_lists_are_validated() {
        // Compresses to well over MIN_MEMBER.
        let data: Vec<u8> = (0..6000u64)
            .flat_map(|i| format!("{:x}\n", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).into_bytes())
            .collect();
        let tar = tar_of(&[("x.gz", gz(&data, 6)), ("y.gz", gz(&data, 1))]);
        let tar_file = file_with(&tar);
        let scratch = tempfile::tempfile().unwrap();
        let plan = plan(&tar_file, tar.len() as u64, &scratch).unwrap();
        let (_, members, size) = Stream::new(&tar_file, tar.len() as u64, &scratch, &plan);
        assert_eq!(members.len(), 2);
        validate_members(&members, size).unwrap();
        let bad = |f: &dyn Fn(&mut Vec<MemberRecipe>)| {
            let mut m = members.clone();
            f(&mut m);
            validate_members(&m, size).unwrap_err()
        };
        bad(&|m| m.clear());
        bad(&|m| m.swap(0, 1));
        bad(&|m| m[1].offset = m[0].offset + 1);
        bad(&|m| m[1].offset = size);
        bad(&|m| m[1].offset = u64::MAX - 2);
        bad(&|m| m[0].plain_len += 1);
        bad(&|m| m[0].original_len -= 1);
        bad(&|m| m[0].recipe.truncate(3));
        bad(&|m| {
            let last = m[0].recipe.len() - 1;
            m[0].recipe[last] ^= 0xff;
        });
        bad(&|m| m[0].recipe = vec![0; MAX_RECIPE_BYTES + 1]);
        let last = &members[members.len() - 1];
        assert!(validate_members(&members, last.offset + last.plain_len - 1).is_err());
    }
}
