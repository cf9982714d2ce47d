//! CVSS 3.1 base vectors of the synthetic vulnerabilities: the metric tables (letters
//! for vector strings, words for NVD) and the specification's base, exploitability and
//! impact scores (in tenths, rounded up as CVSS rounds).

// CVSS 3.1 metric tables: (name letters, NVD words).
pub(super) const AV: [(&str, &str); 4] = [
    ("N", "NETWORK"),
    ("A", "ADJACENT_NETWORK"),
    ("L", "LOCAL"),
    ("P", "PHYSICAL"),
];
pub(super) const AC: [(&str, &str); 2] = [("L", "LOW"), ("H", "HIGH")];
pub(super) const PR: [(&str, &str); 3] = [("N", "NONE"), ("L", "LOW"), ("H", "HIGH")];
pub(super) const UI: [(&str, &str); 2] = [("N", "NONE"), ("R", "REQUIRED")];
pub(super) const SC: [(&str, &str); 2] = [("U", "UNCHANGED"), ("C", "CHANGED")];
pub(super) const CIA: [(&str, &str); 3] = [("H", "HIGH"), ("L", "LOW"), ("N", "NONE")];
pub(super) const METRIC_CARD: [u8; 8] = [4, 2, 3, 2, 2, 3, 3, 3];
pub(super) const METRIC_NAMES: [&str; 8] = ["AV", "AC", "PR", "UI", "S", "C", "I", "A"];

pub(super) fn metric_letter(m: usize, v: u8) -> &'static str {
    let v = v as usize;
    match m {
        0 => AV[v % 4].0,
        1 => AC[v % 2].0,
        2 => PR[v % 3].0,
        3 => UI[v % 2].0,
        4 => SC[v % 2].0,
        _ => CIA[v % 3].0,
    }
}

pub(super) fn metric_word(m: usize, v: u8) -> &'static str {
    let v = v as usize;
    match m {
        0 => AV[v % 4].1,
        1 => AC[v % 2].1,
        2 => PR[v % 3].1,
        3 => UI[v % 2].1,
        4 => SC[v % 2].1,
        _ => CIA[v % 3].1,
    }
}

pub(super) fn roundup(x: f64) -> u32 {
    let i = (x * 100_000.0).round() as i64;
    if i % 10_000 == 0 {
        (i / 10_000) as u32
    } else {
        (i / 10_000 + 1) as u32
    }
}

/// CVSS 3.1 (base score, exploitability, impact), each in tenths.
pub(super) fn cvss_scores(v: &[u8; 8]) -> (u32, u32, u32) {
    let av = [0.85, 0.62, 0.55, 0.2][v[0] as usize % 4];
    let ac = [0.77, 0.44][v[1] as usize % 2];
    let changed = v[4] % 2 == 1;
    let pr = match (v[2] % 3, changed) {
        (0, _) => 0.85,
        (1, false) => 0.62,
        (1, true) => 0.68,
        (_, false) => 0.27,
        (_, true) => 0.5,
    };
    let ui = [0.85, 0.62][v[3] as usize % 2];
    let cia = |x: u8| [0.56, 0.22, 0.0][x as usize % 3];
    let iss = 1.0 - (1.0 - cia(v[5])) * (1.0 - cia(v[6])) * (1.0 - cia(v[7]));
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    let expl = 8.22 * av * ac * pr * ui;
    let base = if impact <= 0.0 {
        0
    } else if changed {
        roundup((1.08 * (impact + expl)).min(10.0))
    } else {
        roundup((impact + expl).min(10.0))
    };
    let r1 = |x: f64| (x.max(0.0) * 10.0).round() as u32;
    (base, r1(expl), r1(impact))
}

pub(super) fn severity_word(score: u32) -> (&'static str, &'static str) {
    match score {
        0 => ("NONE", "none"),
        1..=39 => ("LOW", "low"),
        40..=69 => ("MEDIUM", "moderate"),
        70..=89 => ("HIGH", "high"),
        _ => ("CRITICAL", "critical"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss_matches_reference_scores() {
        // AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H = 9.8 (3.9 / 5.9)
        assert_eq!(cvss_scores(&[0, 0, 0, 0, 0, 0, 0, 0]), (98, 39, 59));
        // AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N = 6.1 (XSS)
        assert_eq!(cvss_scores(&[0, 0, 0, 1, 1, 1, 1, 2]).0, 61);
        // AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H = 7.5
        assert_eq!(cvss_scores(&[0, 0, 0, 0, 0, 2, 2, 0]).0, 75);
        // AV:L/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N = 1.8
        assert_eq!(cvss_scores(&[2, 1, 2, 1, 0, 1, 2, 2]).0, 18);
    }
}
