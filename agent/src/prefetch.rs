//! Cache prefetch hints for the insert path, which looks up a group of lines at once and asks for each
//! line's memory (table entry, context, value) before it reads it, so that the cache misses of a group overlap.

/// Hints the CPU to load `x`'s cache line (a no-op where there is no such instruction).
#[inline]
pub fn prefetch_read<T>(x: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is only a hint; it does not dereference the pointer and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch(x as *const i8, std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = x;
}

/// Hints the CPU to load every cache line of the `len` bytes at `x` (at most four lines: what one sample
/// touches is near the start).
#[inline]
pub fn prefetch_span(x: *const u8, len: usize) {
    const LINE: usize = 64;
    let start = x as usize & !(LINE - 1);
    let end = (x as usize).wrapping_add(len.clamp(1, 4 * LINE) - 1);
    let mut line = start;
    while line <= end {
        prefetch_read(line as *const u8);
        line += LINE;
    }
}

/// [`prefetch_span`] over a value.
#[inline]
pub fn prefetch_value<T>(x: &T) {
    prefetch_span(x as *const T as *const u8, std::mem::size_of::<T>());
}
