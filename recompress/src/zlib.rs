//! A small safe wrapper over madler zlib's raw deflate (`deflateInit2_`, `deflate`,
//! `deflateEnd`), through `libz-sys` built from its vendored source.
//!
//! The zlib-exact tier needs the *exact* zlib most producers ran (Python, Node, Java,
//! pip...): zlib-rs and zlib-ng produce different bytes, so flate2 cannot be used here.
//! This is the only `unsafe` code of the crate.
//!
//! Invariants: parameters are checked against zlib's documented ranges before they reach
//! zlib ([`ZlibParams::check`]), so a hostile recipe never drives zlib out of its contract;
//! the `z_stream` is boxed so its address stays fixed for zlib's self-check (`strm` is
//! stored in the state); input and output are handed over in slices of at most
//! [`STEP`] bytes, so memory stays bounded (zlib's own state is at most ~400 KiB at
//! memLevel 9); `deflateEnd` runs exactly once, in `Drop`.

use std::ffi::CStr;
use std::os::raw::{c_int, c_uint, c_void};

use libz_sys as z;

/// Output buffer size per `deflate` call.
const STEP: usize = 64 << 10;

/// A zlib setting: what `deflateInit2` takes (raw deflate: no zlib or gzip wrapper).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ZlibParams {
    /// 1..=9.
    pub level: u8,
    /// 1..=9.
    pub mem_level: u8,
    /// 9..=15 (raw deflate: passed negated).
    pub window_bits: u8,
    /// 0 default, 1 filtered, 2 huffman-only, 3 rle.
    pub strategy: u8,
}

impl ZlibParams {
    /// Whether zlib accepts these parameters (its documented ranges; 8 for windowBits is
    /// refused because zlib silently turns it into 9 for raw deflate).
    pub(crate) fn check(&self) -> Result<(), String> {
        if !(1..=9).contains(&self.level)
            || !(1..=9).contains(&self.mem_level)
            || !(9..=15).contains(&self.window_bits)
            || self.strategy > 3
        {
            return Err(format!(
                "zlib parameters out of range (level {}, memLevel {}, windowBits {}, strategy {})",
                self.level, self.mem_level, self.window_bits, self.strategy
            ));
        }
        Ok(())
    }
}

/// The version string of the linked zlib (the one vendored in libz-sys).
pub(crate) fn version() -> String {
    // SAFETY: zlibVersion returns a pointer to a static NUL-terminated string.
    let v = unsafe { CStr::from_ptr(z::zlibVersion()) };
    v.to_string_lossy().into_owned()
}

// zlib's allocator callbacks (libz-sys declares them non-nullable, so Z_NULL cannot be
// used). calloc checks `items * size` for overflow.
extern "C" fn zalloc(_opaque: *mut c_void, items: c_uint, size: c_uint) -> *mut c_void {
    // SAFETY: calloc has no preconditions; a null return is zlib's out-of-memory signal.
    unsafe { libc::calloc(items as libc::size_t, size as libc::size_t) }
}

extern "C" fn zfree(_opaque: *mut c_void, ptr: *mut c_void) {
    // SAFETY: zlib frees only pointers it got from `zalloc` (calloc), each once.
    unsafe { libc::free(ptr) }
}

/// One raw deflate compression in progress.
pub(crate) struct Deflater {
    strm: Box<z::z_stream>,
    out: Vec<u8>,
    finished: bool,
}

impl Deflater {
    /// Start a raw deflate stream with `p` (checked first).
    pub(crate) fn new(p: &ZlibParams) -> Result<Self, String> {
        p.check()?;
        let mut strm = Box::new(z::z_stream {
            next_in: std::ptr::null_mut(),
            avail_in: 0,
            total_in: 0,
            next_out: std::ptr::null_mut(),
            avail_out: 0,
            total_out: 0,
            msg: std::ptr::null_mut(),
            state: std::ptr::null_mut(),
            zalloc,
            zfree,
            opaque: std::ptr::null_mut(),
            data_type: 0,
            adler: 0,
            reserved: 0,
        });
        // SAFETY: `strm` is a valid, initialised z_stream with allocator callbacks; the
        // version string and struct size are the ones this binding was built against, as
        // zlib requires; the parameters were range-checked above.
        let rc = unsafe {
            z::deflateInit2_(
                &mut *strm,
                c_int::from(p.level),
                z::Z_DEFLATED,
                -c_int::from(p.window_bits),
                c_int::from(p.mem_level),
                c_int::from(p.strategy),
                z::zlibVersion(),
                std::mem::size_of::<z::z_stream>() as c_int,
            )
        };
        if rc != z::Z_OK {
            // deflateInit2_ frees what it allocated when it fails, so no deflateEnd.
            return Err(format!("zlib deflateInit2 failed ({rc})"));
        }
        Ok(Deflater {
            strm,
            out: vec![0u8; STEP],
            finished: false,
        })
    }

    /// Compress `input` (`finish`: it is the last piece) and hand every piece of output to
    /// `emit`, which returns false to stop early. Returns false when `emit` stopped it.
    pub(crate) fn feed(
        &mut self,
        input: &[u8],
        finish: bool,
        emit: &mut dyn FnMut(&[u8]) -> crate::Result<bool>,
    ) -> crate::Result<bool> {
        if self.finished {
            return Err(zerr("deflate fed after its end".into()));
        }
        let flush = if finish { z::Z_FINISH } else { z::Z_NO_FLUSH };
        let mut rest = input;
        loop {
            // Hand zlib at most STEP input bytes per call (avail_in is 32 bits).
            let take = rest.len().min(STEP);
            self.strm.next_in = rest.as_ptr().cast_mut();
            self.strm.avail_in = take as c_uint;
            self.strm.next_out = self.out.as_mut_ptr();
            self.strm.avail_out = self.out.len() as c_uint;
            let last = take == rest.len();
            let f = if last { flush } else { z::Z_NO_FLUSH };
            // SAFETY: the stream was initialised by deflateInit2_ and not ended; next_in
            // points to `take` readable bytes of `rest` (zlib never writes through it) and
            // next_out to `self.out`, both alive for the call.
            let rc = unsafe { z::deflate(&mut *self.strm, f) };
            let used = take - self.strm.avail_in as usize;
            let made = self.out.len() - self.strm.avail_out as usize;
            // zlib keeps no pointer into `rest` past the call that gets it.
            self.strm.next_in = std::ptr::null_mut();
            self.strm.avail_in = 0;
            match rc {
                z::Z_OK | z::Z_BUF_ERROR | z::Z_STREAM_END => {}
                _ => return Err(zerr(format!("zlib deflate failed ({rc})"))),
            }
            if made > 0 && !emit(&self.out[..made])? {
                return Ok(false);
            }
            rest = &rest[used..];
            if rc == z::Z_STREAM_END {
                self.finished = true;
                return Ok(true);
            }
            // Done with this piece when all input is in and zlib had room to spare (it
            // holds nothing more it could write without more input).
            if last && rest.is_empty() && !finish && made < self.out.len() {
                return Ok(true);
            }
            if rc == z::Z_BUF_ERROR && made == 0 && used == 0 {
                return Err(zerr("zlib deflate made no progress".into()));
            }
        }
    }
}

fn zerr(message: String) -> crate::RecompressError {
    crate::RecompressError::Malformed {
        what: "zlib stream",
        message,
    }
}

impl Drop for Deflater {
    fn drop(&mut self) {
        // SAFETY: the stream was initialised by deflateInit2_ (new only returns a
        // Deflater after Z_OK) and is ended exactly once, here.
        unsafe {
            z::deflateEnd(&mut *self.strm);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflate_output_inflates_back() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let p = ZlibParams {
            level: 9,
            mem_level: 8,
            window_bits: 15,
            strategy: 0,
        };
        let mut d = Deflater::new(&p).unwrap();
        let mut out = Vec::new();
        for piece in data.chunks(10_000) {
            d.feed(piece, false, &mut |b| {
                out.extend_from_slice(b);
                Ok(true)
            })
            .unwrap();
        }
        d.feed(&[], true, &mut |b| {
            out.extend_from_slice(b);
            Ok(true)
        })
        .unwrap();
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&out[..]), &mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(!version().is_empty());
    }

    #[test]
    fn absurd_parameters_are_refused() {
        for (level, mem_level, window_bits, strategy) in [
            (0, 8, 15, 0),
            (10, 8, 15, 0),
            (9, 0, 15, 0),
            (9, 10, 15, 0),
            (9, 8, 8, 0),
            (9, 8, 16, 0),
            (9, 8, 15, 4),
            (255, 255, 255, 255),
        ] {
            let p = ZlibParams {
                level,
                mem_level,
                window_bits,
                strategy,
            };
            assert!(Deflater::new(&p).is_err(), "{p:?}");
        }
    }
}
