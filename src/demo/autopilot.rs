//! The autopilot: the demo hall's simulated staff, who run the line through the HTTP API only,
//! as people at terminals would.
//!
//! - **Line operators** sit one per print or laminate station (one station each): they open a
//!   custody session, get booklets or patches issued with a two-person count (their own PIN and
//!   the vault supervisor's), scan the next item when the line assigns work (never naming a job:
//!   the line chooses), confirm, or now and then report a defect. Every few hall-minutes a
//!   printer and a laminator operator swap stations (both return what they hold, counted by
//!   two, close their sessions and sign out first), so the booklets someone printed are often
//!   waiting for lamination while they sit at a laminator: the line must give them to someone
//!   else.
//! - **QC operators** read the MRZ back with the station's (simulated) reader; **dispatch**
//!   packs and closes bags.
//! - **The vault supervisor** co-signs every count and receives a new box or roll when the
//!   shelves run low. **The floor supervisor** walks to a faulted device and clears it,
//!   inspects jobs left in a step by a restart, walks to each defect report and approves the
//!   spoilage with the items scanned in hand, and acknowledges device alerts.
//! - **Ending the shift** (Ctrl-C): every step on a device is finished, every session returns
//!   what it holds and closes balanced, everyone signs out. A restart seats each operator whose
//!   session was left open back at that station first.
//!
//! What the staff see is the line's snapshot (`GET /line`, what the hall display shows) and
//! their own station (`GET /stations/{id}`, the terminal's screen).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

use super::dice::Dice;
use super::issuance::read_mrz;
use super::staff::{Crew, Duty, Member};
use super::terminal::Terminal;
use super::vault::{self, Kind, Shelves};
use crate::config::{HallConfig, StationKind};

/// Hall time an operator takes to scan an item.
const SCAN: Duration = Duration::from_secs(3);
/// Hall time an operator takes to look at a finished step and confirm it.
const CONFIRM: Duration = Duration::from_secs(2);
/// Hall time of a QC check (the reader reads the MRZ, the operator looks at the page).
const QC: Duration = Duration::from_secs(3);
/// Hall time to pack a booklet into its bag.
const PACK: Duration = Duration::from_secs(2);
/// Hall time the floor supervisor takes to reach a faulted device.
const WALK: Duration = Duration::from_secs(45);
/// Hall time between two station swaps (one printer and one laminator operator).
const ROTATION: Duration = Duration::from_secs(15 * 60);
/// Items issued to a new session, and at each refill.
const ISSUE: usize = 20;
/// A session with this many items left asks for more.
const REFILL_AT: u64 = 3;
/// Below this many items of a kind on the shelves, a new lot is delivered.
const LOW_STOCK: usize = 300;
/// A bag with this many passports is closed for the courier.
const BAG_SIZE: usize = 10;
/// Defect rates: print, lamination, MRZ misread at QC.
const DEFECTS: [f64; 3] = [0.004, 0.003, 0.002];

/// What the autopilot did, for the progress line.
#[derive(Debug, Default)]
pub struct Stats {
    /// Passports packed for dispatch.
    pub dispatched: AtomicU64,
    /// Defects reported or found (print, lamination, QC).
    pub defects: AtomicU64,
    /// Device faults cleared by the floor supervisor.
    pub faults_cleared: AtomicU64,
    /// Jobs inspected after a restart.
    pub inspections: AtomicU64,
    /// Station swaps.
    pub handovers: AtomicU64,
    /// Lots delivered to the vault.
    pub deliveries: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A station as the staff know it.
#[derive(Debug, Clone)]
struct Station {
    id: String,
    kind: StationKind,
}

impl Station {
    fn custody(&self) -> Option<Kind> {
        match self.kind {
            StationKind::Print => Some(Kind::Booklet),
            StationKind::Laminate => Some(Kind::Patch),
            _ => None,
        }
    }
}

/// The vault's desk: the vault supervisor's terminal and what they know of the shelves.
struct VaultDesk {
    terminal: Terminal,
    shelves: Shelves,
}

/// What every simulated person shares.
struct Ctx {
    addr: SocketAddr,
    speed: f64,
    issuing_state: String,
    vault_supervisor: Member,
    display: watch::Receiver<Arc<Value>>,
    desk: Mutex<VaultDesk>,
    /// The vault supervisor co-signs one count at a time (each signature is an Argon2 check:
    /// two dozen at once would starve the device polls on a small machine).
    counting: Mutex<()>,
    /// Two people at a time type their PIN at a terminal, for the same reason.
    signing: tokio::sync::Semaphore,
    stats: Arc<Stats>,
}

impl Ctx {
    /// Hall time `d` (give or take a third) in real time.
    fn hall(&self, d: Duration, dice: &mut Dice) -> Duration {
        dice.around(d).div_f64(self.speed)
    }

    /// Takes `n` items of `kind` off the shelves for a count (a delivery first if they run
    /// low).
    async fn take(&self, kind: Kind, n: usize) -> Vec<String> {
        let mut desk = self.desk.lock().await;
        if desk.shelves.of(kind).len() < LOW_STOCK.max(n) {
            let next = match kind {
                Kind::Booklet => desk.shelves.boxes + 1,
                Kind::Patch => desk.shelves.rolls + 1,
            };
            match deliver(&mut desk, kind, next).await {
                Ok(()) => {
                    bump(&self.stats.deliveries);
                    println!(
                        "vault: {} received ({} {})",
                        kind.lot(next),
                        vault::LOT_SIZE,
                        match kind {
                            Kind::Booklet => "booklets",
                            Kind::Patch => "patches",
                        }
                    );
                }
                Err(e) => tracing::warn!("vault: no delivery of {}: {e}", kind.lot(next)),
            }
        }
        desk.shelves.take(kind, n)
    }

    /// Puts items back on the shelves (returned by a session).
    async fn put_back(&self, kind: Kind, serials: &[String]) {
        let mut desk = self.desk.lock().await;
        desk.shelves.of(kind).extend(serials.iter().cloned());
    }

    /// Counts the shelves again from the ledger (after a refused count).
    async fn recount(&self) {
        let mut desk = self.desk.lock().await;
        match Shelves::count(&mut desk.terminal).await {
            Ok(s) => desk.shelves = s,
            Err(e) => tracing::warn!("vault: recount failed: {e}"),
        }
    }
}

async fn deliver(desk: &mut VaultDesk, kind: Kind, n: u32) -> anyhow::Result<()> {
    vault::receive(&mut desk.terminal, kind, n).await?;
    let range = crate::ledger::SerialRange::parse(&kind.range(n))
        .ok_or_else(|| anyhow::anyhow!("bad range {}", kind.range(n)))?;
    desk.shelves.of(kind).extend(range.serials().map(|s| s.0));
    match kind {
        Kind::Booklet => desk.shelves.boxes = n,
        Kind::Patch => desk.shelves.rolls = n,
    }
    Ok(())
}

/// One seated operator: who, and how to ask them to leave.
struct Seat {
    member: Member,
    leave: watch::Sender<bool>,
    task: JoinHandle<Result<(), String>>,
}

/// The running autopilot.
pub struct Autopilot {
    seats: Arc<Mutex<BTreeMap<String, Seat>>>,
    stop: watch::Sender<bool>,
    background: Vec<JoinHandle<()>>,
}

/// How the shift ended.
#[derive(Debug)]
pub struct ShiftEnd {
    /// Operators who left their station with everything accounted for.
    pub left_cleanly: usize,
    /// Those who could not, and why.
    pub problems: Vec<String>,
}

impl Autopilot {
    /// Seats the crew and starts the supervisors. Stations whose custody session was left open
    /// (a stop without ending the shift) get that session's operator back.
    ///
    /// # Errors
    /// The controller cannot be reached, or the supervisors cannot sign in.
    pub async fn start(
        addr: SocketAddr,
        crew: &Crew,
        config: &HallConfig,
        speed: f64,
        stats: Arc<Stats>,
    ) -> anyhow::Result<Autopilot> {
        let floor = crew.one(Duty::Floor)?.clone();
        let vault_supervisor = crew.one(Duty::Vault)?.clone();
        // The hall display, as the floor supervisor has it.
        let mut eyes = Terminal::new(addr, floor.clone(), None);
        let first = eyes.get("/line").await.map_err(anyhow::Error::msg)?;
        if !first.ok() {
            anyhow::bail!("cannot read the line: {}", first.message());
        }
        let (display_tx, display) = watch::channel(Arc::new(first.body));
        let mut desk_terminal = Terminal::new(addr, vault_supervisor.clone(), None);
        let shelves = Shelves::count(&mut desk_terminal).await?;
        let ctx = Arc::new(Ctx {
            addr,
            speed,
            issuing_state: config.hall.issuing_state.clone(),
            vault_supervisor,
            display,
            desk: Mutex::new(VaultDesk {
                terminal: desk_terminal,
                shelves,
            }),
            counting: Mutex::new(()),
            signing: tokio::sync::Semaphore::new(2),
            stats,
        });
        let stations: Vec<Station> = config
            .stations
            .iter()
            .filter(|s| s.kind.stage().is_some())
            .map(|s| Station {
                id: s.id.as_str().to_string(),
                kind: s.kind,
            })
            .collect();
        let plan = seating(&ctx, crew, &stations).await?;
        let poll = if speed >= 10.0 {
            Duration::from_millis(100)
        } else {
            Duration::from_millis(250)
        };
        let mut background = vec![tokio::spawn(async move {
            loop {
                sleep(poll).await;
                if let Ok(a) = eyes.get("/line").await
                    && a.ok()
                {
                    display_tx.send_replace(Arc::new(a.body));
                }
            }
        })];
        let seats = Arc::new(Mutex::new(BTreeMap::new()));
        {
            let mut s = seats.lock().await;
            for (station, member) in plan {
                s.insert(station.id.clone(), seat(&ctx, station, member));
            }
        }
        let (stop, stop_rx) = watch::channel(false);
        background.push(tokio::spawn(floor_supervisor(ctx.clone(), floor)));
        background.push(tokio::spawn(rotation(
            ctx,
            seats.clone(),
            stations,
            stop_rx,
        )));
        Ok(Autopilot {
            seats,
            stop,
            background,
        })
    }

    /// Ends the shift: every operator finishes the step on their device, returns what they
    /// hold (counted by two), closes their session and signs out; within `within`.
    pub async fn end_shift(self, within: Duration) -> ShiftEnd {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + within;
        let mut seats = match timeout(within, self.seats.lock()).await {
            Ok(s) => s,
            Err(_) => {
                return ShiftEnd {
                    left_cleanly: 0,
                    problems: vec!["a station swap did not finish in time".into()],
                };
            }
        };
        for s in seats.values() {
            let _ = s.leave.send(true);
        }
        let mut end = ShiftEnd {
            left_cleanly: 0,
            problems: Vec::new(),
        };
        for (station, s) in std::mem::take(&mut *seats) {
            match tokio::time::timeout_at(deadline, s.task).await {
                Ok(Ok(Ok(()))) => end.left_cleanly += 1,
                Ok(Ok(Err(e))) => end.problems.push(format!("{station}: {e}")),
                Ok(Err(e)) => end.problems.push(format!("{station}: {e}")),
                Err(_) => end.problems.push(format!(
                    "{station}: {} did not finish in time (its session stays open; a job in a \
                     step waits for inspection after the restart)",
                    s.member.id
                )),
            }
        }
        for t in &self.background {
            t.abort();
        }
        end
    }
}

/// Who sits where: the operator of a session left open goes back to that station; everyone
/// else in order (printers first, then laminators).
async fn seating(
    ctx: &Arc<Ctx>,
    crew: &Crew,
    stations: &[Station],
) -> anyhow::Result<Vec<(Station, Member)>> {
    let snap = ctx.display.borrow().clone();
    let mut open: HashMap<String, String> = HashMap::new();
    let mut desk = ctx.desk.lock().await;
    for st in snap["stations"].as_array().into_iter().flatten() {
        let (Some(id), Some(session)) = (st["id"].as_str(), st["session"].as_str()) else {
            continue;
        };
        let a = desk
            .terminal
            .get(&format!("/custody/sessions/{session}"))
            .await
            .map_err(anyhow::Error::msg)?;
        if let Some(op) = a.body["operator"].as_str() {
            open.insert(id.to_string(), op.to_string());
        }
    }
    drop(desk);
    let mut plan = Vec::new();
    for duty in [Duty::Line, Duty::Qc, Duty::Dispatch] {
        let kinds: &[StationKind] = match duty {
            Duty::Line => &[StationKind::Print, StationKind::Laminate],
            Duty::Qc => &[StationKind::Qc],
            _ => &[StationKind::Dispatch],
        };
        let mut free: Vec<Member> = crew
            .with(duty)
            .into_iter()
            .filter(|m| !open.values().any(|o| *o == m.id))
            .cloned()
            .collect();
        free.reverse();
        for kind in kinds {
            for st in stations.iter().filter(|s| s.kind == *kind) {
                match open.get(&st.id) {
                    Some(op) => match crew.get(op).filter(|m| m.duty == duty) {
                        Some(m) => plan.push((st.clone(), m.clone())),
                        None => println!(
                            "autopilot: {} is left alone: {op}'s custody session is open there",
                            st.id
                        ),
                    },
                    None => {
                        if let Some(m) = free.pop() {
                            plan.push((st.clone(), m));
                        }
                    }
                }
            }
        }
    }
    Ok(plan)
}

fn seat(ctx: &Arc<Ctx>, station: Station, member: Member) -> Seat {
    let (leave, leave_rx) = watch::channel(false);
    let operator = Operator {
        ctx: ctx.clone(),
        terminal: Terminal::new(ctx.addr, member.clone(), Some(station.id.clone())),
        dice: Dice::from_clock(station.id.len() as u64 * 7919 + member.id.len() as u64),
        station,
        session: None,
        session_shift: None,
        display: ctx.display.clone(),
        leave: leave_rx,
        warned: false,
        misprinted: None,
    };
    Seat {
        member,
        leave,
        task: tokio::spawn(operator.run()),
    }
}

/// Every so often, one printer operator and one laminator operator swap stations.
async fn rotation(
    ctx: Arc<Ctx>,
    seats: Arc<Mutex<BTreeMap<String, Seat>>>,
    stations: Vec<Station>,
    mut stop: watch::Receiver<bool>,
) {
    let printers: Vec<&Station> = stations
        .iter()
        .filter(|s| s.kind == StationKind::Print)
        .collect();
    let laminators: Vec<&Station> = stations
        .iter()
        .filter(|s| s.kind == StationKind::Laminate)
        .collect();
    if printers.is_empty() || laminators.is_empty() {
        return;
    }
    let mut dice = Dice::from_clock(17);
    let mut turn = 0usize;
    loop {
        let wait = ctx.hall(ROTATION, &mut dice).max(Duration::from_secs(5));
        tokio::select! {
            () = sleep(wait) => {}
            _ = stop.changed() => return,
        }
        let mut map = seats.lock().await;
        if *stop.borrow() {
            return;
        }
        let p = printers[turn % printers.len()];
        let l = laminators[turn % laminators.len()];
        turn += 1;
        let (Some(a), Some(b)) = (map.remove(&p.id), map.remove(&l.id)) else {
            continue;
        };
        let _ = a.leave.send(true);
        let _ = b.leave.send(true);
        let (ra, rb) = (a.task.await, b.task.await);
        let clean = matches!(ra, Ok(Ok(()))) && matches!(rb, Ok(Ok(())));
        if clean {
            println!(
                "handover: {} moves from {} to {}, {} from {} to {}",
                a.member.id, p.id, l.id, b.member.id, l.id, p.id
            );
            bump(&ctx.stats.handovers);
            map.insert(l.id.clone(), seat(&ctx, l.clone(), a.member));
            map.insert(p.id.clone(), seat(&ctx, p.clone(), b.member));
        } else {
            tracing::warn!(
                "station swap {} / {} did not complete ({ra:?}, {rb:?}): both stay",
                p.id,
                l.id
            );
            map.insert(p.id.clone(), seat(&ctx, p.clone(), a.member));
            map.insert(l.id.clone(), seat(&ctx, l.clone(), b.member));
        }
    }
}

/// The floor supervisor: clears faulted devices (after walking there), inspects jobs a restart
/// left in a step, acknowledges device alerts.
async fn floor_supervisor(ctx: Arc<Ctx>, me: Member) {
    let mut t = Terminal::new(ctx.addr, me, None);
    let mut display = ctx.display.clone();
    let mut dice = Dice::from_clock(4242);
    // Device → when the supervisor gets there.
    let mut walking: HashMap<String, Instant> = HashMap::new();
    let mut acked: HashMap<String, Instant> = HashMap::new();
    let mut inspected_at = Instant::now() - Duration::from_secs(60);
    let mut spoilage_at = Instant::now();
    // Spoil report (its first serial) → when the supervisor gets to the station.
    let mut walking_to_spoilage: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::select! {
            r = display.changed() => if r.is_err() { return },
            () = sleep(Duration::from_millis(500)) => {}
        }
        let snap = display.borrow_and_update().clone();
        let now = Instant::now();
        for st in snap["stations"].as_array().into_iter().flatten() {
            let Some(device) = st["device"].as_str() else {
                continue;
            };
            if st["readiness"] != "faulted" {
                walking.remove(device);
                continue;
            }
            let arrive = *walking
                .entry(device.to_string())
                .or_insert_with(|| now + ctx.hall(WALK, &mut dice));
            if now < arrive {
                continue;
            }
            walking.insert(device.to_string(), now + Duration::from_secs(2));
            match t
                .post(&format!("/devices/{device}/clear-fault"), &json!({}))
                .await
            {
                Ok(a) if a.ok() => {
                    bump(&ctx.stats.faults_cleared);
                    println!("floor supervisor: cleared the fault of {device}");
                }
                Ok(a) => tracing::debug!("clear-fault {device}: {}", a.message()),
                Err(e) => tracing::warn!("floor supervisor: {e}"),
            }
        }
        if snap["needs_inspection"].as_u64().unwrap_or(0) > 0
            && now.duration_since(inspected_at) > Duration::from_secs(1)
        {
            inspected_at = now;
            inspect(&ctx, &mut t).await;
        }
        if now.duration_since(spoilage_at) > Duration::from_secs(2) {
            spoilage_at = now;
            approve_spoilage(&ctx, &mut t, &mut dice, &mut walking_to_spoilage).await;
        }
        for a in snap["alerts"].as_array().into_iter().flatten() {
            let (Some(id), Some(kind)) = (a["id"].as_str(), a["kind"].as_str()) else {
                continue;
            };
            if !a["acknowledged"].is_null() || !kind.starts_with("device") {
                continue;
            }
            let when = *acked
                .entry(id.to_string())
                .or_insert_with(|| now + ctx.hall(WALK * 2, &mut dice));
            if now >= when {
                acked.insert(id.to_string(), now + Duration::from_secs(3600));
                if let Ok(r) = t.post(&format!("/alerts/{id}/ack"), &json!({})).await
                    && !r.ok()
                    && r.status != 409
                {
                    tracing::debug!("ack {id}: {}", r.message());
                }
            }
        }
    }
}

/// Walks to each spoil report awaiting approval, looks at the items and approves it with them
/// scanned in hand (the simulated defects are real ones). The spoiled items then wait for
/// witnessed destruction, which the demo crew does not do.
async fn approve_spoilage(
    ctx: &Ctx,
    t: &mut Terminal,
    dice: &mut Dice,
    walking: &mut HashMap<String, Instant>,
) {
    let Ok(list) = t.get("/custody/spoilage").await else {
        return;
    };
    let now = Instant::now();
    let mut open = Vec::new();
    for r in list.body["pending"].as_array().into_iter().flatten() {
        let serials: Vec<String> = r["serials"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect();
        let Some(first) = serials.first().cloned() else {
            continue;
        };
        open.push(first.clone());
        let arrive = *walking
            .entry(first.clone())
            .or_insert_with(|| now + ctx.hall(WALK, dice));
        if now < arrive {
            continue;
        }
        match t
            .post(
                &format!("/custody/spoilage/{first}/approve"),
                &json!({"scanned": serials, "note": "defect seen at the station"}),
            )
            .await
        {
            Ok(a) if a.ok() => {
                println!(
                    "floor supervisor: approved the spoilage of {} (job {})",
                    serials.join(" and "),
                    r["job"]
                );
            }
            Ok(a) => tracing::debug!("approve spoilage {first}: {}", a.message()),
            Err(e) => tracing::warn!("floor supervisor: {e}"),
        }
    }
    walking.retain(|k, _| open.contains(k));
}

/// Decides every job waiting for inspection: a print or lamination whose item is bound to the
/// job cannot be checked by the simulation, so it is spoiled (the job is printed again on a new
/// booklet); anything else is retried.
async fn inspect(ctx: &Ctx, t: &mut Terminal) {
    let Ok(page) = t.get("/jobs?state=needs_inspection&limit=100").await else {
        return;
    };
    for j in page.body["jobs"].as_array().into_iter().flatten() {
        let Some(id) = j["id"].as_u64() else { continue };
        let bound = match j["state"]["stage"].as_str() {
            Some("print") => !j["booklet"].is_null(),
            Some("laminate") => !j["patch"].is_null(),
            _ => false,
        };
        let verdict = if bound { "spoil" } else { "retry_step" };
        match t
            .post(&format!("/jobs/{id}/inspect"), &json!({"verdict": verdict}))
            .await
        {
            Ok(a) if a.ok() => {
                bump(&ctx.stats.inspections);
                println!("floor supervisor: job {id} inspected after the restart: {verdict}");
            }
            Ok(a) => tracing::warn!("inspect job {id}: {}", a.message()),
            Err(e) => tracing::warn!("inspect job {id}: {e}"),
        }
    }
}

/// A line, QC or dispatch operator at their station.
struct Operator {
    ctx: Arc<Ctx>,
    terminal: Terminal,
    station: Station,
    dice: Dice,
    /// Their open custody session at this station.
    session: Option<String>,
    /// The shift it was opened in.
    session_shift: Option<String>,
    display: watch::Receiver<Arc<Value>>,
    leave: watch::Receiver<bool>,
    warned: bool,
    /// QC: the booklet whose MRZ came out misprinted; every reading of it disagrees, so the
    /// line asks for a re-read and spoils it at the last.
    misprinted: Option<String>,
}

/// The current shift's id (`2026-11-21A`), as the ledger writes it on a session.
fn current_shift() -> String {
    crate::line::Period::shift_at(Utc::now())
        .name()
        .trim_start_matches("shift ")
        .to_string()
}

impl Operator {
    fn leaving(&self) -> bool {
        *self.leave.borrow()
    }

    fn me(&self) -> &str {
        &self.terminal.who.id
    }

    /// Waits `d` of hall time (or until asked to leave).
    async fn think(&mut self, d: Duration) {
        let d = self.ctx.hall(d, &mut self.dice);
        let mut leave = self.leave.clone();
        tokio::select! {
            () = sleep(d) => {}
            _ = leave.changed() => {}
        }
    }

    async fn run(mut self) -> Result<(), String> {
        // Sign in at the station (it may still be taken for a moment).
        loop {
            if self.leaving() {
                return Ok(());
            }
            let signed = {
                let _turn = self.ctx.signing.acquire().await;
                self.terminal.sign_in().await
            };
            match signed {
                Ok(()) => break,
                Err(e) => {
                    if !self.warned {
                        tracing::warn!("{e}; trying again");
                        self.warned = true;
                    }
                    let mut leave = self.leave.clone();
                    tokio::select! {
                        () = sleep(Duration::from_secs(1)) => {}
                        _ = leave.changed() => {}
                    }
                }
            }
        }
        self.warned = false;
        let worked = self.work().await;
        let left = self.wind_down().await;
        worked.and(left)
    }

    async fn view(&mut self) -> Result<Value, String> {
        let path = format!("/stations/{}", self.station.id);
        let a = self.terminal.get(&path).await?;
        if a.ok() {
            Ok(a.body)
        } else {
            Err(format!("{}: {}", self.station.id, a.message()))
        }
    }

    async fn work(&mut self) -> Result<(), String> {
        loop {
            if self.leaving() {
                return Ok(());
            }
            let v = match self.view().await {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!("{e}");
                    sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let acted = match self.station.kind {
                StationKind::Print | StationKind::Laminate => self.custody_step(&v).await?,
                StationKind::Qc => self.qc_step(&v).await?,
                StationKind::Dispatch => self.pack_step(&v).await?,
                StationKind::Vault => false,
            };
            if !acted {
                self.wait_for_change(&v).await;
            }
        }
    }

    /// Waits until the hall display shows this station changed, the operator is asked to
    /// leave, or two seconds pass.
    async fn wait_for_change(&mut self, _seen: &Value) {
        let id = self.station.id.clone();
        let entry = |snap: &Value| -> Value {
            snap["stations"]
                .as_array()
                .and_then(|a| a.iter().find(|s| s["id"] == id.as_str()))
                .cloned()
                .unwrap_or(Value::Null)
        };
        let before = entry(&self.display.borrow_and_update());
        let until = sleep(Duration::from_secs(2));
        tokio::pin!(until);
        let mut leave = self.leave.clone();
        loop {
            tokio::select! {
                r = self.display.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if entry(&self.display.borrow_and_update()) != before {
                        return;
                    }
                }
                _ = leave.changed() => return,
                () = &mut until => return,
            }
        }
    }

    /// A print or lamination station: keep a session stocked, scan the next item when work is
    /// assigned, confirm or report a defect when the device is done. Returns whether it acted.
    async fn custody_step(&mut self, v: &Value) -> Result<bool, String> {
        let kind = self.station.custody().unwrap_or(Kind::Booklet);
        let open = v["session"].as_str().map(str::to_string);
        let phase = v["work"]["phase"].as_str().unwrap_or("").to_string();
        match (&open, &self.session) {
            (None, _) => {
                self.open_session().await?;
                return Ok(true);
            }
            (Some(s), mine) if mine.as_ref() != Some(s) => {
                self.adopt(s).await?;
                return Ok(true);
            }
            _ => {}
        }
        // A session belongs to one shift: at the shift change it is closed and a new one opened.
        if self.session_shift.as_deref() != Some(current_shift().as_str())
            && (phase.is_empty() || phase == "assigned")
        {
            self.close_session().await?;
            return Ok(true);
        }
        let held = v["held"].as_u64().unwrap_or(0);
        if held <= REFILL_AT && !self.leaving() {
            let before = held;
            self.issue(kind, ISSUE).await;
            if self.view().await?["held"].as_u64().unwrap_or(before) > before {
                return Ok(true);
            }
        }
        match phase.as_str() {
            "assigned" if held > 0 => {
                self.think(SCAN).await;
                if self.leaving() {
                    return Ok(false);
                }
                let Some(item) = self.first_held().await? else {
                    return Ok(false);
                };
                let (path, body) = match kind {
                    Kind::Booklet => ("print", json!({"booklet": item})),
                    Kind::Patch => ("laminate", json!({"patch": item})),
                };
                let a = self
                    .terminal
                    .post(&format!("/stations/{}/{path}", self.station.id), &body)
                    .await?;
                if !a.ok() {
                    tracing::debug!("{} {path} {item}: {}", self.station.id, a.message());
                }
                Ok(a.ok())
            }
            "awaiting_confirmation" => {
                self.think(CONFIRM).await;
                let rate = DEFECTS[usize::from(kind == Kind::Patch)];
                let a = if self.dice.chance(rate) && !self.leaving() {
                    bump(&self.ctx.stats.defects);
                    let reason = match kind {
                        Kind::Booklet => "smudged data page",
                        Kind::Patch => "air bubble under the patch",
                    };
                    self.terminal
                        .post(
                            &format!("/stations/{}/defect", self.station.id),
                            &json!({"reason": reason}),
                        )
                        .await?
                } else {
                    self.terminal
                        .post(
                            &format!("/stations/{}/confirm", self.station.id),
                            &json!({}),
                        )
                        .await?
                };
                Ok(a.ok())
            }
            _ => Ok(false),
        }
    }

    /// A QC station: read the MRZ back from the booklet the line assigned.
    async fn qc_step(&mut self, v: &Value) -> Result<bool, String> {
        if v["work"]["phase"] != "assigned" {
            return Ok(false);
        }
        let (Some(tracking), Some(booklet)) = (
            v["work"]["tracking_number"].as_str(),
            v["work"]["booklet"].as_str(),
        ) else {
            return Ok(false);
        };
        let Some(mut mrz) = read_mrz(tracking, &self.ctx.issuing_state) else {
            if !self.warned {
                println!(
                    "{}: job {} is not a demo job; the simulated MRZ reader cannot read it: it \
                     waits for a person",
                    self.station.id, v["work"]["job"]
                );
                self.warned = true;
            }
            return Ok(false);
        };
        let booklet = booklet.to_string();
        self.think(QC).await;
        if self.leaving() {
            return Ok(false);
        }
        let again = self.misprinted.as_deref() == Some(booklet.as_str());
        if again || self.dice.chance(DEFECTS[2]) {
            // A misprinted check digit: it reads the same every time, so the line asks for a
            // re-read, then spoils booklet and patch and prints again.
            if !again {
                bump(&self.ctx.stats.defects);
                self.misprinted = Some(booklet.clone());
            }
            let l = &mut mrz[1];
            let last = if l.ends_with('0') { "1" } else { "0" };
            l.replace_range(l.len() - 1.., last);
        }
        let a = self
            .terminal
            .post(
                &format!("/stations/{}/qc", self.station.id),
                &json!({"booklet": booklet, "mrz": mrz}),
            )
            .await?;
        Ok(a.ok())
    }

    /// The dispatch station: pack the booklet into its destination's bag; close full bags.
    async fn pack_step(&mut self, v: &Value) -> Result<bool, String> {
        if v["work"]["phase"] != "assigned" {
            return Ok(false);
        }
        let Some(booklet) = v["work"]["booklet"].as_str().map(str::to_string) else {
            return Ok(false);
        };
        self.think(PACK).await;
        if self.leaving() {
            return Ok(false);
        }
        let a = self
            .terminal
            .post(
                &format!("/stations/{}/pack", self.station.id),
                &json!({"booklet": booklet}),
            )
            .await?;
        if !a.ok() {
            return Ok(false);
        }
        bump(&self.ctx.stats.dispatched);
        let items = a.body["items"].as_array().map_or(0, Vec::len);
        if items >= BAG_SIZE
            && let Some(bag) = a.body["id"].as_str()
        {
            let _ = self
                .terminal
                .post(&format!("/bags/{bag}/close"), &json!({}))
                .await?;
        }
        Ok(true)
    }

    /// The two signatures of a count: this operator's and the vault supervisor's.
    fn counters(&self) -> Value {
        let v = &self.ctx.vault_supervisor;
        json!([
            {"user": self.terminal.who.id, "pin": self.terminal.who.pin},
            {"user": v.id, "pin": v.pin},
        ])
    }

    async fn open_session(&mut self) -> Result<(), String> {
        let a = self
            .terminal
            .post("/custody/sessions", &json!({"station": self.station.id}))
            .await?;
        let Some(id) = a.body["session"].as_str().filter(|_| a.ok()) else {
            return Err(format!(
                "{} cannot open a session at {}: {}",
                self.me(),
                self.station.id,
                a.message()
            ));
        };
        // The session's shift as the ledger wrote it.
        self.adopt(id).await?;
        let kind = self.station.custody().unwrap_or(Kind::Booklet);
        self.issue(kind, ISSUE).await;
        Ok(())
    }

    /// Takes over the open session at the station, which must be this operator's.
    async fn adopt(&mut self, session: &str) -> Result<(), String> {
        let a = self
            .terminal
            .get(&format!("/custody/sessions/{session}"))
            .await?;
        if a.body["operator"] != self.me() {
            return Err(format!(
                "{} holds session {session} of {}",
                self.station.id, a.body["operator"]
            ));
        }
        self.session = Some(session.to_string());
        self.session_shift = a.body["shift"].as_str().map(str::to_string);
        Ok(())
    }

    /// Gets `n` more items issued to the session, counted by two.
    async fn issue(&mut self, kind: Kind, n: usize) {
        let Some(session) = self.session.clone() else {
            return;
        };
        let serials = self.ctx.take(kind, n).await;
        if serials.is_empty() {
            if !self.warned {
                println!(
                    "{}: the vault has no {}s to issue",
                    self.station.id,
                    kind.name()
                );
                self.warned = true;
            }
            return;
        }
        let body = json!({"serials": serials, "counters": self.counters()});
        let ctx = self.ctx.clone();
        let _turn = ctx.counting.lock().await;
        match self
            .terminal
            .post(&format!("/custody/sessions/{session}/issue"), &body)
            .await
        {
            Ok(a) if a.ok() => {}
            Ok(a) => {
                tracing::warn!("{}: issue refused: {}", self.station.id, a.message());
                self.ctx.recount().await;
            }
            Err(e) => {
                tracing::warn!("{}: issue failed: {e}", self.station.id);
                self.ctx.recount().await;
            }
        }
    }

    async fn held(&mut self) -> Result<Vec<String>, String> {
        let Some(session) = self.session.clone() else {
            return Ok(Vec::new());
        };
        let a = self
            .terminal
            .get(&format!("/custody/sessions/{session}"))
            .await?;
        if !a.ok() {
            return Err(format!("session {session}: {}", a.message()));
        }
        Ok(a.body["held"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect())
    }

    /// The next item to scan: the first one held (for patches, the next on the roll).
    async fn first_held(&mut self) -> Result<Option<String>, String> {
        Ok(self.held().await?.into_iter().next())
    }

    /// Returns what the session holds (counted by two) and closes it, balanced.
    async fn close_session(&mut self) -> Result<(), String> {
        let Some(session) = self.session.clone() else {
            return Ok(());
        };
        let kind = self.station.custody().unwrap_or(Kind::Booklet);
        let held = self.held().await?;
        if !held.is_empty() {
            let body = json!({"serials": held, "counters": self.counters()});
            let ctx = self.ctx.clone();
            let turn = ctx.counting.lock().await;
            let a = self
                .terminal
                .post(&format!("/custody/sessions/{session}/return"), &body)
                .await?;
            drop(turn);
            if !a.ok() {
                return Err(format!("return to the vault refused: {}", a.message()));
            }
            self.ctx.put_back(kind, &held).await;
        }
        let a = self
            .terminal
            .post(&format!("/custody/sessions/{session}/close"), &json!({}))
            .await?;
        if !a.ok() {
            return Err(format!("closing {session} refused: {}", a.message()));
        }
        self.session = None;
        self.session_shift = None;
        Ok(())
    }

    /// Leaves the station: finishes the step on the device, closes the session, signs out.
    async fn wind_down(&mut self) -> Result<(), String> {
        if self.terminal.token().is_none() {
            return Ok(());
        }
        let closed = self.finish_and_close().await;
        let out = self.terminal.sign_out().await;
        closed.and(out)
    }

    async fn finish_and_close(&mut self) -> Result<(), String> {
        loop {
            let v = self.view().await?;
            match v["work"]["phase"].as_str() {
                Some("awaiting_confirmation") => {
                    let a = self
                        .terminal
                        .post(
                            &format!("/stations/{}/confirm", self.station.id),
                            &json!({}),
                        )
                        .await?;
                    if !a.ok() {
                        sleep(Duration::from_millis(100)).await;
                    }
                }
                Some("running") => sleep(Duration::from_millis(100)).await,
                _ => {
                    if self.session.is_none()
                        && let Some(s) = v["session"].as_str()
                    {
                        self.adopt(s).await?;
                    }
                    return self.close_session().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shift_id_is_the_ledgers() {
        let s = current_shift();
        assert!(crate::line::Period::parse_shift(&s).is_ok(), "{s}");
    }
}
