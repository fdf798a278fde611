//! Payload masking (RFC 6455 §5.3), in safe code.
//!
//! The key, rotated to the payload offset, is one little-endian `u32`.
//! Payloads of 64 bytes and more are XORed 64 bytes at a time with a byte
//! pattern of the key: a plain byte loop over a fixed-size block is what
//! LLVM turns into vector loads, XORs and stores (SSE2 on the baseline
//! target, wider with `-C target-cpu`), whereas a `u128` XOR is lowered to
//! two 64-bit integer XORs. Against 16-byte `u128` steps alone this halves
//! the time for 64 KiB (4.98 → 2.32 µs) and cuts 1 KiB from 58.6 to
//! 33.2 ns (`cargo bench --bench protocol -- mask`, pinned, baseline
//! compare); unmasking had been 16 % of the server's CPU in the harness's
//! scenario c. What is left takes 16-byte `u128` steps, then 4-byte steps,
//! then at most three single bytes, so a 16-byte payload costs what it did
//! (4.7–4.8 ns; about a third of the instructions the byte-indexed key
//! setup took, benches/README.md). No alignment prologue and no `unsafe`.

/// Bytes per vectorized step of [`apply_mask_at`].
const BLOCK: usize = 64;

/// XORs `buf` with `mask`, `buf` starting at payload offset 0.
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    apply_mask_at(buf, mask, 0)
}

/// XORs `buf` with `mask`, where `buf` starts at byte `offset` of the
/// payload: "octet i of the transformed data is the XOR of octet i of the
/// original data with octet at index i modulo 4 of the masking key"
/// (RFC 6455 §5.3). Lets a payload be unmasked chunk by chunk.
#[inline]
pub fn apply_mask_at(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    // The key rotated so that its byte `offset % 4` comes first, as one
    // little-endian word (byte 0 of the buffer pairs with the low byte):
    // no per-byte index arithmetic, and the same word serves every width.
    let m32 = u32::from_le_bytes(mask).rotate_right(8 * (offset & 3) as u32);
    if buf.len() >= BLOCK {
        mask_long(buf, m32);
    } else {
        // Small payloads (most messages) take only the word steps, inlined
        // where they are used: the whole function out of line cost 322
        // instead of 299 instructions per 16-byte echo (callgrind).
        mask_words(buf, m32);
    }
}

/// [`apply_mask`] without the block step, for payloads known to be short
/// (the one-step path for 7-bit lengths): correct at any length, fastest
/// under 64 bytes. Skipping the length branch there measured 305 instead
/// of 312 instructions per 16-byte echo (callgrind, scenario a).
#[inline(always)]
pub(crate) fn apply_mask_short(buf: &mut [u8], mask: [u8; 4]) {
    mask_words(buf, u32::from_le_bytes(mask));
}

/// Payloads of at least `BLOCK` bytes: whole blocks, then the word steps.
#[inline(never)]
fn mask_long(buf: &mut [u8], m32: u32) {
    let mut pattern = [0u8; BLOCK];
    for p in pattern.chunks_exact_mut(4) {
        p.copy_from_slice(&m32.to_le_bytes());
    }
    let mut blocks = buf.chunks_exact_mut(BLOCK);
    for block in &mut blocks {
        // Byte by byte over a fixed-size block: vectorized (module docs).
        for (b, m) in block.iter_mut().zip(&pattern) {
            *b ^= m;
        }
    }
    // BLOCK is a multiple of 4: the tail starts at key index 0 again.
    mask_words(blocks.into_remainder(), m32);
}

/// 16-byte `u128` steps, 4-byte steps, then at most three bytes.
#[inline(always)]
fn mask_words(buf: &mut [u8], m32: u32) {
    let mut chunks = buf.chunks_exact_mut(16);
    if chunks.len() > 0 {
        let m64 = (m32 as u64) << 32 | m32 as u64;
        let word = (m64 as u128) << 64 | m64 as u128;
        for chunk in &mut chunks {
            let mut a = [0u8; 16];
            a.copy_from_slice(chunk);
            chunk.copy_from_slice(&(u128::from_le_bytes(a) ^ word).to_le_bytes());
        }
    }
    // 16 is a multiple of 4, so the tail starts at key index 0 again.
    let mut words = chunks.into_remainder().chunks_exact_mut(4);
    for word in &mut words {
        let mut a = [0u8; 4];
        a.copy_from_slice(word);
        word.copy_from_slice(&(u32::from_le_bytes(a) ^ m32).to_le_bytes());
    }
    for (b, m) in words.into_remainder().iter_mut().zip(m32.to_le_bytes()) {
        *b ^= m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(i + offset) % 4];
        }
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn matches_naive_every_length_and_offset() {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        for len in 0..=300 {
            for offset in 0..=7 {
                let mut a = data(len);
                let mut b = a.clone();
                apply_mask_at(&mut a, mask, offset);
                naive(&mut b, mask, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn short_path_matches_naive() {
        let mask = [0x80, 0x01, 0xfe, 0x7f];
        for len in 0..=300 {
            let mut a = data(len);
            let mut b = a.clone();
            apply_mask_short(&mut a, mask);
            naive(&mut b, mask, 0);
            assert_eq!(a, b, "len {len}");
        }
    }

    #[test]
    fn misaligned_subslices_and_big_sizes() {
        let mask = [1, 2, 0x80, 0xff];
        for &len in &[1000usize, 4096, 65_537, 65_599, 1 << 20] {
            for start in 0..8 {
                let mut a = data(len + 8);
                let mut b = a.clone();
                apply_mask(&mut a[start..start + len], mask);
                naive(&mut b[start..start + len], mask, 0);
                assert_eq!(a, b, "len {len} start {start}");
            }
        }
    }

    #[test]
    fn chunked_equals_whole() {
        let mask = [9, 8, 7, 6];
        let orig = data(1000);
        let mut whole = orig.clone();
        apply_mask(&mut whole, mask);
        for split in [1usize, 3, 5, 17, 100, 333] {
            let mut chunked = orig.clone();
            let mut pos = 0;
            while pos < chunked.len() {
                let end = (pos + split).min(chunked.len());
                apply_mask_at(&mut chunked[pos..end], mask, pos);
                pos = end;
            }
            assert_eq!(chunked, whole, "split {split}");
        }
        apply_mask(&mut whole, mask);
        assert_eq!(whole, orig);
    }
}
