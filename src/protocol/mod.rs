//! Placeholder for the sans-IO core (being written on branch proto).
/// permessage-deflate options (placeholder).
#[derive(Debug, Clone, Default)]
pub struct CompressionOptions {}
