//! The demo hall's people: the accounts for the person trying the demo (their PINs are shown
//! once and kept only as Argon2id hashes, like every account), and the simulated crew the
//! autopilot signs in as.
//!
//! The crew must sign in again after every restart, as real staff do, so their PINs are kept
//! in the data directory's `demo-crew.json` (readable by its owner only). That file is the
//! simulated people's memory, nothing more: the controller never reads it, and a real hall has
//! no such file.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hallctl_jobs::job::OperatorId;
use serde::{Deserialize, Serialize};

use crate::auth::{CONSOLE, Users, generate_pin};
use crate::config::{HallConfig, StationKind};
use crate::ledger::Role;

/// What a person does in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Duty {
    /// An account for the person trying the demo.
    Visitor,
    /// A simulated operator who prints and laminates (rotating between the two).
    Line,
    /// A simulated QC operator.
    Qc,
    /// A simulated dispatch operator.
    Dispatch,
    /// The simulated vault supervisor: receives deliveries, co-signs every count.
    Vault,
    /// The simulated floor supervisor: clears faults, inspects, acknowledges alerts.
    Floor,
    /// The simulated issuance system's account (supervisor role, as in a real hall).
    Issuance,
}

/// One account of the demo hall.
#[derive(Clone, Serialize, Deserialize)]
pub struct Member {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// What they do in the demo.
    pub duty: Duty,
    /// The PIN.
    pub pin: String,
}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("duty", &self.duty)
            .finish_non_exhaustive()
    }
}

/// The crew file: the simulated staff and their PINs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Crew {
    /// What this file is.
    pub note: String,
    /// The simulated staff.
    pub members: Vec<Member>,
}

impl Crew {
    /// The members with this duty, in id order.
    pub fn with(&self, duty: Duty) -> Vec<&Member> {
        self.members.iter().filter(|m| m.duty == duty).collect()
    }

    /// The one member with this duty.
    ///
    /// # Errors
    /// The crew has nobody for it.
    pub fn one(&self, duty: Duty) -> anyhow::Result<&Member> {
        self.members
            .iter()
            .find(|m| m.duty == duty)
            .ok_or_else(|| anyhow::anyhow!("the crew file has no {duty:?} member"))
    }

    /// The member with this id.
    pub fn get(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }
}

/// Where the crew file is.
pub fn crew_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-crew.json")
}

/// Everyone the demo hall needs: the visitor's accounts, then the crew, sized to `config`'s
/// stations (one line operator per print or laminate station, one per QC and dispatch station).
/// PINs are left empty.
pub fn roster(config: &HallConfig) -> Vec<Member> {
    let member = |id: String, name: String, role: Role, duty: Duty| Member {
        id,
        name,
        role,
        duty,
        pin: String::new(),
    };
    let mut out = vec![
        member(
            "SUP-1".into(),
            "Shift supervisor (you)".into(),
            Role::Supervisor,
            Duty::Visitor,
        ),
        member(
            "AUD-1".into(),
            "Auditor (you)".into(),
            Role::Auditor,
            Duty::Visitor,
        ),
        member(
            "ADM-1".into(),
            "Administrator (you)".into(),
            Role::Admin,
            Duty::Visitor,
        ),
    ];
    for (i, what) in ["print", "laminate", "QC", "dispatch"].iter().enumerate() {
        out.push(member(
            format!("OPR-{}", i + 1),
            format!("Operator {} (you: try a {what} terminal)", i + 1),
            Role::Operator,
            Duty::Visitor,
        ));
    }
    let count = |k: StationKind| config.stations_of(k).count();
    let line = count(StationKind::Print) + count(StationKind::Laminate);
    for i in 1..=line {
        out.push(member(
            format!("OP-{}", 100 + i),
            format!("Line operator {} (simulated)", 100 + i),
            Role::Operator,
            Duty::Line,
        ));
    }
    for i in 1..=count(StationKind::Qc) {
        out.push(member(
            format!("OP-{}", 200 + i),
            format!("QC operator {} (simulated)", 200 + i),
            Role::Operator,
            Duty::Qc,
        ));
    }
    for i in 1..=count(StationKind::Dispatch) {
        out.push(member(
            format!("OP-{}", 300 + i),
            format!("Dispatch operator {} (simulated)", 300 + i),
            Role::Operator,
            Duty::Dispatch,
        ));
    }
    out.push(member(
        "SV-401".into(),
        "Vault supervisor (simulated)".into(),
        Role::Supervisor,
        Duty::Vault,
    ));
    out.push(member(
        "SV-402".into(),
        "Floor supervisor (simulated)".into(),
        Role::Supervisor,
        Duty::Floor,
    ));
    out.push(member(
        "ISSUANCE".into(),
        "Issuance system (simulated)".into(),
        Role::Supervisor,
        Duty::Issuance,
    ));
    out
}

/// What [`enroll`] did.
#[derive(Debug)]
pub struct Enrolled {
    /// The accounts created now, with their PINs (to be shown once).
    pub created: Vec<Member>,
    /// The crew (from the file, completed with anyone created now).
    pub crew: Crew,
}

/// Creates the accounts of `roster` that do not exist yet (as [`CONSOLE`], PINs hashed by
/// [`Users::add`]), keeping the crew's PINs in the crew file first, so that no account exists
/// whose PIN the crew forgot. Blocking (Argon2).
///
/// # Errors
/// The crew file cannot be read or written; an account cannot be created; an account of the
/// crew exists but its PIN is not in the crew file (the file was deleted: reset the demo).
pub fn enroll(users: &Users, data_dir: &Path, roster: Vec<Member>) -> anyhow::Result<Enrolled> {
    let path = crew_file(data_dir);
    let mut crew = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice::<Crew>(&bytes).map_err(|e| {
            anyhow::anyhow!("{} is unreadable ({e}): reset the demo", path.display())
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Crew {
            note: "The demo hall's simulated staff and their PINs, so that the autopilot can \
                   sign them in after a restart. Demo only: a real hall never stores a PIN."
                .into(),
            members: Vec::new(),
        },
        Err(e) => return Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    };
    let mut new = Vec::new();
    for mut m in roster {
        let exists = users.get(&OperatorId::new(m.id.as_str())).is_some();
        let remembered = crew.get(&m.id).map(|c| c.pin.clone());
        match (exists, remembered) {
            (true, Some(_)) => {}
            (true, None) if m.duty == Duty::Visitor => {}
            (true, None) => anyhow::bail!(
                "{} exists but its PIN is not in {}: delete the data directory to start the \
                 demo over",
                m.id,
                path.display()
            ),
            (false, remembered) => {
                m.pin = match remembered {
                    Some(p) => p,
                    None => generate_pin(&OperatorId::new(m.id.as_str()))?,
                };
                new.push(m);
            }
        }
    }
    let added_to_crew = new
        .iter()
        .any(|m| m.duty != Duty::Visitor && crew.get(&m.id).is_none());
    if added_to_crew {
        crew.members.extend(
            new.iter()
                .filter(|m| m.duty != Duty::Visitor && crew.get(&m.id).is_none())
                .cloned()
                .collect::<Vec<_>>(),
        );
        write_private(&path, &serde_json::to_vec_pretty(&crew)?)?;
    }
    let console = OperatorId::new(CONSOLE);
    for m in &new {
        users.add(&console, &m.id, &m.name, m.role, &m.pin)?;
    }
    Ok(Enrolled { created: new, crew })
}

/// Writes `bytes` to `path` atomically, readable and writable by the owner only.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roster_fits_the_demo_hall_and_ids_are_valid() {
        let config = HallConfig::demo();
        let r = roster(&config);
        let line = r.iter().filter(|m| m.duty == Duty::Line).count();
        assert_eq!(line, 21, "10 printers + 11 laminators");
        assert_eq!(r.iter().filter(|m| m.duty == Duty::Qc).count(), 2);
        assert_eq!(r.iter().filter(|m| m.duty == Duty::Dispatch).count(), 1);
        let mut ids: Vec<&str> = r.iter().map(|m| m.id.as_str()).collect();
        for id in &ids {
            crate::auth::parse_user_id(id).expect("a valid id");
        }
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), r.len(), "ids are distinct");
    }

    #[test]
    fn a_members_debug_output_has_no_pin() {
        let mut m = roster(&HallConfig::demo()).remove(0);
        m.pin = "48291735".into();
        assert!(!format!("{m:?}").contains("48291735"));
    }
}
