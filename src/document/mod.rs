//! The document stage: the prose templates filled with the block results, the audit trail of every
//! value they print, and the Markdown read once into the typed manuscript that every renderer reads.

pub mod template;
pub mod trail;
