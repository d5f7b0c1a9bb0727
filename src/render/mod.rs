//! Renderers: each writes one output format from the typed manuscript and never sees Markdown.

pub mod cite;
pub mod html;
pub mod typeset;
pub mod typst;
