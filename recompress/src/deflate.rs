//! Raw deflate streams: decoding, analysis in five tiers, and rebuilding.
//!
//! Decoding uses zlib-rs through flate2: it is fast and needs no recipe. The plain form of
//! a stream is always this decoded content, in `decode` and `analyze` alike, so it never
//! depends on which tier succeeds. `analyze` decodes the same way while keeping the
//! stream's compressed bytes in a [`Spool`], then finds how to re-create them:
//!
//! 1. **zlib-exact** ([`crate::zlib`]): most deflate producers are madler zlib, so the
//!    plain bytes are re-compressed with the bundled zlib at candidate settings (the level
//!    hinted by the container first), comparing output as it is produced and stopping at
//!    the first differing byte. A match costs a few bytes of recipe and no corrections.
//!    The search is bounded by a work budget ([`ZLIB_BUDGET`] times the plain size plus
//!    [`ZLIB_BUDGET_SLACK`]).
//! 2. **Go-exact** ([`crate::goflate`]): Go's `compress/flate` (1.7-1.26) writes OCI image
//!    layers and most registry tooling's gzip. Go ends every stream with an empty final
//!    stored block (`00 00 ff ff`), which the zlib settings above never write, so a stream
//!    with that tail tries the Go port first (then zlib) and any other skips it. Levels are
//!    tried most used first (6, 9, 1, then the rest), each re-compressing the plain bytes
//!    through the streaming port and stopping at the first byte that differs from the
//!    spool (a wrong level differs within its first block); the search is bounded by
//!    [`GO_BUDGET`] times the plain size plus [`GO_BUDGET_SLACK`]. A match costs about 20
//!    bytes of recipe: "Go port, level L".
//! 3. **Rust-exact** ([`crate::rustflate`]): flate2's miniz_oxide and zlib-rs backends
//!    (Rust tools' gzip and zip), both pinned exactly. Tried after the first
//!    [`ZLIB_HEAD`] zlib settings (where madler zlib streams are found) and before the
//!    rest: levels of both encoders interleaved, the hinted level first, each at the input
//!    piece sizes writers use (their output depends on it at some levels), stopping at the
//!    first differing byte; bounded by [`RUST_BUDGET`] times the plain size plus
//!    [`RUST_BUDGET_SLACK`]. A match costs about 30 bytes: "encoder, level, feed".
//! 4. **preflate**: preflate-rs's streaming processor parses whole deflate blocks from the
//!    spool, estimates the encoder's parameters and records corrections. Each chunk is
//!    rebuilt right away through the same `RecreateStreamProcessor` path [`rebuild`] uses
//!    and compared with the original bytes.
//! 5. **verbatim**: a stream none reproduces (some miniz -9, a Go stream with flushes) is
//!    carried in the recipe as is, up to [`MAX_RAW`] compressed bytes; past that it is
//!    `NotExact`.
//!
//! Invariants: a recipe only exists when its re-creation was checked; preflate holds at
//! most one chunk of plain text ([`CHUNK_PLAIN`] plus a 32 KiB dictionary, plus one
//! chunk's tokens); the compressed look-ahead is bounded by [`crate::input::MAX_BUFFER`]
//! and the spool keeps at most 16 MiB in memory; plain bytes pass through the [`Sink`]
//! bounds before they are written; the rebuild reads at most [`MAX_CHUNK_PLAIN`] plain
//! bytes per preflate chunk and [`STEP`] bytes at a time otherwise; a Go trial or rebuild
//! holds the port's bounded state (a 64 KiB window, its tables, one block of output), never
//! the stream; a Rust-encoder trial or rebuild holds the encoder's state and one input
//! piece of at most [`crate::rustflate::MAX_FEED`] bytes.

use std::io::{Cursor, Read};

use flate2::{Decompress, FlushDecompress, Status};
use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};

use crate::goflate::{GoDeflater, GoFlateError, LEVELS_BY_LIKELIHOOD, PORT_ID};
use crate::input::Input;
use crate::recipe::{
    Chunk, GoFlateSegment, MAX_CHUNK_PLAIN, MAX_RAW, RawSegment, Reader, RunSetting,
    RustFlateSegment, Segment, ZlibSegment,
};
use crate::rustflate::{Cutter, Encoder, MAX_FEED, RustDeflater};
use crate::sink::{OutMeter, Sink, read_plain};
use crate::spool::Spool;
use crate::zlib::{Deflater, ZlibParams};
use crate::{RecompressError, Result};

/// Plain and compressed bytes handled at a time by the zlib trials and rebuilds.
const STEP: usize = 32 << 10;

/// The zlib search may feed candidates at most [`ZLIB_BUDGET`] times the stream's plain
/// size plus a slack (a wrong setting usually differs in its first block, so the common
/// producers are found long before). The slack scales with the stream, between a
/// minimum and this: with a fixed 8 MiB, each of the 12,000 small members of an
/// OSV-style `all.zip` tried every setting, and analyzing it took 147 s instead of a few.
const ZLIB_BUDGET_SLACK: u64 = 8 << 20;
const ZLIB_BUDGET: u64 = 2;

/// The least slack the zlib search gets: the hinted setting and a few more.
const ZLIB_SLACK_MIN: u64 = 8 * ZLIB_TRIAL_COST;

/// The slack of a search over a stream of `plain_len` bytes: all of `max` past 64 KiB, else
/// 64 times the stream, between
/// `min` and `max`. (The Go search keeps its fixed slack: it runs only on streams that end
/// the way Go's do, so it is not paid by every member of a zip.)
fn slack(plain_len: u64, min: u64, max: u64) -> u64 {
    // Streams past 64 KiB get the whole slack: rare settings (small windows, rle) differ
    // late, and such a stream is worth the search; small zip members are what must not.
    if plain_len >= 64 << 10 {
        return max;
    }
    plain_len.saturating_mul(64).clamp(min, max)
}

/// What starting one zlib candidate counts against the budget (its state set-up), so a
/// tiny stream does not try every setting.
const ZLIB_TRIAL_COST: u64 = 32 << 10;

/// The Go search may feed candidates at most [`GO_BUDGET`] times the stream's plain size
/// plus this many bytes: the right level costs one pass, a wrong one usually a block.
const GO_BUDGET_SLACK: u64 = 8 << 20;
const GO_BUDGET: u64 = 2;

/// What starting one Go candidate counts against the budget (its tables, ~640 KiB).
const GO_TRIAL_COST: u64 = 64 << 10;

/// The Rust-encoder search may feed candidates at most [`RUST_BUDGET`] times the plain
/// size plus this many bytes (shared by miniz and zlib-rs).
const RUST_BUDGET_SLACK: u64 = 8 << 20;
const RUST_BUDGET: u64 = 2;

/// What starting one Rust-encoder candidate counts against the budget (its state).
const RUST_TRIAL_COST: u64 = 32 << 10;

/// zlib settings tried before the Rust encoders: the hinted level and the two most used
/// (memLevel 8, window 15), which is where most zlib streams are found; the rest of the
/// zlib search comes after the Rust encoders.
const ZLIB_HEAD: usize = 3;

/// The last bytes of every stream Go's `compress/flate` writes: `Close` ends it with an
/// empty final stored block, whose LEN/NLEN are these (byte aligned).
const GO_TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Plain bytes preflate decodes per chunk (it stops at the block boundary before this).
/// zlib and Go end a block after 16 Ki symbols, up to 4.2 MB of plain text for long
/// matches; this leaves room for such a block.
pub(crate) const CHUNK_PLAIN: usize = 8 << 20;

/// Compressed bytes offered to preflate per call: with [`CHUNK_PLAIN`] this bounds the
/// tokens it holds per chunk.
const CHUNK_INPUT: usize = 1 << 20;

/// Hash-chain work preflate may assume (its default): zlib -9 uses 4096.
const MAX_CHAIN: u32 = 4096;

/// What a decoded stream was.
pub(crate) struct Stream {
    pub crc: u32,
    pub plain_len: u64,
}

/// Decode (or, when the sink builds a recipe, analyze) one raw deflate stream starting at
/// the input's position. Consumes exactly the stream's bytes.
/// `level_hint` is the zlib level the container suggests (gzip's XFL, zip's flags).
pub(crate) fn stream(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    what: &'static str,
    level_hint: Option<u8>,
) -> Result<Stream> {
    if sink.recipe().is_none() {
        return decode_stream(input, sink, what, None);
    }
    let (s, segment, _) = analyze_stream(input, sink, what, level_hint, None)?;
    if let Some(b) = sink.recipe() {
        b.segments.push(segment);
    }
    Ok(s)
}

/// Decode one stream into the sink and find its recipe segment, without recording it (the
/// caller does). `prefer`: a setting (see [`Segment::setting`]) tried before any search,
/// e.g. the previous zip member's: members of one archive are written alike, so this is
/// usually the one, and a match keeps them in one run. Returns the stream, its segment and
/// its compressed length.
pub(crate) fn analyze_stream(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    what: &'static str,
    level_hint: Option<u8>,
    prefer: Option<&Segment>,
) -> Result<(Stream, Segment, u64)> {
    let start = input.consumed();
    let mut spool = Spool::default();
    let s = decode_stream(input, sink, what, Some(&mut spool))?;
    if let Some(p) = prefer
        && let Some(segment) = try_setting(&spool, &s, p)?
    {
        return Ok((s, segment, spool.len()));
    }
    let segment = recipe_for(&spool, &s, level_hint, start)?;
    Ok((s, segment, spool.len()))
}

/// The segment re-creating the spooled stream `s` with `setting` (a zlib, Go or
/// Rust-encoder setting), when it does; one trial, bounded like the searches' first.
fn try_setting(spool: &Spool, s: &Stream, setting: &Segment) -> Result<Option<Segment>> {
    let mut budget = s
        .plain_len
        .saturating_mul(ZLIB_BUDGET)
        .saturating_add(ZLIB_SLACK_MIN.max(GO_TRIAL_COST));
    let plain_len = s.plain_len;
    let (trial, segment) = match setting {
        Segment::Zlib(z) => (
            zlib_trial(spool, &z.params, &mut budget)?,
            Segment::Zlib(ZlibSegment {
                plain_len,
                ..z.clone()
            }),
        ),
        Segment::GoFlate(g) => (
            go_trial(spool, g.level, &mut budget)?,
            Segment::GoFlate(GoFlateSegment { plain_len, ..*g }),
        ),
        Segment::RustFlate(r) => (
            rust_trial(spool, r.encoder, r.level, r.feed, r.tar, &mut budget)?,
            Segment::RustFlate(RustFlateSegment {
                plain_len,
                ..r.clone()
            }),
        ),
        _ => return Ok(None),
    };
    Ok(matches!(trial, Trial::Exact).then_some(segment))
}

fn truncated(what: &'static str, at: u64) -> RecompressError {
    RecompressError::Malformed {
        what,
        message: format!("deflate stream truncated at offset {at}"),
    }
}

/// Decode one stream into the sink; with `spool`, also keep its compressed bytes there.
fn decode_stream(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    what: &'static str,
    mut spool: Option<&mut Spool>,
) -> Result<Stream> {
    let mut d = Decompress::new(false);
    let mut out = vec![0u8; 256 << 10];
    let mut crc = crc32fast::Hasher::new();
    let mut plain_len = 0u64;
    loop {
        let have = input.fill(1)?;
        let before_in = d.total_in();
        let before_out = d.total_out();
        let status = d
            .decompress(input.peek(), &mut out, FlushDecompress::None)
            .map_err(|e| RecompressError::Malformed {
                what,
                message: format!("deflate stream at offset {}: {e}", input.consumed()),
            })?;
        let used = (d.total_in() - before_in) as usize;
        let made = (d.total_out() - before_out) as usize;
        if let Some(sp) = spool.as_mut() {
            sp.push(&input.peek()[..used])?;
        }
        input.consume(used);
        sink.decoded(&out[..made], input.consumed())?;
        crc.update(&out[..made]);
        plain_len += made as u64;
        match status {
            Status::StreamEnd => break,
            _ if used == 0 && made == 0 => {
                if have == 0 || input.at_eof() {
                    return Err(truncated(what, input.consumed()));
                }
                // zlib wants more than is buffered: ask for more than we have.
                input.fill(have.saturating_mul(2))?;
            }
            _ => {}
        }
    }
    Ok(Stream {
        crc: crc.finalize(),
        plain_len,
    })
}

fn not_exact(at: u64, e: impl std::fmt::Display) -> RecompressError {
    RecompressError::NotExact(format!("deflate stream at offset {at}: {e}"))
}

/// Find how to re-create the spooled stream `s` (which started at offset `at`): the Go
/// port when the stream ends as Go's do, the likeliest zlib settings, the Rust encoders,
/// the other zlib settings, then preflate, then verbatim.
fn recipe_for(spool: &Spool, s: &Stream, level_hint: Option<u8>, at: u64) -> Result<Segment> {
    if ends_like_go(spool)?
        && let Some(level) = go_search(spool, s.plain_len)?
    {
        return Ok(Segment::GoFlate(GoFlateSegment {
            plain_len: s.plain_len,
            port: PORT_ID,
            level,
        }));
    }
    let zlib = |params| {
        Segment::Zlib(ZlibSegment {
            plain_len: s.plain_len,
            version: crate::zlib::version(),
            params,
        })
    };
    let candidates = zlib_candidates(s.plain_len, level_hint);
    let (head, rest) = candidates.split_at(ZLIB_HEAD.min(candidates.len()));
    let mut zlib_budget = s
        .plain_len
        .saturating_mul(ZLIB_BUDGET)
        .saturating_add(slack(s.plain_len, ZLIB_SLACK_MIN, ZLIB_BUDGET_SLACK));
    if let Some(params) = zlib_search(spool, head, &mut zlib_budget)? {
        return Ok(zlib(params));
    }
    if let Some(seg) = rust_search(spool, s.plain_len, level_hint)? {
        return Ok(Segment::RustFlate(seg));
    }
    if let Some(params) = zlib_search(spool, rest, &mut zlib_budget)? {
        return Ok(zlib(params));
    }
    let why = match preflate_chunks(spool, s, at) {
        Ok(chunks) => return Ok(Segment::Deflate(chunks)),
        Err(RecompressError::NotExact(m)) => m,
        // The stream decoded, so preflate failing to parse it is preflate's limit.
        Err(RecompressError::Malformed { message, .. }) => message,
        Err(e) => return Err(e),
    };
    if spool.len() > MAX_RAW {
        return Err(RecompressError::NotExact(format!(
            "{why}; the stream ({} bytes) is too large to carry verbatim (at most {MAX_RAW})",
            spool.len()
        )));
    }
    let mut deflate = vec![0u8; spool.len() as usize];
    spool.read_at(0, &mut deflate)?;
    Ok(Segment::Raw(RawSegment {
        plain_len: s.plain_len,
        crc: s.crc,
        deflate,
    }))
}

/// zlib settings in the order they are tried: the hinted level, then the settings of the
/// common producers (default strategy, 32 KiB window, memLevel 8 then 9), then the rare
/// ones. Settings that cannot differ from one already listed for a stream of `plain_len`
/// bytes are left out.
fn zlib_candidates(plain_len: u64, level_hint: Option<u8>) -> Vec<ZlibParams> {
    let mut levels: Vec<u8> = Vec::with_capacity(9);
    for l in level_hint.into_iter().chain([6, 9, 1, 5, 4, 3, 2, 7, 8]) {
        if (1..=9).contains(&l) && !levels.contains(&l) {
            levels.push(l);
        }
    }
    // A window larger than the stream gives the same output as any other such window
    // (no match can reach further, the window never slides): 15 stands for them all.
    let windows: Vec<u8> = std::iter::once(15)
        .chain((9..15).rev().filter(|w| plain_len > (1u64 << w) - 262))
        .collect();
    let common_mem = [8u8, 9];
    let rare_mem = [1u8, 2, 3, 4, 5, 6, 7];
    let mut out = Vec::new();
    let mut add = |level, mem_level, window_bits, strategy| {
        let p = ZlibParams {
            level,
            mem_level,
            window_bits,
            strategy,
        };
        if !out.contains(&p) {
            out.push(p);
        }
    };
    // Z_FILTERED only changes the lazy matcher (levels 4-9); Z_HUFFMAN_ONLY and Z_RLE
    // ignore the level, so level 6 stands for all.
    let filtered = |l: &&u8| **l >= 4;
    for &m in &common_mem {
        for &l in &levels {
            add(l, m, 15, 0);
        }
    }
    for &m in &common_mem {
        for &l in levels.iter().filter(filtered) {
            add(l, m, 15, 1);
        }
        add(6, m, 15, 3);
        add(6, m, 15, 2);
    }
    // Then smaller windows, then smaller memLevels, with the common memLevels first.
    for &w in &windows {
        for &m in &common_mem {
            for &l in &levels {
                add(l, m, w, 0);
            }
        }
    }
    for &w in &windows {
        for &m in &rare_mem {
            for &l in &levels {
                add(l, m, w, 0);
            }
        }
    }
    for &w in &windows {
        for &m in common_mem.iter().chain(&rare_mem) {
            for &l in levels.iter().filter(filtered) {
                add(l, m, w, 1);
            }
            add(6, m, w, 3);
            add(6, m, w, 2);
        }
    }
    out
}

/// The first of `candidates` that re-creates the spooled stream byte for byte, if one
/// does within the budget.
fn zlib_search(
    spool: &Spool,
    candidates: &[ZlibParams],
    budget: &mut u64,
) -> Result<Option<ZlibParams>> {
    for p in candidates {
        match zlib_trial(spool, p, budget)? {
            Trial::Exact => return Ok(Some(*p)),
            Trial::Differs => {}
            Trial::OutOfBudget => break,
        }
    }
    Ok(None)
}

/// The first miniz_oxide or zlib-rs setting (level, then input piece size) that re-creates
/// the spooled stream, if one does within the budget. The levels are interleaved by
/// likelihood (the hinted level of both encoders first); a wrong one usually differs in
/// its first block, so a rejection costs about one block of plain bytes.
fn rust_search(
    spool: &Spool,
    plain_len: u64,
    level_hint: Option<u8>,
) -> Result<Option<RustFlateSegment<&'static str>>> {
    let mut budget = plain_len.saturating_mul(RUST_BUDGET).saturating_add(slack(
        plain_len,
        ZLIB_SLACK_MIN,
        RUST_BUDGET_SLACK,
    ));
    let miniz = Encoder::Miniz.levels(level_hint);
    let zrs = Encoder::ZlibRs.levels(level_hint);
    let mut order = Vec::with_capacity(miniz.len() + zrs.len());
    for i in 0..miniz.len().max(zrs.len()) {
        order.extend(miniz.get(i).map(|&l| (Encoder::Miniz, l)));
        order.extend(zrs.get(i).map(|&l| (Encoder::ZlibRs, l)));
    }
    // The whole stream in one piece first (it also stands for every feed where the encoder
    // does not depend on the pieces, e.g. miniz's levels 2-10: such a recipe stays version
    // 4); then, for a tar stream, the pieces a tar writer hands its encoder; then the
    // other uniform pieces.
    let uniform = crate::rustflate::feeds(plain_len);
    let whole = usize::from(plain_len <= MAX_FEED).min(uniform.len());
    let mut shapes: Vec<(u64, bool)> = uniform[..whole].iter().map(|&f| (f, false)).collect();
    if crate::rustflate::looks_like_tar(&plain_head(spool, 512)?) {
        shapes.extend(crate::rustflate::TAR_BODY_FEEDS.iter().map(|&f| (f, true)));
    }
    shapes.extend(uniform[whole..].iter().map(|&f| (f, false)));
    for (enc, level) in order {
        for &(feed, tar) in &shapes {
            match rust_trial(spool, enc, level, feed, tar, &mut budget)? {
                Trial::Exact => {
                    return Ok(Some(RustFlateSegment {
                        plain_len,
                        encoder: enc,
                        id: enc.id(),
                        level,
                        feed,
                        tar,
                    }));
                }
                Trial::Differs => {}
                Trial::OutOfBudget => return Ok(None),
            }
        }
    }
    Ok(None)
}

/// Re-compress the spooled stream's plain bytes with `enc` at `level`, cut as `feed` and
/// `tar` say ([`Cutter`]), comparing with the spool as the output comes and stopping at
/// the first difference.
fn rust_trial(
    spool: &Spool,
    enc: Encoder,
    level: u8,
    feed: u64,
    tar: bool,
    budget: &mut u64,
) -> Result<Trial> {
    if *budget < RUST_TRIAL_COST {
        return Ok(Trial::OutOfBudget);
    }
    *budget -= RUST_TRIAL_COST;
    // Levels come from the encoders' own lists, so a refusal means "not available".
    let Ok(mut def) = RustDeflater::new(enc, level) else {
        return Ok(Trial::Differs);
    };
    let mut cmp = SpoolCompare::new(spool);
    let mut compare = |bytes: &[u8]| cmp.check(bytes);
    // The plain bytes come from the inflater in its own pieces: re-cut them as the
    // producer (and the rebuild) handed them over.
    let mut cutter = Cutter::new(feed, tar);
    let mut to_encoder = |piece: &[u8]| def.feed(piece, false, &mut compare);
    let fed = replay_plain(spool, budget, |plain| cutter.push(plain, &mut to_encoder))?;
    match fed {
        Trial::Exact => {}
        other => return Ok(other),
    }
    if !cutter.finish(&mut to_encoder)? {
        return Ok(Trial::Differs);
    }
    if !def.feed(&[], true, &mut compare)? {
        return Ok(Trial::Differs);
    }
    Ok(if cmp.at == spool.len() {
        Trial::Exact
    } else {
        Trial::Differs
    })
}

/// The first `n` plain bytes of the spooled stream (fewer when it is shorter).
fn plain_head(spool: &Spool, n: usize) -> Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    let mut budget = u64::MAX;
    replay_plain(spool, &mut budget, |plain| {
        let take = (n - head.len()).min(plain.len());
        head.extend_from_slice(&plain[..take]);
        Ok(head.len() < n)
    })?;
    Ok(head)
}

enum Trial {
    Exact,
    Differs,
    OutOfBudget,
}

/// Re-compress the spooled stream's plain bytes with `p`, comparing with the spool as the
/// output comes and stopping at the first difference.
fn zlib_trial(spool: &Spool, p: &ZlibParams, budget: &mut u64) -> Result<Trial> {
    if *budget < ZLIB_TRIAL_COST {
        return Ok(Trial::OutOfBudget);
    }
    *budget -= ZLIB_TRIAL_COST;
    // Parameters come from our own list, so zlib refusing them is a zlib failure (e.g.
    // out of memory): this setting is then simply not available.
    let Ok(mut def) = Deflater::new(p) else {
        return Ok(Trial::Differs);
    };
    let mut cmp = SpoolCompare::new(spool);
    let mut compare = |bytes: &[u8]| cmp.check(bytes);
    match replay_plain(spool, budget, |plain| def.feed(plain, false, &mut compare))? {
        Trial::Exact => {}
        other => return Ok(other),
    }
    if !def.feed(&[], true, &mut compare)? {
        return Ok(Trial::Differs);
    }
    Ok(if cmp.at == spool.len() {
        Trial::Exact
    } else {
        Trial::Differs
    })
}

/// Whether the spooled stream ends as every stream of Go's `compress/flate` does.
fn ends_like_go(spool: &Spool) -> Result<bool> {
    let len = spool.len();
    // The shortest Go stream is the empty one: `01 00 00 ff ff`.
    if len < 5 {
        return Ok(false);
    }
    let mut tail = [0u8; 4];
    spool.read_at(len - 4, &mut tail)?;
    Ok(tail == GO_TAIL)
}

/// The first Go level whose stream of the spooled plain bytes is the spooled stream, if
/// one is within the budget.
fn go_search(spool: &Spool, plain_len: u64) -> Result<Option<i32>> {
    let mut budget = plain_len
        .saturating_mul(GO_BUDGET)
        .saturating_add(GO_BUDGET_SLACK);
    for level in LEVELS_BY_LIKELIHOOD {
        match go_trial(spool, level, &mut budget)? {
            Trial::Exact => return Ok(Some(level)),
            Trial::Differs => {}
            Trial::OutOfBudget => break,
        }
    }
    Ok(None)
}

/// Re-compress the spooled stream's plain bytes with the Go port at `level`, comparing
/// with the spool as the output comes and stopping at the first difference.
fn go_trial(spool: &Spool, level: i32, budget: &mut u64) -> Result<Trial> {
    if *budget < GO_TRIAL_COST {
        return Ok(Trial::OutOfBudget);
    }
    *budget -= GO_TRIAL_COST;
    // Levels come from the port's own list, so it cannot refuse them; if it did, the
    // level is simply not available.
    let Ok(mut def) = GoDeflater::new(level) else {
        return Ok(Trial::Differs);
    };
    let mut cmp = SpoolCompare::new(spool);
    let fed = replay_plain(spool, budget, |plain| {
        let r = def.write(plain, &mut cmp);
        cmp.outcome(r)
    })?;
    match fed {
        Trial::Exact => {}
        other => return Ok(other),
    }
    let r = def.finish(&mut cmp);
    if !cmp.outcome(r)? {
        return Ok(Trial::Differs);
    }
    Ok(if cmp.at == spool.len() {
        Trial::Exact
    } else {
        Trial::Differs
    })
}

/// Compares a candidate's output with the spooled stream as it is produced: `at` bytes
/// matched so far. A spool read error is kept (and reported as such), never taken for a
/// difference.
struct SpoolCompare<'a> {
    spool: &'a Spool,
    at: u64,
    buf: Vec<u8>,
    error: Option<RecompressError>,
}

impl<'a> SpoolCompare<'a> {
    fn new(spool: &'a Spool) -> Self {
        SpoolCompare {
            spool,
            at: 0,
            buf: vec![0u8; STEP],
            error: None,
        }
    }

    /// Whether `bytes` are the spool's next bytes (then they are matched).
    fn check(&mut self, bytes: &[u8]) -> Result<bool> {
        for piece in bytes.chunks(STEP) {
            let n = piece.len();
            if self.at + n as u64 > self.spool.len() {
                return Ok(false);
            }
            self.spool.read_at(self.at, &mut self.buf[..n])?;
            if self.buf[..n] != *piece {
                return Ok(false);
            }
            self.at += n as u64;
        }
        Ok(true)
    }

    /// What a Go write into this comparer means: Ok(true) matched so far, Ok(false) a
    /// difference, Err a spool read error.
    fn outcome(&mut self, r: std::result::Result<(), GoFlateError>) -> Result<bool> {
        match (r, self.error.take()) {
            (_, Some(e)) => Err(e),
            (Ok(()), None) => Ok(true),
            (Err(_), None) => Ok(false),
        }
    }
}

impl std::io::Write for SpoolCompare<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.check(bytes) {
            Ok(true) => Ok(bytes.len()),
            Ok(false) => Err(std::io::Error::other("differs from the original stream")),
            Err(e) => {
                self.error = Some(e);
                Err(std::io::Error::other("reading the spool failed"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Re-inflate the spooled stream and hand its plain bytes to `feed` as they come, each
/// charged to `budget`. `Exact` when every plain byte was fed; `Differs` as soon as `feed`
/// says so; `OutOfBudget` when the budget runs out first.
fn replay_plain(
    spool: &Spool,
    budget: &mut u64,
    mut feed: impl FnMut(&[u8]) -> Result<bool>,
) -> Result<Trial> {
    let mut inflate = Decompress::new(false);
    let mut comp = vec![0u8; STEP];
    let mut plain = vec![0u8; STEP];
    let mut read_pos = 0u64;
    let len = spool.len();
    let mut have = 0usize;
    loop {
        // Top the compressed buffer up from the spool (`read_pos` is the first byte not yet
        // given to the inflater; `have` bytes from there are buffered).
        let next = read_pos + have as u64;
        let more = (len - next).min((STEP - have) as u64) as usize;
        if more > 0 {
            spool.read_at(next, &mut comp[have..have + more])?;
            have += more;
        }
        let before_in = inflate.total_in();
        let before_out = inflate.total_out();
        let status = inflate
            .decompress(&comp[..have], &mut plain, FlushDecompress::None)
            .map_err(|e| not_exact(read_pos, e))?;
        let used = (inflate.total_in() - before_in) as usize;
        let made = (inflate.total_out() - before_out) as usize;
        comp.copy_within(used..have, 0);
        have -= used;
        read_pos += used as u64;
        if made > 0 {
            if made as u64 > *budget {
                return Ok(Trial::OutOfBudget);
            }
            *budget -= made as u64;
            if !feed(&plain[..made])? {
                return Ok(Trial::Differs);
            }
        }
        match status {
            Status::StreamEnd => return Ok(Trial::Exact),
            _ if used == 0 && made == 0 => {
                return Err(not_exact(read_pos, "the spooled stream does not decode"));
            }
            _ => {}
        }
    }
}

/// preflate's corrections for the spooled stream `s`, each chunk checked by rebuilding it.
fn preflate_chunks(spool: &Spool, s: &Stream, at: u64) -> Result<Vec<Chunk<Vec<u8>>>> {
    let what = "deflate";
    let mut reader = spool.reader();
    let mut input = Input::new(&mut reader);
    let config = PreflateConfig {
        max_chain_length: MAX_CHAIN,
        plain_text_limit: CHUNK_PLAIN,
        // Checked below through the rebuild path instead (the same work, and it checks
        // what `rebuild` will actually run).
        verify_compression: false,
    };
    let mut pre = PreflateStreamProcessor::new(&config);
    let mut check = RecreateStreamProcessor::new();
    let mut chunks: Vec<Chunk<Vec<u8>>> = Vec::new();
    let mut crc = crc32fast::Hasher::new();
    let mut plain_len = 0u64;
    let mut want = CHUNK_INPUT;
    while !pre.is_done() {
        let have = input.fill(want)?;
        if have == 0 {
            return Err(truncated(what, at + input.consumed()));
        }
        let offer = have.min(want);
        let result = pre.decompress(&input.peek()[..offer]);
        let r = match result {
            Ok(r) if r.compressed_size > 0 => r,
            Ok(_) => {
                // Nothing whole in what was offered: offer more.
                want = grow(want, have, &mut input, what)?;
                continue;
            }
            Err(e) if e.exit_code() == ExitCode::ShortRead => {
                want = grow(want, have, &mut input, what)?;
                continue;
            }
            Err(e) if e.exit_code() == ExitCode::PlainTextLimit => {
                return Err(RecompressError::NotExact(format!(
                    "a deflate block at offset {} decodes to more than {CHUNK_PLAIN} bytes",
                    at + input.consumed()
                )));
            }
            Err(e) => return Err(not_exact(at + input.consumed(), e)),
        };
        want = CHUNK_INPUT;
        let text = pre.plain_text().text();
        let compressed = &input.peek()[..r.compressed_size];
        if text.len() as u64 > MAX_CHUNK_PLAIN {
            return Err(not_exact(
                at + input.consumed(),
                "chunk past the recipe's chunk bound",
            ));
        }
        // Rebuild this chunk exactly as `rebuild` will, from exactly these corrections.
        let (rebuilt, _) = check
            .recompress(&mut Cursor::new(text), &r.corrections)
            .map_err(|e| not_exact(at + input.consumed(), e))?;
        if rebuilt != compressed {
            return Err(not_exact(
                at + input.consumed(),
                "preflate's rebuild differs from the original bytes",
            ));
        }
        crc.update(text);
        plain_len += text.len() as u64;
        chunks.push(Chunk {
            plain_len: text.len() as u64,
            corrections: r.corrections,
        });
        input.consume(r.compressed_size);
        pre.shrink_to_dictionary();
    }
    // The plain form was written from flate2's decoding; preflate's must be the same
    // bytes, or its recipe would rebuild from something else.
    if input.consumed() != spool.len() || plain_len != s.plain_len || crc.finalize() != s.crc {
        return Err(not_exact(
            at,
            "preflate's parse differs from the decoded stream",
        ));
    }
    Ok(chunks)
}

/// Offer preflate more input after a short read: double what was offered, up to the
/// look-ahead bound; at the end of the input the stream is truncated.
fn grow(want: usize, have: usize, input: &mut Input<'_>, what: &'static str) -> Result<usize> {
    if have < want && input.at_eof() {
        return Err(truncated(what, input.consumed()));
    }
    let next = want.saturating_mul(2);
    input.fill(next)?;
    Ok(next)
}

/// Rebuild one deflate segment of `chunks` chunks (read from `r`) from the plain form.
pub(crate) fn rebuild(
    r: &mut Reader<'_>,
    chunks: u64,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let mut rec = RecreateStreamProcessor::new();
    let mut buf = Vec::new();
    for i in 0..chunks {
        let c = r.chunk()?;
        read_plain(plain, c.plain_len, &mut buf)?;
        // preflate is not built to take hostile corrections; a panic in it is a refused
        // recipe, never a crashed host.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rec.recompress(&mut Cursor::new(&buf), c.corrections)
        }));
        let bytes = match result {
            Ok(Ok((bytes, _))) => bytes,
            Ok(Err(e)) => {
                return Err(RecompressError::Malformed {
                    what: "recipe",
                    message: format!("deflate chunk {i}: {e}"),
                });
            }
            Err(_) => {
                return Err(RecompressError::Malformed {
                    what: "recipe",
                    message: format!("deflate chunk {i}: preflate refused the corrections"),
                });
            }
        };
        out.put(&bytes)?;
    }
    Ok(())
}

/// Re-create a deflate stream with the bundled zlib from `z.plain_len` plain bytes.
pub(crate) fn rebuild_zlib(
    z: &ZlibSegment<&[u8]>,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let have = crate::zlib::version();
    if z.version != have.as_bytes() {
        return Err(RecompressError::Unsupported(format!(
            "a deflate stream made with zlib {} (this ouk has zlib {have})",
            String::from_utf8_lossy(z.version)
        )));
    }
    let mut def = Deflater::new(&z.params).map_err(|m| RecompressError::Malformed {
        what: "recipe",
        message: m,
    })?;
    feed_plain(
        z.plain_len,
        STEP as u64,
        plain,
        out,
        |input, finish, emit| def.feed(input, finish, emit),
    )
}

/// Hand `plain_len` plain bytes to an encoder `piece` bytes per call (then an empty final
/// call), every piece of its output to `out` (the zlib rebuild; the Rust rebuild cuts its
/// pieces with a [`Cutter`], since the pieces are part of what makes its stream exact).
fn feed_plain(
    plain_len: u64,
    piece: u64,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
    mut feed: impl FnMut(&[u8], bool, &mut dyn FnMut(&[u8]) -> Result<bool>) -> Result<bool>,
) -> Result<()> {
    let mut put = |bytes: &[u8]| -> Result<bool> {
        out.put(bytes)?;
        Ok(true)
    };
    let mut buf = Vec::new();
    let mut left = plain_len;
    while left > 0 {
        let n = left.min(piece);
        read_plain(plain, n, &mut buf)?;
        left -= n;
        feed(&buf, false, &mut put)?;
    }
    feed(&[], true, &mut put)?;
    Ok(())
}

/// Re-create a deflate stream with a Rust encoder from `r.plain_len` plain bytes, handed
/// to it in the pieces `r.feed` and `r.tar` say ([`Cutter`]; the reader checked the
/// identity, level and feed).
pub(crate) fn rebuild_rustflate(
    r: &RustFlateSegment<&[u8]>,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let mut def =
        RustDeflater::new(r.encoder, r.level).map_err(|m| RecompressError::Malformed {
            what: "recipe",
            message: m,
        })?;
    let mut put = |bytes: &[u8]| -> Result<bool> {
        out.put(bytes)?;
        Ok(true)
    };
    let mut cutter = Cutter::new(r.feed, r.tar);
    let mut buf = Vec::new();
    let mut left = r.plain_len;
    while left > 0 {
        let n = left.min(STEP as u64);
        read_plain(plain, n, &mut buf)?;
        left -= n;
        cutter.push(&buf, &mut |piece| def.feed(piece, false, &mut put))?;
    }
    cutter.finish(&mut |piece| def.feed(piece, false, &mut put))?;
    def.feed(&[], true, &mut put)?;
    Ok(())
}

/// Re-create one stream of a zip member run: `plain_len` plain bytes (from the member's
/// header) with the run's shared setting (checked by the reader).
pub(crate) fn rebuild_setting(
    setting: &RunSetting<'_>,
    plain_len: u64,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    match setting {
        RunSetting::Zlib(z) => rebuild_zlib(
            &ZlibSegment {
                plain_len,
                ..z.clone()
            },
            plain,
            out,
        ),
        RunSetting::GoFlate(g) => rebuild_goflate(&GoFlateSegment { plain_len, ..*g }, plain, out),
        RunSetting::RustFlate(r) => rebuild_rustflate(
            &RustFlateSegment {
                plain_len,
                ..r.clone()
            },
            plain,
            out,
        ),
    }
}

/// Write a verbatim deflate stream, after consuming (and checking) its plain bytes.
pub(crate) fn rebuild_raw(
    r: &RawSegment<&[u8]>,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let mut crc = crc32fast::Hasher::new();
    let mut buf = Vec::with_capacity(STEP);
    let mut left = r.plain_len;
    while left > 0 {
        let n = left.min(STEP as u64);
        read_plain(plain, n, &mut buf)?;
        crc.update(&buf);
        left -= n;
    }
    if crc.finalize() != r.crc {
        return Err(RecompressError::Malformed {
            what: "plain form",
            message: "a verbatim deflate stream's plain bytes do not match its CRC-32".into(),
        });
    }
    out.put(r.deflate)
}

/// Re-create a deflate stream with the Go port from `g.plain_len` plain bytes, streamed
/// through it [`STEP`] bytes at a time (the reader checked the level and the port).
pub(crate) fn rebuild_goflate(
    g: &GoFlateSegment<&[u8]>,
    plain: &mut dyn Read,
    out: &mut OutMeter<'_>,
) -> Result<()> {
    let mut def = GoDeflater::new(g.level).map_err(|e| RecompressError::Malformed {
        what: "recipe",
        message: e.to_string(),
    })?;
    let mut w = MeterWrite { out, error: None };
    let mut buf = Vec::with_capacity(STEP);
    let mut left = g.plain_len;
    while left > 0 {
        let n = left.min(STEP as u64);
        read_plain(plain, n, &mut buf)?;
        left -= n;
        let r = def.write(&buf, &mut w);
        w.result(r)?;
    }
    let r = def.finish(&mut w);
    w.result(r)
}

/// The Go port writes through `std::io::Write`; this passes its output to the meter and
/// keeps the meter's own error (e.g. output past the recipe's size) to report as it is.
struct MeterWrite<'a, 'b> {
    out: &'a mut OutMeter<'b>,
    error: Option<RecompressError>,
}

impl MeterWrite<'_, '_> {
    fn result(&mut self, r: std::result::Result<(), GoFlateError>) -> Result<()> {
        match (r, self.error.take()) {
            (_, Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
            (Err(GoFlateError::Io(e)), None) => Err(RecompressError::Io(e)),
            (Err(e), None) => Err(RecompressError::Malformed {
                what: "recipe",
                message: e.to_string(),
            }),
        }
    }
}

impl std::io::Write for MeterWrite<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self.out.put(bytes) {
            Ok(()) => Ok(bytes.len()),
            Err(e) => {
                self.error = Some(e);
                Err(std::io::Error::other(
                    "the rebuild's output refused the bytes",
                ))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
