//! The `decompress_request` setting's decoder: Tornado's
//! `_GzipMessageDelegate` over its `GzipDecompressor` (Tornado 6.6).

use flate2::{Decompress, FlushDecompress, Status};

/// Output handed on at a time (Tornado's default `chunk_size`).
const CHUNK: usize = 64 * 1024;

/// A request body sent with `Content-Encoding: gzip`, decompressed as it
/// arrives. As Tornado: members one after another are read in turn (RFC
/// 1952 §2.2), anything after a member that does not start another is an
/// error, as is a body that ends inside a member (an empty body is
/// empty); the decompressed size is bounded by `max` bytes. Each error is
/// Tornado's `HTTPInputError`, a 400.
pub(crate) struct Gunzip {
    /// The member being read; `None` before the first and between two.
    member: Option<Decompress>,
    out: Vec<u8>,
    total: u64,
    max: u64,
}

impl Gunzip {
    pub(crate) fn new(max: u64) -> Gunzip {
        Gunzip {
            member: None,
            out: vec![0; CHUNK],
            total: 0,
            max,
        }
    }

    /// Decompresses `input`, handing the output to `sink` in pieces of at
    /// most 64 KiB. On an error, the reason (the request is to be
    /// refused); what was handed on stays handed on.
    pub(crate) fn feed(
        &mut self,
        mut input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), String> {
        loop {
            if input.is_empty() && self.member.is_none() {
                return Ok(());
            }
            let member = match &mut self.member {
                Some(m) => m,
                None => {
                    // The start of a member (a single byte is checked so
                    // far, the second when it comes).
                    if !b"\x1f\x8b".starts_with(&input[..input.len().min(2)]) {
                        return Err("invalid gzip data: expected a gzip member".into());
                    }
                    self.member.insert(Decompress::new_gzip(15))
                }
            };
            let (in_before, out_before) = (member.total_in(), member.total_out());
            let status = member
                .decompress(input, &mut self.out, FlushDecompress::None)
                .map_err(|e| format!("invalid gzip data: {e}"))?;
            let consumed = (member.total_in() - in_before) as usize;
            let produced = (member.total_out() - out_before) as usize;
            input = &input[consumed..];
            if produced > 0 {
                self.total += produced as u64;
                if self.total > self.max {
                    return Err("decompressed body too large".into());
                }
                sink(&self.out[..produced]);
            }
            if status == Status::StreamEnd {
                self.member = None;
            } else if produced < self.out.len() && (consumed == 0 || input.is_empty()) {
                // Not stopped by the output's room: all input is taken
                // (or none can be).
                if consumed == 0 && !input.is_empty() {
                    return Err("invalid gzip data: no progress".into());
                }
                return Ok(());
            }
        }
    }

    /// The body ended: an error if it ended inside a member.
    pub(crate) fn finish(&self) -> Result<(), String> {
        match self.member {
            Some(_) => Err("invalid gzip data: the body ends inside a gzip member".into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Gunzip;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// `input` fed in pieces of `step` bytes: the output, or the error.
    fn run(input: &[u8], step: usize, max: u64) -> Result<Vec<u8>, String> {
        let mut g = Gunzip::new(max);
        let mut out = Vec::new();
        for piece in input.chunks(step.max(1)) {
            g.feed(piece, &mut |b| out.extend_from_slice(b))?;
        }
        g.finish()?;
        Ok(out)
    }

    #[test]
    fn decompresses_members_in_any_pieces_and_bounds_the_output() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut two = gz(b"a=1&b=2");
        two.extend(gz(b"&c=3"));
        for step in [1, 2, 7, 100, 1 << 20] {
            assert_eq!(run(&gz(b"a=1"), step, 100).unwrap(), b"a=1");
            assert_eq!(run(&two, step, 100).unwrap(), b"a=1&b=2&c=3");
            assert_eq!(run(&gz(&big), step, 300_000).unwrap(), big);
            assert_eq!(
                run(&gz(&big), step, 299_999).unwrap_err(),
                "decompressed body too large"
            );
            assert!(run(b"a=1", step, 100).is_err());
            let g = gz(b"a=1");
            assert!(run(&g[..g.len() - 1], step, 100).is_err(), "truncated");
            let mut junk = g.clone();
            junk.extend(b"xx");
            assert!(run(&junk, step, 100).is_err(), "trailing junk");
            let mut corrupt = g.clone();
            corrupt[12] ^= 0xff;
            corrupt[g.len() - 6] ^= 0xff;
            assert!(run(&corrupt, step, 100).is_err(), "corrupt");
        }
        assert_eq!(run(b"", 1, 100).unwrap(), b"");
    }
}
