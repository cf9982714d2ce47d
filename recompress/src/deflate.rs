//! Raw deflate streams: decoding, analysis with preflate, and rebuilding.
//!
//! Decoding (for [`crate::decode`]) uses zlib-rs through flate2: it is fast and needs no
//! recipe. Analysis feeds the same bytes to preflate-rs's streaming processor, which parses
//! whole deflate blocks, estimates the encoder's parameters on the first chunk and records
//! the corrections needed to re-create the exact bit stream. Each chunk is rebuilt right
//! away, through the same `RecreateStreamProcessor` path [`rebuild`] uses, and compared
//! with the original compressed bytes: a recipe only exists when that check passed.
//!
//! Invariants: preflate holds at most one chunk of plain text ([`CHUNK_PLAIN`] plus a
//! 32 KiB dictionary, plus one chunk's tokens); the compressed look-ahead is bounded by
//! [`crate::input::MAX_BUFFER`]; plain bytes pass through the [`Sink`] bounds before they
//! are written; the rebuild reads at most [`MAX_CHUNK_PLAIN`] plain bytes per chunk.

use std::io::{Cursor, Read};

use flate2::{Decompress, FlushDecompress, Status};
use preflate_rs::{ExitCode, PreflateConfig, PreflateStreamProcessor, RecreateStreamProcessor};

use crate::input::Input;
use crate::recipe::{Chunk, MAX_CHUNK_PLAIN, Reader, Segment};
use crate::sink::{OutMeter, Sink, read_plain};
use crate::{RecompressError, Result};

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
pub(crate) fn stream(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    what: &'static str,
) -> Result<Stream> {
    if sink.recipe().is_some() {
        analyze_stream(input, sink, what)
    } else {
        decode_stream(input, sink, what)
    }
}

fn truncated(what: &'static str, at: u64) -> RecompressError {
    RecompressError::Malformed {
        what,
        message: format!("deflate stream truncated at offset {at}"),
    }
}

fn decode_stream(input: &mut Input<'_>, sink: &mut Sink<'_>, what: &'static str) -> Result<Stream> {
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

fn analyze_stream(
    input: &mut Input<'_>,
    sink: &mut Sink<'_>,
    what: &'static str,
) -> Result<Stream> {
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
    let start = input.consumed();
    let mut want = CHUNK_INPUT;
    while !pre.is_done() {
        let have = input.fill(want)?;
        if have == 0 {
            return Err(truncated(what, input.consumed()));
        }
        let offer = have.min(want);
        let result = pre.decompress(&input.peek()[..offer]);
        let r = match result {
            Ok(r) if r.compressed_size > 0 => r,
            Ok(_) => {
                // Nothing whole in what was offered: offer more.
                want = grow(want, have, input, what)?;
                continue;
            }
            Err(e) if e.exit_code() == ExitCode::ShortRead => {
                want = grow(want, have, input, what)?;
                continue;
            }
            Err(e) if e.exit_code() == ExitCode::PlainTextLimit => {
                return Err(RecompressError::NotExact(format!(
                    "a deflate block at offset {} decodes to more than {CHUNK_PLAIN} bytes",
                    input.consumed()
                )));
            }
            Err(e) => return Err(not_exact(input.consumed(), e)),
        };
        want = CHUNK_INPUT;
        let text = pre.plain_text().text();
        let compressed = &input.peek()[..r.compressed_size];
        let consumed_after = input.consumed() + r.compressed_size as u64;
        if text.len() as u64 > MAX_CHUNK_PLAIN {
            return Err(not_exact(
                input.consumed(),
                "chunk past the recipe's chunk bound",
            ));
        }
        // Rebuild this chunk exactly as `rebuild` will, from exactly these corrections.
        let (rebuilt, _) = check
            .recompress(&mut Cursor::new(text), &r.corrections)
            .map_err(|e| not_exact(input.consumed(), e))?;
        if rebuilt != compressed {
            return Err(not_exact(
                input.consumed(),
                "preflate's rebuild differs from the original bytes",
            ));
        }
        sink.decoded(text, consumed_after)?;
        crc.update(text);
        plain_len += text.len() as u64;
        chunks.push(Chunk {
            plain_len: text.len() as u64,
            corrections: r.corrections,
        });
        input.consume(r.compressed_size);
        pre.shrink_to_dictionary();
    }
    if input.consumed() == start {
        return Err(truncated(what, start));
    }
    if let Some(b) = sink.recipe() {
        b.segments.push(Segment::Deflate(chunks));
    }
    Ok(Stream {
        crc: crc.finalize(),
        plain_len,
    })
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
