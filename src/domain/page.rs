//! Keyset pagination shared by every list, independent of storage.
//!
//! Pages are always presented newest → oldest. A storage backend only has to
//! answer one question, "give me up to N items strictly before / after this
//! position, nearest first" (a [`Scan`]); [`PagePlan`] turns those answers
//! into a page and its `has_next` / `has_prev` flags.

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 10;
/// Largest page size; larger requests are clamped.
pub const MAX_LIMIT: u32 = 100;

/// A validated page size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLimit(u32);

/// Why a `limit` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("limit must be an integer from 1 to {MAX_LIMIT}")]
pub struct BadLimit;

impl Default for PageLimit {
    fn default() -> Self {
        Self(DEFAULT_LIMIT)
    }
}

impl PageLimit {
    /// Absent → default; not a positive integer → error; above the maximum → clamped.
    pub fn parse(raw: Option<&str>) -> Result<Self, BadLimit> {
        let Some(raw) = raw else {
            return Ok(Self(DEFAULT_LIMIT));
        };
        if !super::ids::is_canonical_number(raw) {
            return Err(BadLimit);
        }
        match raw.parse::<u64>() {
            Ok(0) => Err(BadLimit),
            Ok(n) => Ok(Self(u32::try_from(n.min(u64::from(MAX_LIMIT))).unwrap_or(MAX_LIMIT))),
            // More digits than a u64 holds is still a positive integer: clamp.
            Err(_) => Ok(Self(MAX_LIMIT)),
        }
    }

    /// The effective page size.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// Which way from the cursor a page goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Older than the cursor (scrolling back through history).
    #[default]
    Before,
    /// Newer than the cursor (catching up after polling or a reconnect).
    After,
}

/// Why a `direction` was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("direction must be `before` or `after`")]
pub struct BadDirection;

impl Direction {
    /// Parses `before` / `after`.
    pub fn parse(raw: Option<&str>) -> Result<Self, BadDirection> {
        match raw {
            None | Some("before") => Ok(Self::Before),
            Some("after") => Ok(Self::After),
            Some(_) => Err(BadDirection),
        }
    }
}

/// One storage read: items strictly older or newer than a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan<P> {
    /// Strictly older than the position (or from the newest), newest first.
    Older(Option<P>),
    /// Strictly newer than the position (or from the oldest), oldest first.
    Newer(Option<P>),
}

/// Something with a place in a list and an id a client can use as cursor.
pub trait Paged {
    /// The ordering key.
    type Pos: Copy;
    /// The item's ordering key.
    fn pos(&self) -> Self::Pos;
    /// The id a client sends back as `cursor`.
    fn cursor(&self) -> String;
}

/// How a list request asks for its page.
#[derive(Debug, Clone)]
pub struct PageRequest<C> {
    /// Page size.
    pub limit: PageLimit,
    /// Older or newer than the cursor.
    pub direction: Direction,
    /// The id of an item of the same list.
    pub cursor: Option<C>,
}

/// Why a page could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlisted {
    /// The list's parent (a session) does not exist in this tenant.
    NotFound,
    /// The cursor is not an item of this list.
    BadCursor,
}

/// A finished page plus its navigation flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// Items, newest first.
    pub items: Vec<T>,
    /// The effective limit.
    pub limit: u32,
    /// Older matching items exist.
    pub has_next: bool,
    /// Id to pass as `cursor` (direction `before`) for the older page.
    pub next_cursor: Option<String>,
    /// Newer matching items exist.
    pub has_prev: bool,
    /// Id to pass as `cursor` with direction `after` for the newer page.
    pub prev_cursor: Option<String>,
}

/// The reads needed for one page, in order: [`PagePlan::main_scan`] for the
/// items, then [`PagePlan::probe`] (one item) to learn whether anything lies
/// beyond the page on the other side.
#[derive(Debug, Clone)]
pub struct PagePlan<P> {
    limit: u32,
    direction: Direction,
    /// The cursor as sent, and its position once known.
    cursor: Option<(Option<P>, String)>,
}

impl<P: Copy> PagePlan<P> {
    /// Plans a page from the request; `cursor` is the resolved position and the id as sent.
    pub fn new(limit: PageLimit, direction: Direction, cursor: Option<(P, String)>) -> Self {
        Self { limit: limit.get(), direction, cursor: cursor.map(|(p, id)| (Some(p), id)) }
    }

    /// Plans a page whose main read resolves the cursor itself (the storage
    /// looks the position up inside that read). Once the read returned
    /// items, the position is not needed any more; an empty read needs it
    /// resolved ([`PagePlan::resolved`]) before its probe.
    pub fn unresolved(limit: PageLimit, direction: Direction, cursor: Option<String>) -> Self {
        Self { limit: limit.get(), direction, cursor: cursor.map(|id| (None, id)) }
    }

    /// The same plan with the cursor's position now known.
    pub fn resolved(mut self, position: P) -> Self {
        if let Some((at, _)) = &mut self.cursor {
            *at = Some(position);
        }
        self
    }

    /// Whether the page starts from a cursor.
    pub fn has_cursor(&self) -> bool {
        self.cursor.is_some()
    }

    /// The main read and how many items to ask for (one extra, to learn whether more exist).
    pub fn main_scan(&self) -> (Scan<P>, u32) {
        let at = self.cursor.as_ref().and_then(|(p, _)| *p);
        let scan = match self.direction {
            Direction::Before => Scan::Older(at),
            Direction::After => Scan::Newer(at),
        };
        (scan, self.limit + 1)
    }

    /// The one-item read that decides the flag on the far side of the page.
    /// `None` when the answer is already known (nothing can lie there).
    pub fn probe<T: Paged<Pos = P>>(&self, fetched: &[T]) -> Option<Scan<P>> {
        // Without a cursor the main read began at the near end of the list:
        // nothing lay on that side of it when it was read.
        self.cursor.as_ref()?;
        let shown = &fetched[..fetched.len().min(self.limit as usize)];
        let at = self.cursor.as_ref().and_then(|(p, _)| *p);
        // The near side is bounded by the first item shown (newest going back,
        // oldest going forward), or by the cursor on an empty page.
        let near = shown.first().map(Paged::pos).or(at);
        match self.direction {
            Direction::Before => near.map(|p| Scan::Newer(Some(p))),
            Direction::After => near.map(|p| Scan::Older(Some(p))),
        }
    }

    /// Builds the page from the main read and whether the probe found anything.
    pub fn finish<T: Paged<Pos = P>>(self, mut fetched: Vec<T>, probe_found: bool) -> Page<T> {
        let limit = self.limit as usize;
        let more_in_scan = fetched.len() > limit;
        fetched.truncate(limit);
        let (has_next, has_prev) = match self.direction {
            Direction::Before => (more_in_scan, probe_found),
            Direction::After => {
                fetched.reverse();
                (probe_found, more_in_scan)
            }
        };
        // An empty page has no items to point at; the request cursor is the boundary.
        let fallback = self.cursor.map(|(_, id)| id);
        let next_cursor = has_next.then(|| fetched.last().map(Paged::cursor).or_else(|| fallback.clone())).flatten();
        let prev_cursor = has_prev.then(|| fetched.first().map(Paged::cursor).or(fallback)).flatten();
        Page { items: fetched, limit: self.limit, has_next, next_cursor, has_prev, prev_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Item(i64);

    impl Paged for Item {
        type Pos = i64;
        fn pos(&self) -> i64 {
            self.0
        }
        fn cursor(&self) -> String {
            self.0.to_string()
        }
    }

    /// An in-memory list 1..=n answering scans like a backend would.
    fn scan(n: i64, s: Scan<i64>, take: u32) -> Vec<Item> {
        let all: Vec<Item> = (1..=n).map(Item).collect();
        let take = take as usize;
        match s {
            Scan::Older(at) => all.iter().rev().filter(|i| at.is_none_or(|a| i.0 < a)).take(take).copied().collect(),
            Scan::Newer(at) => all.iter().filter(|i| at.is_none_or(|a| i.0 > a)).take(take).copied().collect(),
        }
    }

    fn page(n: i64, limit: &str, dir: Direction, cursor: Option<i64>) -> Page<Item> {
        let plan = PagePlan::new(PageLimit::parse(Some(limit)).unwrap(), dir, cursor.map(|c| (c, c.to_string())));
        let (s, take) = plan.main_scan();
        let fetched = scan(n, s, take);
        let found = plan.probe(&fetched).is_some_and(|p| !scan(n, p, 1).is_empty());
        plan.finish(fetched, found)
    }

    #[test]
    fn limit_defaults_clamps_and_rejects() {
        assert_eq!(PageLimit::parse(None).unwrap().get(), 10);
        assert_eq!(PageLimit::parse(Some("250")).unwrap().get(), 100);
        assert_eq!(PageLimit::parse(Some("99999999999999999999999")).unwrap().get(), 100);
        for bad in ["0", "-1", "1.5", "ten", "", "010"] {
            assert_eq!(PageLimit::parse(Some(bad)), Err(BadLimit), "{bad}");
        }
    }

    #[test]
    fn first_page_is_the_newest_items() {
        let p = page(25, "10", Direction::Before, None);
        assert_eq!(p.items.first(), Some(&Item(25)));
        assert_eq!(p.items.last(), Some(&Item(16)));
        assert!(p.has_next && !p.has_prev);
        assert_eq!(p.next_cursor.as_deref(), Some("16"));
        assert_eq!(p.prev_cursor, None);
    }

    #[test]
    fn walking_back_visits_everything_once() {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = page(25, "7", Direction::Before, cursor);
            seen.extend(p.items.iter().map(|i| i.0));
            if !p.has_next {
                assert!(p.next_cursor.is_none());
                break;
            }
            cursor = p.next_cursor.map(|c| c.parse().unwrap());
        }
        assert_eq!(seen, (1..=25).rev().collect::<Vec<_>>());
    }

    #[test]
    fn walking_forward_catches_up_in_order_shown_newest_first() {
        let p = page(25, "10", Direction::After, Some(20));
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), vec![25, 24, 23, 22, 21]);
        assert!(!p.has_prev && p.has_next);
        assert_eq!(p.next_cursor.as_deref(), Some("21"));
        let p = page(25, "3", Direction::After, Some(20));
        assert_eq!(p.items.iter().map(|i| i.0).collect::<Vec<_>>(), vec![23, 22, 21]);
        assert!(p.has_prev);
        assert_eq!(p.prev_cursor.as_deref(), Some("23"));
    }

    #[test]
    fn empty_page_points_back_at_the_request_cursor() {
        let p = page(5, "10", Direction::After, Some(5));
        assert!(p.items.is_empty() && !p.has_prev && p.has_next);
        assert_eq!(p.next_cursor.as_deref(), Some("5"));
        let p = page(0, "10", Direction::Before, None);
        assert!(!p.has_next && !p.has_prev && p.next_cursor.is_none() && p.prev_cursor.is_none());
    }
}
