//! Writes every figure kind (from `galley_figures::samples`) as SVG into a folder:
//! `cargo run -p galley-figures --example gallery -- /tmp/gallery`
//!
//! For a faithful preview, the folder also receives the embedded fonts and a fontconfig file
//! naming only them, so `FONTCONFIG_FILE=/tmp/gallery/fonts.conf rsvg-convert …` renders with
//! the PDF's fonts without touching the system's.

use std::path::PathBuf;

use galley_figures::{forest_plot, histogram, kaplan_meier, love_plot, samples};

fn main() {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "gallery".to_string()),
    );
    std::fs::create_dir_all(dir.join("fonts")).expect("create the output folder");
    let figures = [
        (
            "km_two_arms",
            kaplan_meier(&samples::kaplan_meier_two_arms()),
        ),
        (
            "km_four_groups",
            kaplan_meier(&samples::kaplan_meier_four_groups()),
        ),
        ("love", love_plot(&samples::love())),
        ("forest", forest_plot(&samples::forest())),
        ("histogram", histogram(&samples::histogram())),
    ];
    for (name, svg) in figures {
        match svg {
            Ok(svg) => {
                let path = dir.join(format!("{name}.svg"));
                std::fs::write(&path, svg).expect("write the figure");
                println!("{}", path.display());
            }
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    for (i, font) in typst_assets::fonts().enumerate() {
        std::fs::write(dir.join("fonts").join(format!("font{i:02}.otf")), font)
            .expect("write a font");
    }
    let conf = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE fontconfig SYSTEM \"fonts.dtd\">\n<fontconfig>\n  <dir>{}</dir>\n  <cachedir>{}</cachedir>\n</fontconfig>\n",
        dir.join("fonts")
            .canonicalize()
            .expect("font folder")
            .display(),
        dir.join("fontcache").display()
    );
    std::fs::write(dir.join("fonts.conf"), conf).expect("write fonts.conf");
}
