//! Payload masking (RFC 6455 §5.3), in safe code.
//!
//! The key, rotated to the payload offset, is one little-endian `u32`,
//! replicated into a `u128` and XORed over 16-byte chunks with
//! `from_le_bytes`/`to_le_bytes`; LLVM turns that into vector loads and
//! stores (unaligned loads are fine on the targets we care about), so no
//! alignment prologue and no `unsafe` are needed. The tail takes 4-byte
//! steps, then at most three single bytes: a 16-byte
//! payload costs about a third of the instructions the byte-indexed key
//! setup did (callgrind, benches/README.md).

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
        for len in 0..=100 {
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
    fn misaligned_subslices_and_big_sizes() {
        let mask = [1, 2, 0x80, 0xff];
        for &len in &[1000usize, 4096, 65_537, 1 << 20] {
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
