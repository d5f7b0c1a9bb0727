//! Renderers: each writes one output format from the typed manuscript and never sees Markdown.

pub mod html;
pub mod typeset;
pub mod typst;
