//! The demo hall's vault: boxes of blank booklets and rolls of security patches, received
//! through the custody API (`POST /custody/lots`, a `LotReceived` ledger record each), and the
//! simulated vault supervisor's view of what is on the shelves.
//!
//! Lots are numbered `BOX-0001` (booklets `BK1000000-BK1000499`) and `ROLL-0001` (patches
//! `PT2000000-PT2000499`), 500 items each; a new one is delivered when the shelves run low.

use std::collections::BTreeSet;

use serde_json::json;

use super::terminal::Terminal;

/// Items in a lot.
pub const LOT_SIZE: u64 = 500;

/// Booklets or patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Blank passport booklets, in boxes.
    Booklet,
    /// Security laminate patches, on rolls.
    Patch,
}

impl Kind {
    /// The ledger's name for the kind.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Booklet => "booklet",
            Kind::Patch => "patch",
        }
    }

    /// The id of the `n`th lot (from 1).
    pub fn lot(self, n: u32) -> String {
        match self {
            Kind::Booklet => format!("BOX-{n:04}"),
            Kind::Patch => format!("ROLL-{n:04}"),
        }
    }

    /// The serial range of the `n`th lot.
    pub fn range(self, n: u32) -> String {
        let (prefix, base) = match self {
            Kind::Booklet => ("BK", 1_000_000),
            Kind::Patch => ("PT", 2_000_000),
        };
        let first = base + u64::from(n.saturating_sub(1)) * LOT_SIZE;
        format!("{prefix}{first:07}-{prefix}{:07}", first + LOT_SIZE - 1)
    }

    fn supplier(self) -> &'static str {
        match self {
            Kind::Booklet => "Specimen Security Printers (demo)",
            Kind::Patch => "Specimen Laminates (demo)",
        }
    }
}

/// Receives lot `n` of `kind` at the supervisor's terminal `t`. `Ok(false)` when the ledger
/// already has it.
///
/// # Errors
/// The controller cannot be reached or refuses for another reason.
pub async fn receive(t: &mut Terminal, kind: Kind, n: u32) -> anyhow::Result<bool> {
    let lot = kind.lot(n);
    let a = t
        .post(
            "/custody/lots",
            &json!({"lot": lot, "kind": kind.name(), "supplier": kind.supplier(), "range": kind.range(n)}),
        )
        .await
        .map_err(anyhow::Error::msg)?;
    match a.status {
        200 => Ok(true),
        409 => Ok(false),
        _ => anyhow::bail!("receiving {lot} was refused: {}", a.message()),
    }
}

/// What the vault supervisor knows of the shelves: every serial in the vault, by kind, and how
/// many lots of each kind were received.
#[derive(Debug, Default)]
pub struct Shelves {
    /// Booklets in the vault.
    pub booklets: BTreeSet<String>,
    /// Patches in the vault.
    pub patches: BTreeSet<String>,
    /// Booklet boxes received.
    pub boxes: u32,
    /// Patch rolls received.
    pub rolls: u32,
}

impl Shelves {
    /// Reads the shelves from the ledger: the reconciliation of every lot (`GET
    /// /ledger/reconcile?roll=`), until the first lot that was never received.
    ///
    /// # Errors
    /// The controller cannot be reached or refuses.
    pub async fn count(t: &mut Terminal) -> anyhow::Result<Shelves> {
        let mut s = Shelves::default();
        for kind in [Kind::Booklet, Kind::Patch] {
            let mut n = 1;
            loop {
                let a = t
                    .get(&format!("/ledger/reconcile?roll={}", kind.lot(n)))
                    .await
                    .map_err(anyhow::Error::msg)?;
                if !a.ok() {
                    anyhow::bail!("cannot read the vault: {}", a.message());
                }
                let Some(lot) = a.body["lots"].as_array().and_then(|l| l.first()) else {
                    break;
                };
                let serials = lot["in_vault"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string));
                match kind {
                    Kind::Booklet => {
                        s.booklets.extend(serials);
                        s.boxes = n;
                    }
                    Kind::Patch => {
                        s.patches.extend(serials);
                        s.rolls = n;
                    }
                }
                n += 1;
            }
        }
        Ok(s)
    }

    /// The shelf of one kind.
    pub fn of(&mut self, kind: Kind) -> &mut BTreeSet<String> {
        match kind {
            Kind::Booklet => &mut self.booklets,
            Kind::Patch => &mut self.patches,
        }
    }

    /// Takes the `n` lowest serials of `kind` off the shelf (fewer when it holds fewer).
    pub fn take(&mut self, kind: Kind, n: usize) -> Vec<String> {
        let shelf = self.of(kind);
        let out: Vec<String> = shelf.iter().take(n).cloned().collect();
        for s in &out {
            shelf.remove(s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lots_have_disjoint_ranges_the_ledger_can_parse() {
        assert_eq!(Kind::Booklet.range(1), "BK1000000-BK1000499");
        assert_eq!(Kind::Booklet.range(2), "BK1000500-BK1000999");
        assert_eq!(Kind::Patch.range(3), "PT2001000-PT2001499");
        for n in [1, 7, 400] {
            for k in [Kind::Booklet, Kind::Patch] {
                let r = crate::ledger::SerialRange::parse(&k.range(n)).expect("a range");
                assert_eq!(r.len(), LOT_SIZE);
            }
        }
    }
}
