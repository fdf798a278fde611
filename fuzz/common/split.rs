//! Chunking shared by the fuzz targets: splits an input at offsets derived
//! from a seed taken from the input itself, so a crash reproduces from the
//! bytes alone.

/// Lengths of consecutive chunks covering `len` bytes; every chunk is
/// non-empty. Small chunks (1–8 bytes) are frequent so that headers and
/// length fields get cut in the middle; some chunks are larger.
#[allow(dead_code)]
pub fn chunk_lengths(seed: u64, len: usize) -> Vec<usize> {
    let mut s = seed ^ 0x9e37_79b9_7f4a_7c15 ^ (len as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    if s == 0 {
        s = 1;
    }
    let mut next = move || {
        // xorshift64*
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let mut out = Vec::new();
    let mut left = len;
    while left > 0 {
        let r = next();
        let n = match r % 4 {
            0 | 1 => 1 + (r >> 8) as usize % 8,
            2 => 1 + (r >> 8) as usize % 64,
            _ => 1 + (r >> 8) as usize % 1024,
        };
        let n = n.min(left);
        out.push(n);
        left -= n;
    }
    out
}

/// The prefixes' end offsets for `chunk_lengths`.
#[allow(dead_code)]
pub fn split_points(seed: u64, len: usize) -> Vec<usize> {
    let mut end = 0;
    chunk_lengths(seed, len)
        .into_iter()
        .map(|n| {
            end += n;
            end
        })
        .collect()
}
