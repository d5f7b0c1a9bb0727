//! The document stage: the prose templates filled with the block results, the audit trail of every
//! value they print, and the Markdown read once into the typed manuscript (`ir`) that every renderer
//! reads; numbering and the transforms (audit links and appendices) work on that manuscript.

pub mod appendix;
mod build;
pub mod ir;
pub mod markdown;
pub mod numbering;
pub mod template;
pub mod trail;

pub use build::{Built, build, template_context};
