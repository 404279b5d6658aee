//! Splitting a payload into lines, 64 bytes at a time (see [`Lines`]).

/// The `\n`-separated lines of a payload (without the `\n`; the last one may be empty or unterminated), found
/// 64 bytes at a time: each block's newlines become the bits of a mask, and each line is then a bit away.
/// Measured with callgrind on the worker path, a `memchr` call per line was ~77 instructions (its CPU-feature
/// dispatch and setup each time, on lines of ~75 bytes); this is ~20.
pub(super) struct Lines<'a> {
    payload: &'a [u8],
    /// Where the next line starts.
    start: usize,
    /// Offset of the block `mask` describes.
    block: usize,
    /// Bit i: the byte at `block + i` is a newline not yet handed out.
    mask: u64,
    /// Offset of the next block to scan.
    next_block: usize,
}

impl<'a> Lines<'a> {
    pub(super) fn new(payload: &'a [u8]) -> Self {
        Lines {
            payload,
            start: 0,
            block: 0,
            mask: 0,
            next_block: 0,
        }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let len = self.payload.len();
        while self.mask == 0 {
            if self.next_block >= len {
                // No newline left: what remains is the last line.
                if self.start >= len {
                    return None;
                }
                let line = &self.payload[self.start..];
                self.start = len;
                return Some(line);
            }
            self.block = self.next_block;
            self.next_block += 64;
            let rest = &self.payload[self.block..];
            self.mask = match rest.first_chunk::<64>() {
                Some(block) => newline_mask(block),
                None => partial_mask(rest),
            };
        }
        let at = self.block + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        let line = &self.payload[self.start..at];
        self.start = at + 1;
        Some(line)
    }
}

/// [`newline_mask`] of the payload's last, partial block (fewer than 64 bytes; the zeros after it are no
/// newline). Apart from the full blocks' path, so that a full block is not copied first.
#[cold]
fn partial_mask(block: &[u8]) -> u64 {
    let mut full = [0u8; 64];
    full[..block.len()].copy_from_slice(block);
    newline_mask(&full)
}

/// Bit i set when `bytes[i]` is `\n`.
#[inline(always)]
fn newline_mask(bytes: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
        };
        let mut mask = 0u64;
        for i in 0..4 {
            // SAFETY: SSE2 is part of the x86_64 baseline; the unaligned load reads bytes[16 * i..16 * i + 16],
            // inside the 64-byte array.
            let m = unsafe {
                let v = _mm_loadu_si128(bytes.as_ptr().add(16 * i) as *const __m128i);
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8))) as u16
            };
            mask |= (m as u64) << (16 * i);
        }
        mask
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bytes
            .iter()
            .enumerate()
            .fold(0u64, |m, (i, &b)| m | (((b == b'\n') as u64) << i))
    }
}
