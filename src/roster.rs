//! Shift rosters: which of the hall's fixed shifts an account signs in for.
//!
//! The hall works three shifts by the clock: A 06–14, B 14–22, C 22–06 UTC. An account is
//! rostered to one or more of them, or to any (the default: accounts made before rosters, and
//! the demo's, sign in at any hour). A rostered account may sign in from [`GRACE`] before one of
//! its shifts begins until [`GRACE`] after it ends; outside, sign-in is refused
//! ([`may_sign_in`], a pure decision: the caller passes the time).

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};

/// One of the hall's three shifts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Shift {
    /// 06–14 UTC.
    A,
    /// 14–22 UTC.
    B,
    /// 22–06 UTC.
    C,
}

/// How long before a shift begins and after it ends its people may still sign in.
pub const GRACE: TimeDelta = TimeDelta::minutes(30);

const SHIFT_MINUTES: i64 = 8 * 60;
const DAY_MINUTES: i64 = 24 * 60;

impl Shift {
    /// The three shifts, in order.
    pub const ALL: [Shift; 3] = [Shift::A, Shift::B, Shift::C];

    /// The shift `t` falls in.
    pub fn at(t: DateTime<Utc>) -> Shift {
        match t.hour() {
            6..=13 => Shift::A,
            14..=21 => Shift::B,
            _ => Shift::C,
        }
    }

    /// `A`, `B` or `C`.
    pub fn letter(self) -> char {
        match self {
            Shift::A => 'A',
            Shift::B => 'B',
            Shift::C => 'C',
        }
    }

    /// `A`, `B` or `C` (exactly).
    pub fn parse(s: &str) -> Option<Shift> {
        Shift::ALL
            .into_iter()
            .find(|x| s.len() == 1 && s.starts_with(x.letter()))
    }

    /// When it begins, in minutes after midnight UTC.
    fn start_minute(self) -> i64 {
        match self {
            Shift::A => 6 * 60,
            Shift::B => 14 * 60,
            Shift::C => 22 * 60,
        }
    }

    /// `A 06–14`, for messages.
    pub fn hours(self) -> String {
        let h = self.start_minute() / 60;
        format!("{} {h:02}–{:02}", self.letter(), (h + 8) % 24)
    }

    /// Whether `t` lies within the shift or within [`GRACE`] of its edges.
    pub fn covers(self, t: DateTime<Utc>) -> bool {
        let minute = i64::from(t.hour() * 60 + t.minute());
        let grace = GRACE.num_minutes();
        let since_open = (minute - (self.start_minute() - grace)).rem_euclid(DAY_MINUTES);
        since_open < SHIFT_MINUTES + 2 * grace
    }
}

/// A roster as people write it: `any`, or the letters (`A, B`).
pub fn describe(shifts: &[Shift]) -> String {
    if shifts.is_empty() {
        return "any".to_string();
    }
    shifts
        .iter()
        .map(|s| s.letter().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A roster as the API and the ledger write it: `["any"]`, or `["A", "B"]`.
pub fn names(shifts: &[Shift]) -> Vec<String> {
    if shifts.is_empty() {
        return vec!["any".to_string()];
    }
    shifts.iter().map(|s| s.letter().to_string()).collect()
}

/// Parses a roster: `["any"]` (every shift), or one or more of `A`, `B`, `C`, each once.
/// Returns the shifts in order; empty means any.
///
/// # Errors
/// What is wrong, naming the value.
pub fn parse(values: &[String]) -> Result<Vec<Shift>, String> {
    if values.is_empty() {
        return Err("name at least one shift (A, B, C), or \"any\"".to_string());
    }
    if values.iter().any(|v| v == "any") {
        return if values.len() == 1 {
            Ok(Vec::new())
        } else {
            Err("\"any\" stands alone: it already means every shift".to_string())
        };
    }
    let mut out = Vec::new();
    for v in values {
        let s = Shift::parse(v).ok_or_else(|| {
            format!("{v:?} is not a shift: the shifts are A (06–14), B (14–22), C (22–06 UTC), or \"any\"")
        })?;
        if out.contains(&s) {
            return Err(format!("shift {v} is named twice"));
        }
        out.push(s);
    }
    out.sort();
    Ok(out)
}

/// Why someone may not sign in now: it is shift `now`, and they are rostered for `shifts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotRostered {
    /// The shift at the time of the attempt.
    pub now: Shift,
    /// Their roster (never empty: an empty roster is any shift).
    pub shifts: Vec<Shift>,
}

impl std::fmt::Display for NotRostered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "not rostered now: it is shift {} UTC and the account is rostered for shift(s) {} \
             (sign-in opens {} min before a shift and closes {} min after it)",
            self.now.hours(),
            describe(&self.shifts),
            GRACE.num_minutes(),
            GRACE.num_minutes()
        )
    }
}

/// Whether someone rostered for `shifts` (empty: any) may sign in at `now`: within one of their
/// shifts, or within [`GRACE`] of its edges.
///
/// # Errors
/// [`NotRostered`], naming the shift now and theirs.
pub fn may_sign_in(shifts: &[Shift], now: DateTime<Utc>) -> Result<(), NotRostered> {
    if shifts.is_empty() || shifts.iter().any(|s| s.covers(now)) {
        return Ok(());
    }
    Err(NotRostered {
        now: Shift::at(now),
        shifts: shifts.to_vec(),
    })
}

/// When a session opened at `now` by someone rostered for `shifts` (empty: any) must end: at
/// the close of the sign-in window it was opened in (its shift's end plus [`GRACE`]; the latest,
/// when windows of two rostered shifts overlap). `None`: no roster, no limit (nor one when `now`
/// lies outside every window: [`may_sign_in`] refuses that).
pub fn session_end(shifts: &[Shift], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let secs = i64::from(now.num_seconds_from_midnight());
    let window = (SHIFT_MINUTES + 2 * GRACE.num_minutes()) * 60;
    shifts
        .iter()
        .filter_map(|s| {
            let opens = (s.start_minute() - GRACE.num_minutes()) * 60;
            let since_open = (secs - opens).rem_euclid(DAY_MINUTES * 60);
            (since_open < window).then(|| {
                now - TimeDelta::nanoseconds(i64::from(now.nanosecond()))
                    + TimeDelta::seconds(window - since_open)
            })
        })
        .max()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, 0).unwrap()
    }

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_shift_of_a_moment_follows_the_clock() {
        assert_eq!(Shift::at(at(5, 59)), Shift::C);
        assert_eq!(Shift::at(at(6, 0)), Shift::A);
        assert_eq!(Shift::at(at(13, 59)), Shift::A);
        assert_eq!(Shift::at(at(14, 0)), Shift::B);
        assert_eq!(Shift::at(at(21, 59)), Shift::B);
        assert_eq!(Shift::at(at(22, 0)), Shift::C);
        assert_eq!(Shift::at(at(0, 0)), Shift::C);
    }

    #[test]
    fn any_roster_signs_in_at_every_hour() {
        for h in 0..24 {
            assert_eq!(may_sign_in(&[], at(h, 17)), Ok(()), "{h}:17");
        }
    }

    #[test]
    fn a_rostered_shift_admits_30_minutes_either_side_and_no_more() {
        let a = [Shift::A];
        for ok in [at(5, 30), at(6, 0), at(10, 0), at(13, 59), at(14, 29)] {
            assert_eq!(may_sign_in(&a, ok), Ok(()), "{ok}");
        }
        assert_eq!(
            may_sign_in(&a, at(5, 29)),
            Err(NotRostered {
                now: Shift::C,
                shifts: vec![Shift::A]
            })
        );
        assert_eq!(
            may_sign_in(&a, at(14, 30)),
            Err(NotRostered {
                now: Shift::B,
                shifts: vec![Shift::A]
            })
        );
        // C crosses midnight: 21:30 to 06:29.
        let c = [Shift::C];
        for ok in [at(21, 30), at(23, 0), at(0, 0), at(5, 59), at(6, 29)] {
            assert_eq!(may_sign_in(&c, ok), Ok(()), "{ok}");
        }
        for no in [at(21, 29), at(6, 30), at(12, 0)] {
            assert!(may_sign_in(&c, no).is_err(), "{no}");
        }
        // Two shifts: either admits.
        let ab = [Shift::A, Shift::B];
        assert_eq!(may_sign_in(&ab, at(18, 0)), Ok(()));
        let e = may_sign_in(&ab, at(3, 0)).unwrap_err();
        assert_eq!(e.now, Shift::C);
        let msg = e.to_string();
        assert!(
            msg.contains("shift C 22–06") && msg.contains("shift(s) A, B"),
            "{msg}"
        );
    }

    #[test]
    fn a_session_ends_with_the_window_it_was_opened_in_across_midnight_too() {
        let day = |d, h, m| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
        assert_eq!(session_end(&[], at(3, 0)), None, "any shift: no limit");
        // A, signed in during the grace after it (14:25): out at 14:30, not at the end of B.
        let a = [Shift::A];
        assert_eq!(session_end(&a, at(14, 25)), Some(at(14, 30)));
        assert_eq!(session_end(&a, at(5, 30)), Some(at(14, 30)));
        assert_eq!(session_end(&a, at(14, 30)), None, "outside the window");
        // C crosses midnight: opened on the 7th at 21:40 or 23:59, or on the 8th at 03:00, it
        // ends on the 8th at 06:30.
        let c = [Shift::C];
        assert_eq!(session_end(&c, day(7, 21, 40)), Some(day(8, 6, 30)));
        assert_eq!(session_end(&c, day(7, 23, 59)), Some(day(8, 6, 30)));
        assert_eq!(session_end(&c, day(8, 0, 0)), Some(day(8, 6, 30)));
        assert_eq!(session_end(&c, day(8, 6, 29)), Some(day(8, 6, 30)));
        assert_eq!(session_end(&c, day(8, 12, 0)), None);
        // Seconds count: 06:29:59 leaves one second.
        let late = Utc.with_ymd_and_hms(2026, 12, 8, 6, 29, 59).unwrap();
        assert_eq!(session_end(&c, late), Some(day(8, 6, 30)));
        // Two rostered shifts whose windows overlap: the later end.
        assert_eq!(
            session_end(&[Shift::A, Shift::B], at(13, 50)),
            Some(at(22, 30))
        );
        assert_eq!(
            session_end(&[Shift::B, Shift::C], at(21, 45)),
            Some(day(8, 6, 30))
        );
        // Every window end is a moment may_sign_in refuses for that roster alone.
        for s in Shift::ALL {
            for h in 0..24 {
                if let Some(end) = session_end(&[s], at(h, 10)) {
                    assert!(may_sign_in(&[s], end).is_err(), "{s:?} {h}:10 -> {end}");
                    assert!(may_sign_in(&[s], end - TimeDelta::seconds(1)).is_ok());
                }
            }
        }
    }

    #[test]
    fn a_roster_is_any_or_distinct_letters_and_a_bad_value_is_named() {
        assert_eq!(parse(&strs(&["any"])), Ok(vec![]));
        assert_eq!(parse(&strs(&["B", "A"])), Ok(vec![Shift::A, Shift::B]));
        assert!(parse(&[]).unwrap_err().contains("at least one shift"));
        assert!(
            parse(&strs(&["D"]))
                .unwrap_err()
                .contains("\"D\" is not a shift")
        );
        assert!(
            parse(&strs(&["a"]))
                .unwrap_err()
                .contains("\"a\" is not a shift")
        );
        assert!(parse(&strs(&["AB"])).unwrap_err().contains("\"AB\""));
        assert!(
            parse(&strs(&["A", "A"]))
                .unwrap_err()
                .contains("named twice")
        );
        assert!(
            parse(&strs(&["any", "A"]))
                .unwrap_err()
                .contains("stands alone")
        );
        assert_eq!(names(&[]), strs(&["any"]));
        assert_eq!(names(&[Shift::A, Shift::C]), strs(&["A", "C"]));
    }
}
