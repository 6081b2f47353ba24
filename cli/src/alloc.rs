//! The global allocator: mimalloc, asked the way the C library's `malloc`
//! is asked.
//!
//! The `mimalloc` crate's `MiMalloc` hands every request to
//! `mi_malloc_aligned`, alignment included. In the mimalloc 3 it builds,
//! a request whose block is not ready at hand, and whose size is not a
//! power of two, takes the over-allocating path: a larger block, and a
//! page marked as holding interior pointers, which slows every later free
//! on it. Rust asks for 1 to 16 byte alignment almost always, which every
//! `mi_malloc` block of at least that size already has (mimalloc's size
//! classes are multiples of 8 bytes, and of 16 from 16 bytes up), as Rust's
//! own `System` allocator assumes of the C `malloc`. So those requests go
//! to `mi_malloc`, and only larger alignments to `mi_malloc_aligned`.
//! Written here, not taken from a crate: it is the `mimalloc` crate's
//! allocator with one branch added.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every `mi_malloc` block of at least that size has.
const MIN_ALIGN: usize = 16;

/// Whether `mi_malloc` of `size` bytes is aligned enough for `align`.
fn plain(align: usize, size: usize) -> bool {
    align <= MIN_ALIGN && align <= size
}

pub struct Mimalloc;

// SAFETY: each method forwards to mimalloc's matching function, which
// returns null on failure; blocks from either path are freed by `mi_free`
// and resized by `mi_realloc*`, which accept both.
unsafe impl GlobalAlloc for Mimalloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; any size and power-of-two alignment.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_malloc(layout.size()) as *mut u8
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if plain(layout.align(), layout.size()) {
                mi::mi_zalloc(layout.size()) as *mut u8
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()) as *mut u8
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the trait's contract).
        unsafe { mi::mi_free(ptr as *mut c_void) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the trait's
        // contract); the new block keeps the alignment asked for.
        unsafe {
            if plain(layout.align(), new_size) {
                mi::mi_realloc(ptr as *mut c_void, new_size) as *mut u8
            } else {
                mi::mi_realloc_aligned(ptr as *mut c_void, new_size, layout.align()) as *mut u8
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every size from 1 to 4 KiB at every alignment up to 64 comes back
    /// aligned, holds what is written, and keeps it through a resize.
    #[test]
    fn blocks_are_aligned_and_resize_keeps_contents() {
        let a = Mimalloc;
        for align in [1, 2, 4, 8, 16, 32, 64] {
            for size in (1..=4096).filter(|s| s % align == 0) {
                let layout = Layout::from_size_align(size, align).unwrap();
                // SAFETY: a non-zero size; each block is freed once, with
                // the layout it has.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    std::ptr::write_bytes(p, 0xA5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert_eq!(q as usize % align, 0, "resized {size} align {align}");
                    assert!((0..size).all(|i| *q.add(i) == 0xA5));
                    a.dealloc(q, Layout::from_size_align(size * 3, align).unwrap());
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
