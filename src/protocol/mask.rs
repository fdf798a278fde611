//! Payload masking (RFC 6455 §5.3), in safe code.
//!
//! The mask is replicated into a `u128` and XORed over 16-byte chunks with
//! `from_ne_bytes`/`to_ne_bytes`; LLVM turns that into vector loads and
//! stores (unaligned loads are fine on the targets we care about), so no
//! alignment prologue and no `unsafe` are needed. The tail is scalar.

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
    let r = offset & 3;
    let m = [
        mask[r],
        mask[(r + 1) & 3],
        mask[(r + 2) & 3],
        mask[r.wrapping_add(3) & 3],
    ];
    if buf.len() < 16 {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= m[i & 3];
        }
        return;
    }
    let word = u128::from_ne_bytes([
        m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3], m[0], m[1], m[2],
        m[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(16);
    for chunk in &mut chunks {
        let mut a = [0u8; 16];
        a.copy_from_slice(chunk);
        let v = u128::from_ne_bytes(a) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    // 16 is a multiple of 4, so the tail starts at mask index 0 again.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 3];
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
