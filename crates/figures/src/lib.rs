//! galley's figures: plain input structs in, SVG text out.
