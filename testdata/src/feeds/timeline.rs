//! The day-to-day churn of a feed: a row's revisions up to a day ([`RowState`], a
//! Bernoulli process replayed from geometric gaps), and the plan of one feed at one day
//! ([`Plan`]: which rows are withdrawn or removed, and where the added rows go).

use super::cvss::METRIC_CARD;
use super::rows::render_vuln_row;
use super::vuln::Vuln;
use super::*;

/// The per-feed mutable state of a row at a given day.
pub(super) struct RowState {
    pub(super) modified: i64,
    pub(super) text_rev: u64,
    pub(super) vector: [u8; 8],
    pub(super) extra_refs: u64,
    pub(super) withdrawn: Option<i64>,
    pub(super) revisions: u64,
}

pub(super) fn event_time(key: u64, day: u32) -> i64 {
    day_start(day) - DAY + (Sm::new(key).below(DAY as u64 - 1200) + 600) as i64
}

impl RowState {
    /// Replays the row's revisions up to `day` (and its withdrawal, if any).
    pub(super) fn at(
        seed: u64,
        kind: FeedKind,
        v: &Vuln,
        day: u32,
        withdrawn_day: Option<u32>,
    ) -> RowState {
        let mut st = RowState {
            modified: v.base_modified,
            text_rev: 0,
            vector: v.vector,
            extra_refs: 0,
            withdrawn: None,
            revisions: 0,
        };
        let start = if v.u >= ADDED_BASE {
            ((v.u - ADDED_BASE) >> 8) as u32
        } else {
            0
        };
        let stop = withdrawn_day.unwrap_or(u32::MAX).min(day.saturating_add(1));
        if start < stop {
            let ln = (1.0 - DAILY_REVISION_P).ln();
            let mut r = Sm::new(h(&[seed, TAG_BUMP, kind.tag(), v.u]));
            let mut k = u64::from(start);
            loop {
                k += r.geometric(ln);
                if k >= u64::from(stop) {
                    break;
                }
                let ev = r.next();
                st.apply(ev, k as u32);
            }
        }
        if let Some(w) = withdrawn_day {
            let t = event_time(h(&[seed, TAG_WITHDRAW, v.u, u64::from(w)]), w);
            st.withdrawn = Some(t);
            st.modified = st.modified.max(t);
        }
        st
    }

    pub(super) fn apply(&mut self, ev: u64, day: u32) {
        let mut r = Sm::new(ev);
        self.revisions += 1;
        self.modified = self.modified.max(event_time(r.next(), day));
        match r.below(100) {
            0..=44 => {
                // A rescoring: one impact/exploitability metric moves.
                let m = r.pick(&[1usize, 2, 3, 5, 6, 7]);
                let card = u64::from(METRIC_CARD[m]);
                let cur = u64::from(self.vector[m]);
                self.vector[m] = ((cur + 1 + r.below(card - 1)) % card) as u8;
                if self.vector[5] == 2 && self.vector[6] == 2 && self.vector[7] == 2 {
                    self.vector[5] = 1;
                }
            }
            45..=79 => self.text_rev = r.next() | 1,
            _ => self.extra_refs += 1,
        }
    }
}

#[derive(Clone, Copy)]
pub(super) struct Withdrawal {
    pub(super) day: u32,
    pub(super) removed: bool,
}

/// The full row plan of one feed at one day.
pub(super) struct Plan {
    pub(super) seed: u64,
    pub(super) kind: FeedKind,
    pub(super) n_base: u64,
    pub(super) day: u32,
    pub(super) withdrawn: HashMap<u64, Withdrawal>,
    /// (anchor row, universe index), sorted.
    pub(super) added: Vec<(u64, u64)>,
}

impl Plan {
    pub(super) fn new(seed: u64, kind: FeedKind, n_base: u64, day: u32) -> Plan {
        let mut withdrawn: HashMap<u64, Withdrawal> = HashMap::new();
        let mut added = Vec::new();
        if n_base > 0 {
            for k in 1..=day {
                let mut r = Sm::new(h(&[seed, TAG_WITHDRAW, kind.tag(), u64::from(k)]));
                let marks = 2 + r.below(2);
                for _ in 0..marks {
                    let u = r.below(n_base);
                    withdrawn.entry(u).or_insert(Withdrawal {
                        day: k,
                        removed: false,
                    });
                }
                let u = r.below(n_base);
                let e = withdrawn.entry(u).or_insert(Withdrawal {
                    day: k,
                    removed: true,
                });
                e.removed = true;
                let mut a = Sm::new(h(&[seed, TAG_ADD, kind.tag(), u64::from(k)]));
                let adds = 3 + a.below(4);
                for j in 0..adds {
                    added.push((a.below(n_base), ADDED_BASE + (u64::from(k) << 8) + j));
                }
            }
        }
        added.sort_unstable();
        Plan {
            seed,
            kind,
            n_base,
            day,
            withdrawn,
            added,
        }
    }

    /// Calls `f` with every row of the feed, in file order, rendered as in [`Plan::write`]
    /// (newline-terminated).
    pub(super) fn each_row(
        &self,
        mut f: impl FnMut(&RowKey, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
        let mut one = |u: u64, withdrawn: Option<u32>| -> io::Result<()> {
            let v = Vuln::new(self.seed, u);
            buf.clear();
            render_vuln_row(self.seed, self.kind, &v, self.day, withdrawn, &mut buf);
            let mut id = Vec::with_capacity(24);
            match self.kind {
                FeedKind::Osv => v.push_osv_id(&mut id),
                FeedKind::Ghsa => v.push_ghsa(&mut id),
                FeedKind::Nvd => v.push_cve(&mut id),
            }
            let key = RowKey {
                // Ids are built from ASCII parts only.
                id: String::from_utf8_lossy(&id).into_owned(),
                cve_year: v.cve_year,
            };
            f(&key, &buf)
        };
        let mut next_add = 0usize;
        for u in 0..self.n_base {
            match self.withdrawn.get(&u) {
                Some(w) if w.removed => {}
                Some(w) => one(u, Some(w.day))?,
                None => one(u, None)?,
            }
            while next_add < self.added.len() && self.added[next_add].0 == u {
                one(self.added[next_add].1, None)?;
                next_add += 1;
            }
        }
        Ok(())
    }

    /// Writes the feed, streaming through a bounded buffer. Returns bytes written.
    pub(super) fn write(&self, out: &mut impl Write) -> io::Result<u64> {
        let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut total = 0u64;
        let mut next_add = 0usize;
        for u in 0..self.n_base {
            match self.withdrawn.get(&u) {
                Some(w) if w.removed => {}
                Some(w) => render_row(self.seed, self.kind, u, self.day, Some(w.day), &mut buf),
                None => render_row(self.seed, self.kind, u, self.day, None, &mut buf),
            }
            while next_add < self.added.len() && self.added[next_add].0 == u {
                render_row(
                    self.seed,
                    self.kind,
                    self.added[next_add].1,
                    self.day,
                    None,
                    &mut buf,
                );
                next_add += 1;
            }
            if buf.len() >= (1 << 20) - 16 * 1024 {
                out.write_all(&buf)?;
                total += buf.len() as u64;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        total += buf.len() as u64;
        Ok(total)
    }
}
