//! Rendering one row of a feed as one JSON line: OSV 1.6, GitHub Security Advisory REST,
//! NVD CVE API 2.0, from a vulnerability and its state at a day.

use super::cvss::*;
use super::timeline::RowState;
use super::vuln::{Eco, Vuln};
use super::*;

/// Renders one row (one JSON line, newline-terminated) of `kind` for universe index `u`.
pub(super) fn render_row(
    seed: u64,
    kind: FeedKind,
    u: u64,
    day: u32,
    withdrawn: Option<u32>,
    out: &mut Vec<u8>,
) {
    render_vuln_row(seed, kind, &Vuln::new(seed, u), day, withdrawn, out);
}

/// [`render_row`] for an already drawn vulnerability.
pub(super) fn render_vuln_row(
    seed: u64,
    kind: FeedKind,
    v: &Vuln,
    day: u32,
    withdrawn: Option<u32>,
    out: &mut Vec<u8>,
) {
    let st = RowState::at(seed, kind, v, day, withdrawn);
    match kind {
        FeedKind::Osv => render_osv(v, &st, out),
        FeedKind::Ghsa => render_ghsa(v, &st, out),
        FeedKind::Nvd => render_nvd(v, &st, out),
    }
    out.push(b'\n');
}

pub(super) fn render_osv(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    out.s("{\"schema_version\":\"1.6.0\",\"id\":\"");
    v.push_osv_id(out);
    out.s("\",\"modified\":\"");
    out.ts(st.modified);
    out.s("\",\"published\":\"");
    out.ts(v.published);
    out.s("\",");
    if let Some(w) = st.withdrawn {
        out.s("\"withdrawn\":\"");
        out.ts(w);
        out.s("\",");
    }
    out.s("\"aliases\":[\"");
    v.push_cve(out);
    if !matches!(v.eco, Eco::Npm | Eco::Maven) {
        out.s("\",\"");
        v.push_ghsa(out);
    }
    out.s("\"],\"summary\":\"");
    v.push_summary(st, out);
    out.s("\",\"details\":\"");
    v.push_details(st, out);
    out.s("\",\"severity\":[{\"type\":\"CVSS_V3\",\"score\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\"}],\"affected\":[{\"package\":{\"ecosystem\":\"");
    out.s(v.eco.osv());
    out.s("\",\"name\":\"");
    v.push_pkg(out);
    out.s("\",\"purl\":\"");
    v.push_purl(out);
    out.s("\"},\"ranges\":[{\"type\":\"");
    out.s(if matches!(v.eco, Eco::PyPi | Eco::Maven) {
        "ECOSYSTEM"
    } else {
        "SEMVER"
    });
    out.s("\",\"events\":[{\"introduced\":\"");
    match v.intro_version() {
        Some(i) => Vuln::push_version(out, i),
        None => out.s("0"),
    }
    out.s("\"},{\"fixed\":\"");
    Vuln::push_version(out, v.fixed);
    out.s("\"}]}]");
    if v.n_versions > 0 {
        out.s(",\"versions\":[");
        let (ma, mi) = v.intro.unwrap_or((v.fixed.0, 0));
        for i in 0..v.n_versions {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            Vuln::push_version(out, (ma, mi + i / 5, i % 5));
            out.push(b'"');
        }
        out.s("]");
    }
    out.s(",\"database_specific\":{\"source\":\"https://github.com/github/advisory-database/blob/main/advisories/github-reviewed/");
    let (year, month, _) = civil_from_days(v.published.div_euclid(DAY));
    out.u(year.max(0) as u64);
    out.push(b'/');
    out.u0(u64::from(month), 2);
    out.push(b'/');
    v.push_ghsa(out);
    out.push(b'/');
    v.push_ghsa(out);
    out.s(".json\"}}],\"references\":[{\"type\":\"ADVISORY\",\"url\":\"https://nvd.nist.gov/vuln/detail/");
    v.push_cve(out);
    out.s("\"},{\"type\":\"WEB\",\"url\":\"");
    v.push_repo(out);
    out.s("/issues/");
    out.u(v.issue);
    out.s("\"},{\"type\":\"FIX\",\"url\":\"");
    v.push_commit_url(0, out);
    for i in 0..st.extra_refs {
        out.s("\"},{\"type\":\"WEB\",\"url\":\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
    }
    out.s("\"},{\"type\":\"PACKAGE\",\"url\":\"");
    v.push_repo(out);
    let (score, _, _) = cvss_scores(&st.vector);
    out.s("\"}],\"database_specific\":{\"cwe_ids\":[\"CWE-");
    out.u(u64::from(VULN_CLASSES[v.class].1));
    out.s("\"],\"severity\":\"");
    out.s(severity_word(score).0);
    out.s("\",\"github_reviewed\":true,\"github_reviewed_at\":\"");
    out.ts(v.published + 3600);
    out.s("\",\"nvd_published_at\":\"");
    out.ts(v.published + 7200);
    out.s("\"}}");
}

pub(super) fn render_ghsa(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    let (score, _, _) = cvss_scores(&st.vector);
    out.s("{\"ghsa_id\":\"");
    v.push_ghsa(out);
    out.s("\",\"cve_id\":\"");
    v.push_cve(out);
    out.s("\",\"url\":\"https://api.github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"html_url\":\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"repository_advisory_url\":null,\"summary\":\"");
    v.push_summary(st, out);
    out.s("\",\"description\":\"");
    v.push_details(st, out);
    out.s("\",\"type\":\"reviewed\",\"severity\":\"");
    out.s(severity_word(score).1);
    out.s("\",\"source_code_location\":\"");
    v.push_repo(out);
    out.s("\",\"identifiers\":[{\"value\":\"");
    v.push_ghsa(out);
    out.s("\",\"type\":\"GHSA\"},{\"value\":\"");
    v.push_cve(out);
    out.s("\",\"type\":\"CVE\"}],\"references\":[\"https://nvd.nist.gov/vuln/detail/");
    v.push_cve(out);
    out.s("\",\"");
    v.push_commit_url(1, out);
    for i in 0..st.extra_refs {
        out.s("\",\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
    }
    out.s("\",\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\"],\"published_at\":\"");
    out.ts(v.published);
    out.s("\",\"updated_at\":\"");
    out.ts(st.modified);
    out.s("\",\"github_reviewed_at\":\"");
    out.ts(v.published + 3600);
    out.s("\",\"nvd_published_at\":\"");
    out.ts(v.published + 7200);
    out.s("\",\"withdrawn_at\":");
    match st.withdrawn {
        Some(w) => {
            out.push(b'"');
            out.ts(w);
            out.push(b'"');
        }
        None => out.s("null"),
    }
    out.s(",\"vulnerabilities\":[{\"package\":{\"ecosystem\":\"");
    out.s(v.eco.github());
    out.s("\",\"name\":\"");
    v.push_pkg(out);
    out.s("\"},\"vulnerable_version_range\":\"");
    if let Some(i) = v.intro_version() {
        out.s(">= ");
        Vuln::push_version(out, i);
        out.s(", ");
    }
    out.s("< ");
    Vuln::push_version(out, v.fixed);
    out.s("\",\"first_patched_version\":\"");
    Vuln::push_version(out, v.fixed);
    out.s(
        "\",\"vulnerable_functions\":[]}],\"cvss_severities\":{\"cvss_v3\":{\"vector_string\":\"",
    );
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"score\":");
    out.tenth(score);
    out.s("},\"cvss_v4\":{\"vector_string\":null,\"score\":0.0}},\"cvss\":{\"vector_string\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"score\":");
    out.tenth(score);
    out.s("},\"cwes\":[{\"cwe_id\":\"CWE-");
    let (_, cwe, cwe_name) = VULN_CLASSES[v.class];
    out.u(u64::from(cwe));
    out.s("\",\"name\":");
    out.q(cwe_name);
    out.s("}],\"credits\":[{\"user\":{\"login\":\"");
    out.s(v.reporter);
    out.s("-sec\",\"type\":\"User\"},\"type\":\"reporter\"}],\"epss\":{\"percentage\":0.");
    out.u0(v.epss, 5);
    out.s(",\"percentile\":0.");
    out.u0((v.epss * 7 + 13_000) % 100_000, 5);
    out.s("}}");
}

pub(super) fn render_nvd(v: &Vuln, st: &RowState, out: &mut Vec<u8>) {
    out.s("{\"cve\":{\"id\":\"");
    v.push_cve(out);
    out.s("\",\"sourceIdentifier\":\"security-advisories@github.com\",\"published\":\"");
    out.ts_nvd(v.published + 7200, (v.text_key % 1000) as u32);
    out.s("\",\"lastModified\":\"");
    out.ts_nvd(st.modified, (st.modified.rem_euclid(997)) as u32);
    out.s("\",\"vulnStatus\":\"");
    if st.withdrawn.is_some() {
        out.s("Rejected\",\"cveTags\":[],\"descriptions\":[{\"lang\":\"en\",\"value\":\"** REJECT ** This candidate was withdrawn by its CNA. Further investigation showed that it was not a security issue in ");
        v.push_pkg(out);
        out.s(". Notes: none.\"}],\"metrics\":{},\"references\":[]}}");
        return;
    }
    out.s(if st.revisions > 0 {
        "Modified"
    } else {
        "Analyzed"
    });
    out.s("\",\"cveTags\":[],\"descriptions\":[{\"lang\":\"en\",\"value\":\"");
    v.push_details(st, out);
    out.s("\"},{\"lang\":\"es\",\"value\":\"");
    v.push_summary(st, out);
    let (score, expl, impact) = cvss_scores(&st.vector);
    out.s("\"}],\"metrics\":{\"cvssMetricV31\":[{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"cvssData\":{\"version\":\"3.1\",\"vectorString\":\"");
    Vuln::push_vector(&st.vector, out);
    out.s("\",\"baseScore\":");
    out.tenth(score);
    out.s(",\"baseSeverity\":\"");
    out.s(severity_word(score).0);
    const NVD_KEYS: [&str; 8] = [
        "attackVector",
        "attackComplexity",
        "privilegesRequired",
        "userInteraction",
        "scope",
        "confidentialityImpact",
        "integrityImpact",
        "availabilityImpact",
    ];
    for (m, key) in NVD_KEYS.iter().enumerate() {
        out.s("\",\"");
        out.s(key);
        out.s("\":\"");
        out.s(metric_word(m, st.vector[m]));
    }
    out.s("\"},\"exploitabilityScore\":");
    out.tenth(expl);
    out.s(",\"impactScore\":");
    out.tenth(impact);
    out.s("}]},\"weaknesses\":[{\"source\":\"nvd@nist.gov\",\"type\":\"Primary\",\"description\":[{\"lang\":\"en\",\"value\":\"CWE-");
    out.u(u64::from(VULN_CLASSES[v.class].1));
    out.s("\"}]}],\"configurations\":[{\"nodes\":[{\"operator\":\"OR\",\"negate\":false,\"cpeMatch\":[{\"vulnerable\":true,\"criteria\":\"cpe:2.3:a:");
    out.s(v.org);
    out.push(b':');
    out.s(v.p1);
    out.push(b'-');
    out.s(v.p2);
    out.s(":*:*:*:*:*:");
    out.s(v.eco.cpe_target());
    out.s(":*:*\",");
    if let Some(i) = v.intro_version() {
        out.s("\"versionStartIncluding\":\"");
        Vuln::push_version(out, i);
        out.s("\",");
    }
    out.s("\"versionEndExcluding\":\"");
    Vuln::push_version(out, v.fixed);
    out.s("\",\"matchCriteriaId\":\"");
    let [a, b] = v.cpe_uuid;
    out.hexn(a >> 32, 8);
    out.push(b'-');
    out.hexn(a >> 16, 4);
    out.push(b'-');
    out.hexn(a, 4);
    out.push(b'-');
    out.hexn(b >> 48, 4);
    out.push(b'-');
    out.hexn(b, 12);
    out.s("\"}]}]}],\"references\":[{\"url\":\"");
    v.push_commit_url(2, out);
    out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Patch\"]},{\"url\":\"https://github.com/advisories/");
    v.push_ghsa(out);
    out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Third Party Advisory\"]}");
    for i in 0..st.extra_refs {
        out.s(",{\"url\":\"");
        v.push_repo(out);
        out.s("/pull/");
        out.u(v.issue + 1 + i);
        out.s("\",\"source\":\"security-advisories@github.com\",\"tags\":[\"Issue Tracking\"]}");
    }
    out.s("]}}");
}
