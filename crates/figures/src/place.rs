//! Placing a box (legend, annotation) inside a panel where it collides with nothing drawn.

/// An axis-aligned rectangle in pt, y downwards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rect {
    pub x0: f64,
    pub y0: f64,
    pub x1: f64,
    pub y1: f64,
}

impl Rect {
    pub fn new(a: (f64, f64), b: (f64, f64)) -> Rect {
        Rect {
            x0: a.0.min(b.0),
            y0: a.1.min(b.1),
            x1: a.0.max(b.0),
            y1: a.1.max(b.1),
        }
    }

    pub fn inflate(&self, d: f64) -> Rect {
        Rect {
            x0: self.x0 - d,
            y0: self.y0 - d,
            x1: self.x1 + d,
            y1: self.y1 + d,
        }
    }

    pub fn intersects(&self, o: &Rect) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && self.y0 < o.y1 && o.y0 < self.y1
    }

    pub fn width(&self) -> f64 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> f64 {
        self.y1 - self.y0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Corner {
    TopRight,
    TopLeft,
    BottomRight,
    BottomLeft,
}

fn at_corner(region: &Rect, w: f64, h: f64, corner: Corner) -> Rect {
    let (x0, y0) = match corner {
        Corner::TopRight => (region.x1 - w, region.y0),
        Corner::TopLeft => (region.x0, region.y0),
        Corner::BottomRight => (region.x1 - w, region.y1 - h),
        Corner::BottomLeft => (region.x0, region.y1 - h),
    };
    Rect {
        x0,
        y0,
        x1: x0 + w,
        y1: y0 + h,
    }
}

fn free(candidate: &Rect, obstacles: &[Rect], clearance: f64) -> bool {
    let grown = candidate.inflate(clearance);
    !obstacles.iter().any(|o| o.intersects(&grown))
}

/// A `w` × `h` box inside `region` that keeps `clearance` pt from every obstacle: the first
/// free corner in `prefs`, else the free grid position closest to a preferred corner (earlier
/// corners preferred), else `None`.
pub(crate) fn place(
    region: &Rect,
    w: f64,
    h: f64,
    obstacles: &[Rect],
    prefs: &[Corner],
    clearance: f64,
) -> Option<Rect> {
    if w > region.width() || h > region.height() {
        return None;
    }
    for &corner in prefs {
        let c = at_corner(region, w, h, corner);
        if free(&c, obstacles, clearance) {
            return Some(c);
        }
    }
    const STEP: f64 = 2.0;
    let nx = ((region.width() - w) / STEP).floor() as usize;
    let ny = ((region.height() - h) / STEP).floor() as usize;
    let mut best: Option<(f64, Rect)> = None;
    for iy in 0..=ny {
        for ix in 0..=nx {
            let x0 = region.x0 + ix as f64 * STEP;
            let y0 = region.y0 + iy as f64 * STEP;
            let c = Rect {
                x0,
                y0,
                x1: x0 + w,
                y1: y0 + h,
            };
            if !free(&c, obstacles, clearance) {
                continue;
            }
            let cost = prefs
                .iter()
                .enumerate()
                .map(|(rank, &corner)| {
                    let target = at_corner(region, w, h, corner);
                    (target.x0 - c.x0).hypot(target.y0 - c.y0) + 40.0 * rank as f64
                })
                .fold(f64::INFINITY, f64::min);
            if best.as_ref().is_none_or(|(b, _)| cost < *b) {
                best = Some((cost, c));
            }
        }
    }
    best.map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_free_corner_then_nearest_free_spot() {
        let region = Rect::new((0.0, 0.0), (100.0, 100.0));
        let top_right_blocked = [Rect::new((60.0, 0.0), (100.0, 30.0))];
        let r = place(
            &region,
            30.0,
            10.0,
            &top_right_blocked,
            &[Corner::TopRight],
            2.0,
        )
        .unwrap();
        assert!(!r.inflate(2.0).intersects(&top_right_blocked[0]));
        assert!(r.x1 > 90.0, "stays near the right: {r:?}");
        let all = [Rect::new((0.0, 0.0), (100.0, 100.0))];
        assert!(place(&region, 30.0, 10.0, &all, &[Corner::TopRight], 2.0).is_none());
    }
}
