//! How jobs are kept in the store's operational keyspace, and how the API shows them.
//!
//! Keys: `job/<id, u64 big-endian>` → the versioned [`StoredJobRecord`] (this is the only place
//! the personalization data lives; it never reaches the ledger); `tn/<tracking number>` → the job
//! id and a digest of the request, for idempotent resubmission; `lj/<id>` → nothing, the jobs not
//! yet final; `bag/<id>` → a bag and its manifest; `ob/<id>` → nothing, the bags not yet closed
//! (a restart reads only the live jobs and the open bags).

use chrono::{DateTime, Utc};
use hallctl_jobs::intake::JobRequest;
use hallctl_jobs::job::{
    Destination, DocumentType, GroupTag, JobId, JobRecord, JobState, OperatorId, PriorityClass,
    StoredJobRecord,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::LineError;
use crate::ledger::{ItemState, Ledger, Serial};
use crate::store::Store;

pub(super) const JOB: &[u8] = b"job/";
pub(super) const TRACKING: &[u8] = b"tn/";
pub(super) const BAG: &[u8] = b"bag/";
/// The jobs not yet final (dispatched or cancelled): `lj/<id, u64 big-endian>`.
const LIVE_JOBS: LiveIndex = LiveIndex {
    entries: JOB,
    index: b"lj/",
    built: "line/live-jobs-index",
};
/// The bags not yet closed: `ob/<bag id>`.
const OPEN_BAGS: LiveIndex = LiveIndex {
    entries: BAG,
    index: b"ob/",
    built: "line/open-bags-index",
};

pub(super) fn job_key(id: JobId) -> Vec<u8> {
    let mut k = JOB.to_vec();
    k.extend_from_slice(&id.0.to_be_bytes());
    k
}

pub(super) fn tracking_key(tn: &str) -> Vec<u8> {
    let mut k = TRACKING.to_vec();
    k.extend_from_slice(tn.as_bytes());
    k
}

pub(super) fn bag_key(id: &str) -> Vec<u8> {
    let mut k = BAG.to_vec();
    k.extend_from_slice(id.as_bytes());
    k
}

/// One operational write: a key and its new value (`None`: removed).
pub(super) type AuxWrite = (Vec<u8>, Option<Vec<u8>>);

/// An index of the entries under `entries` that are still live: `index ‖ suffix` (no value) for
/// each live `entries ‖ suffix`, written in the entry's own batch. A restart reads only those, so
/// its cost follows the work in the hall, not the hall's age. `built` is set in the store's meta
/// once the index covers every entry: a store written before it gets it built once, from every
/// entry, at the first start that finds it missing.
struct LiveIndex {
    entries: &'static [u8],
    index: &'static [u8],
    built: &'static str,
}

impl LiveIndex {
    /// The writes that store the entry `suffix` and its place in the index (in while live).
    fn writes(&self, suffix: &[u8], value: Vec<u8>, live: bool) -> [AuxWrite; 2] {
        [
            ([self.entries, suffix].concat(), Some(value)),
            ([self.index, suffix].concat(), live.then(Vec::new)),
        ]
    }

    /// The live entries, decoded. An entry the index names but that is no longer live (only a
    /// writer that does not know the index, an older version, could leave one) is skipped.
    fn load<T>(
        &self,
        store: &Store,
        decode: impl Fn(&[u8]) -> Result<T, LineError>,
        live: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, LineError> {
        let storage = |e: crate::store::StoreError| LineError::Storage(e.to_string());
        if store.meta_get(self.built).map_err(storage)?.is_none() {
            return self.build(store, decode, live);
        }
        let mut suffixes = Vec::new();
        store
            .aux_for_each(self.index, self.index, |k, _| {
                suffixes.push(k[self.index.len()..].to_vec());
                true
            })
            .map_err(storage)?;
        let mut out = Vec::with_capacity(suffixes.len());
        for suffix in suffixes {
            let key = [self.entries, &suffix].concat();
            let v = store.aux_get(&key).map_err(storage)?.ok_or_else(|| {
                LineError::Storage(format!(
                    "the index {} names {}, which is not stored",
                    self.built,
                    String::from_utf8_lossy(&key)
                ))
            })?;
            let e = decode(&v)?;
            if live(&e) {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Reads every entry once, writes the index of the live ones, makes it durable and marks
    /// it built.
    fn build<T>(
        &self,
        store: &Store,
        decode: impl Fn(&[u8]) -> Result<T, LineError>,
        live: impl Fn(&T) -> bool,
    ) -> Result<Vec<T>, LineError> {
        let storage = |e: crate::store::StoreError| LineError::Storage(e.to_string());
        let mut out = Vec::new();
        let mut ws = crate::store::WriteSet::default();
        // Exactly the live ones: whatever the index held before goes.
        store
            .aux_for_each(self.index, self.index, |k, _| {
                ws.aux(k.to_vec(), None);
                true
            })
            .map_err(storage)?;
        let mut error = None;
        store
            .aux_for_each(self.entries, self.entries, |k, v| match decode(v) {
                Ok(e) => {
                    if live(&e) {
                        let suffix = &k[self.entries.len()..];
                        ws.aux([self.index, suffix].concat(), Some(Vec::new()));
                        out.push(e);
                    }
                    true
                }
                Err(e) => {
                    error = Some(e);
                    false
                }
            })
            .map_err(storage)?;
        if let Some(e) = error {
            return Err(e);
        }
        store.commit(&ws).map_err(storage)?;
        store.sync().map_err(storage)?;
        store.meta_set(self.built, b"1").map_err(storage)?;
        store.sync().map_err(storage)?;
        tracing::info!(
            index = self.built,
            live = out.len(),
            "built an index (once)"
        );
        Ok(out)
    }
}

/// The operational writes that store a job record: the record itself and its place in the
/// live index (in, while it is not final; out, once it is). Written in the job's batch.
pub(super) fn job_writes(r: &JobRecord) -> Result<[AuxWrite; 2], LineError> {
    let id = r.job.id.0.to_be_bytes();
    Ok(LIVE_JOBS.writes(&id, encode_job(r)?, !r.state.is_final()))
}

/// The jobs not yet final, and the next free job id.
pub(super) fn load_live(store: &Store) -> Result<(Vec<JobRecord>, u64), LineError> {
    let mut next_id = 1;
    store
        .aux_for_each_rev(JOB, &job_key(JobId(u64::MAX)), |k, _| {
            if let Some(id) = k.get(JOB.len()..).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                next_id = u64::from_be_bytes(id) + 1;
            }
            false
        })
        .map_err(|e| LineError::Storage(e.to_string()))?;
    let live = LIVE_JOBS.load(store, decode_job, |r: &JobRecord| !r.state.is_final())?;
    Ok((live, next_id))
}

/// The operational writes that store a bag: the bag and its place in the open-bags index (in,
/// while open; out, once closed). Written in the bag's batch.
pub(super) fn bag_writes(bag: &super::Bag) -> Result<[AuxWrite; 2], LineError> {
    let json = serde_json::to_vec(bag).map_err(|e| LineError::Storage(e.to_string()))?;
    Ok(OPEN_BAGS.writes(bag.id.as_bytes(), json, bag.closed_at.is_none()))
}

/// The bags not yet closed.
pub(super) fn load_open_bags(store: &Store) -> Result<Vec<super::Bag>, LineError> {
    let decode = |v: &[u8]| {
        serde_json::from_slice::<super::Bag>(v)
            .map_err(|e| LineError::Storage(format!("a stored bag is unreadable: {e}")))
    };
    OPEN_BAGS.load(store, decode, |b: &super::Bag| b.closed_at.is_none())
}

/// The highest number of the stored bags whose id starts with `prefix` (a destination's bags of
/// one day: a few), 0 for none.
pub(super) fn last_bag_number(store: &Store, prefix: &str) -> Result<u32, LineError> {
    let key = bag_key(prefix);
    let mut last = 0;
    store
        .aux_for_each(&key, &key, |k, _| {
            if let Some(n) = std::str::from_utf8(&k[key.len()..])
                .ok()
                .and_then(|n| n.parse::<u32>().ok())
            {
                last = last.max(n);
            }
            true
        })
        .map_err(|e| LineError::Storage(e.to_string()))?;
    Ok(last)
}

pub(super) fn encode_job(r: &JobRecord) -> Result<Vec<u8>, LineError> {
    serde_json::to_vec(&StoredJobRecord::from(r.clone()))
        .map_err(|e| LineError::Storage(format!("encoding a job record: {e}")))
}

pub(super) fn decode_job(v: &[u8]) -> Result<JobRecord, LineError> {
    serde_json::from_slice::<StoredJobRecord>(v)
        .map(JobRecord::from)
        .map_err(|e| LineError::Storage(format!("a stored job record is unreadable: {e}")))
}

/// What the tracking index keeps: the job and a digest of the request that created it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct TrackingEntry {
    pub job: JobId,
    pub digest: String,
}

/// A digest of a request's canonical JSON: two submissions are "the same" when it matches.
pub(super) fn request_digest(r: &JobRequest) -> String {
    let bytes = serde_json::to_vec(r).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

pub(super) fn load_job(store: &Store, id: JobId) -> Result<Option<JobRecord>, LineError> {
    store
        .aux_get(&job_key(id))
        .map_err(|e| LineError::Storage(e.to_string()))?
        .map(|v| decode_job(&v))
        .transpose()
}

pub(super) fn load_tracking(store: &Store, tn: &str) -> Result<Option<TrackingEntry>, LineError> {
    store
        .aux_get(&tracking_key(tn))
        .map_err(|e| LineError::Storage(e.to_string()))?
        .map(|v| {
            serde_json::from_slice(&v)
                .map_err(|e| LineError::Storage(format!("tracking entry unreadable: {e}")))
        })
        .transpose()
}

/// A job as the API shows it: everything but the passport-holder data (which only the printer
/// receives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    /// The job.
    pub id: JobId,
    /// The issuance system's tracking number.
    pub tracking_number: String,
    /// Ordinary, official or diplomatic.
    pub doc_type: DocumentType,
    /// Service class.
    pub class: PriorityClass,
    /// Group tags.
    pub groups: Vec<GroupTag>,
    /// Due time.
    pub due: DateTime<Utc>,
    /// Destination office.
    pub destination: Destination,
    /// When it was accepted.
    pub received_at: DateTime<Utc>,
    /// The passport number (a document number, not biodata: it is on the ledger too).
    pub document_number: String,
    /// Where it is.
    pub state: JobState,
    /// Booklets spoiled for it so far.
    pub spoiled: u32,
    /// The booklet of the current attempt.
    pub booklet: Option<String>,
    /// The patch of the current attempt.
    pub patch: Option<String>,
    /// Who printed the current booklet.
    pub printed_by: Option<OperatorId>,
    /// Who laminated it.
    pub laminated_by: Option<OperatorId>,
    /// Who checked it.
    pub checked_by: Option<OperatorId>,
}

impl From<&JobRecord> for JobView {
    fn from(r: &JobRecord) -> Self {
        let j = &r.job;
        JobView {
            id: j.id,
            tracking_number: j.tracking.as_str().to_string(),
            doc_type: j.doc_type,
            class: j.class,
            groups: j.groups.clone(),
            due: j.due,
            destination: j.destination.clone(),
            received_at: j.received_at,
            document_number: j.data.document_number.clone(),
            state: r.state.clone(),
            spoiled: r.spoiled,
            booklet: r.crew.booklet.clone(),
            patch: r.crew.patch.clone(),
            printed_by: r.crew.printed.as_ref().map(|s| s.operator.clone()),
            laminated_by: r.crew.laminated.as_ref().map(|s| s.operator.clone()),
            checked_by: r.crew.checked.as_ref().map(|s| s.operator.clone()),
        }
    }
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFilter {
    /// Only jobs in this state (`queued`, `printing`, `needs_inspection`, ...).
    pub state: Option<String>,
    /// Only this class.
    pub class: Option<PriorityClass>,
    /// Only this destination.
    pub destination: Option<String>,
    /// `oldest` (the default: ascending ids) or `newest` (descending ids).
    pub order: Option<String>,
    /// Oldest first: start after this job id (the previous page's `next`).
    pub after: Option<u64>,
    /// Newest first: start before this job id (the previous page's `next`).
    pub before: Option<u64>,
    /// Only the job(s) a tracking number, a booklet serial or a patch serial belongs to.
    pub q: Option<String>,
    /// Page size (1–500, default 100).
    pub limit: Option<usize>,
}

/// The most jobs one page holds.
pub const MAX_PAGE: usize = 500;

/// One page of jobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// The jobs, in id order (descending for `order=newest`).
    pub jobs: Vec<JobView>,
    /// Pass as `after` (or `before` for `order=newest`) for the next page; absent on the last.
    pub next: Option<u64>,
}

/// The state names a filter may use.
pub const STATE_NAMES: [&str; 14] = [
    "received",
    "queued",
    "spoiled_requeued",
    "printing",
    "printed",
    "laminating",
    "laminated",
    "qc",
    "ready",
    "dispatched",
    "held",
    "cancelled",
    "needs_inspection",
    "defect_reported",
];

/// The longest search (`q`) a list accepts.
pub const MAX_QUERY: usize = 64;

fn valid_query(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= MAX_QUERY
        && q.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
}

/// Lists jobs from the store (every job, finished ones included), in id order: ascending from
/// `after`, or descending from `before` with `order=newest`; `q` keeps the job(s) whose tracking
/// number, current booklet or current patch it is.
pub(crate) fn list(ledger: &Ledger, f: &JobFilter) -> Result<Page, LineError> {
    let store = ledger.store();
    let limit = f.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(LineError::invalid(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ));
    }
    // Job ids are documented as 64-bit signed integers (what JSON clients can hold).
    if f.after.is_some_and(|a| a > i64::MAX.unsigned_abs()) {
        return Err(LineError::invalid(
            "after",
            format!("a job id is at most {}", i64::MAX),
        ));
    }
    if let Some(s) = &f.state
        && !STATE_NAMES.contains(&s.as_str())
    {
        return Err(LineError::invalid(
            "state",
            format!("unknown state; one of {}", STATE_NAMES.join(", ")),
        ));
    }
    let newest = match f.order.as_deref() {
        None | Some("oldest") => false,
        Some("newest") => true,
        Some(_) => {
            return Err(LineError::invalid("order", "one of `oldest`, `newest`"));
        }
    };
    if f.before
        .is_some_and(|b| b == 0 || b > i64::MAX.unsigned_abs())
    {
        return Err(LineError::invalid(
            "before",
            format!("a job id between 1 and {}", i64::MAX),
        ));
    }
    if f.before.is_some() && !newest {
        return Err(LineError::invalid("before", "only with `order=newest`"));
    }
    if f.after.is_some() && newest {
        return Err(LineError::invalid("after", "only with `order=oldest`"));
    }
    let q = match f.q.as_deref() {
        None => None,
        Some(q) if valid_query(q) => Some(q),
        Some(_) => {
            return Err(LineError::invalid(
                "q",
                format!(
                    "a tracking number, booklet or patch serial: 1 to {MAX_QUERY} letters, \
                     digits, `-`, `_`, `.` or `/`"
                ),
            ));
        }
    };
    let keep = |r: &JobRecord| {
        f.state.as_deref().is_none_or(|s| r.state.name() == s)
            && f.class.is_none_or(|c| r.job.class == c)
            && f.destination
                .as_deref()
                .is_none_or(|d| r.job.destination.as_str() == d)
    };
    if let Some(q) = q {
        return search(ledger, q, newest, f, limit, keep);
    }
    let mut out = Vec::new();
    let mut error = None;
    let mut more = false;
    let mut visit = |_: &[u8], v: &[u8]| {
        let r = match decode_job(v) {
            Ok(r) => r,
            Err(e) => {
                error = Some(e);
                return false;
            }
        };
        if keep(&r) {
            if out.len() == limit {
                more = true;
                return false;
            }
            out.push(JobView::from(&r));
        }
        true
    };
    if newest {
        let before = f
            .before
            .map_or_else(|| job_key(JobId(u64::MAX)), |b| job_key(JobId(b)));
        // `job/<u64::MAX>` itself is never an id the API can name (ids are at most 2^63 - 1).
        store.aux_for_each_rev(JOB, &before, &mut visit)
    } else {
        let from = job_key(JobId(f.after.map_or(0, |a| a.saturating_add(1))));
        store.aux_for_each(JOB, &from, &mut visit)
    }
    .map_err(|e| LineError::Storage(e.to_string()))?;
    if let Some(e) = error {
        return Err(e);
    }
    let next = if more {
        out.last().map(|j: &JobView| j.id.0)
    } else {
        None
    };
    Ok(Page { jobs: out, next })
}

/// The jobs a search names, looked up, never scanned for (a hall keeps millions of jobs): the
/// tracking number's index entry, and every job a booklet or patch took part in: the one it is
/// bound to now, and the attempts it was printed, applied or read on before it was spoiled (its
/// trace: one read of its entries, then a record each). A serial or tracking number is looked up
/// as typed and in capitals (a supervisor types in small letters what was stored in capitals, and
/// a lot received in small letters keeps them). Then the filters, the order, the
/// cursor and the page, as for a listing.
fn search(
    ledger: &Ledger,
    q: &str,
    newest: bool,
    f: &JobFilter,
    limit: usize,
    keep: impl Fn(&JobRecord) -> bool,
) -> Result<Page, LineError> {
    let store = ledger.store();
    let storage = |e: crate::ledger::LedgerError| LineError::Storage(e.to_string());
    let mut ids = std::collections::BTreeSet::new();
    let upper = q.to_ascii_uppercase();
    let spellings: &[&str] = if upper == q { &[q] } else { &[q, &upper] };
    for t in spellings {
        if let Some(t) = load_tracking(store, t)? {
            ids.insert(t.job);
        }
    }
    for spelling in spellings {
        let serial = Serial::new(*spelling);
        let Some(item) = ledger.item(&serial).map_err(storage)? else {
            continue;
        };
        let mut state = &item.state;
        while let ItemState::SpoilPending { was, .. } = state {
            state = was;
        }
        match state {
            ItemState::Applied(b) => {
                ids.insert(b.job);
            }
            ItemState::Suspect { job, .. } => {
                ids.insert(*job);
            }
            _ => {}
        }
        if let Some(trace) = ledger.trace(&serial).map_err(storage)? {
            for step in trace.steps.iter().filter(|s| s.serial == serial) {
                if let Some(job) = ledger
                    .record(step.seq)
                    .map_err(storage)?
                    .and_then(|r| r.event.job())
                {
                    ids.insert(job);
                }
            }
        }
    }
    let in_range = |id: &JobId| {
        if newest {
            f.before.is_none_or(|b| id.0 < b)
        } else {
            f.after.is_none_or(|a| id.0 > a)
        }
    };
    let mut found = Vec::new();
    for id in ids.into_iter().filter(in_range) {
        if let Some(r) = load_job(store, id)?
            && keep(&r)
        {
            found.push(JobView::from(&r));
        }
    }
    if newest {
        found.reverse();
    }
    let more = found.len() > limit;
    found.truncate(limit);
    let next = if more {
        found.last().map(|j| j.id.0)
    } else {
        None
    };
    Ok(Page { jobs: found, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::dice::Dice;
    use crate::demo::issuance::JobMix;
    use hallctl_jobs::intake::{IntakeContext, validate};
    use hallctl_jobs::job::{JobEvent, Separation};

    /// `n` queued jobs, ids 1..=n, as intake makes them.
    fn queued_jobs(n: usize) -> Vec<JobRecord> {
        let now = Utc::now();
        JobMix::new(1.0, "PAK")
            .batch(n, now, &mut Dice::seeded(7))
            .iter()
            .enumerate()
            .map(|(i, req)| {
                let ctx = IntakeContext {
                    now,
                    job_id: JobId(i as u64 + 1),
                    known_destinations: None,
                    issuing_states: None,
                };
                JobRecord::new(validate(req, &ctx).expect("valid"))
                    .apply(&JobEvent::Queue, &Separation::strict())
                    .expect("queued")
            })
            .collect()
    }

    fn cancelled(r: &JobRecord) -> JobRecord {
        r.apply(
            &JobEvent::Cancel {
                reason: "test".into(),
            },
            &Separation::strict(),
        )
        .expect("cancelled")
    }

    fn write(store: &Store, writes: impl IntoIterator<Item = AuxWrite>) {
        let mut ws = crate::store::WriteSet::default();
        for (k, v) in writes {
            ws.aux(k, v);
        }
        store.commit(&ws).expect("commit");
    }

    /// A restart reads the live jobs only: a store from before the index gets it built once,
    /// from every job; after that, a final job leaves the index in its own batch, and a job
    /// the index does not name is not read at all.
    #[test]
    fn a_restart_reads_only_the_jobs_not_final() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let jobs = queued_jobs(6);
        // Written as before the index: job records only; 2, 4 and 6 are cancelled.
        write(
            &store,
            jobs.iter().map(|r| {
                let r = if r.job.id.0 % 2 == 0 {
                    cancelled(r)
                } else {
                    r.clone()
                };
                (job_key(r.job.id), Some(encode_job(&r).expect("encode")))
            }),
        );
        let ids = |live: &[JobRecord]| live.iter().map(|r| r.job.id.0).collect::<Vec<_>>();
        let (live, next) = load_live(&store).expect("load");
        assert_eq!((ids(&live), next), (vec![1, 3, 5], 7));

        // Job 3 is cancelled through the job's writes: out of the index.
        write(&store, job_writes(&cancelled(&jobs[2])).expect("writes"));
        // A job record with no index entry (as only an older binary would write) is not read.
        write(
            &store,
            [(job_key(JobId(9)), Some(b"not a job record".to_vec()))],
        );
        let (live, next) = load_live(&store).expect("load");
        assert_eq!((ids(&live), next), (vec![1, 5], 10));
        assert_eq!(live[0], jobs[0]);
        // Job 5 made final by a writer that does not know the index (an older version run on
        // the store): the index still names it, and it is not taken for live work.
        let done = cancelled(&jobs[4]);
        write(
            &store,
            [(
                job_key(done.job.id),
                Some(encode_job(&done).expect("encode")),
            )],
        );
        let (live, _) = load_live(&store).expect("load");
        assert_eq!(ids(&live), vec![1]);
    }

    /// Open bags come back from their index (built once for a store that predates it); a
    /// closed bag leaves it; the next bag number of a day is read from the day's bags.
    #[test]
    fn a_restart_reads_only_the_open_bags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), 1 << 20).expect("open");
        let bag = |id: &str, dest: &str, closed: bool| super::super::Bag {
            id: id.into(),
            destination: Destination::new(dest),
            opened_at: Utc::now(),
            closed_at: closed.then(Utc::now),
            items: Vec::new(),
        };
        let json = |b: &super::super::Bag| Some(serde_json::to_vec(b).expect("encode"));
        // Written as before the index.
        let old = [
            bag("BAG-LHR-01-20261207-001", "LHR-01", true),
            bag("BAG-LHR-01-20261207-002", "LHR-01", false),
            bag("BAG-RPO-02-20261207-001", "RPO-02", false),
        ];
        write(&store, old.iter().map(|b| (bag_key(&b.id), json(b))));
        let ids = |v: Vec<super::super::Bag>| v.into_iter().map(|b| b.id).collect::<Vec<_>>();
        assert_eq!(
            ids(load_open_bags(&store).expect("load")),
            ["BAG-LHR-01-20261207-002", "BAG-RPO-02-20261207-001"]
        );
        // LHR-01's second bag closes; a third opens, numbered after the day's last.
        assert_eq!(
            last_bag_number(&store, "BAG-LHR-01-20261207-").expect("n"),
            2
        );
        assert_eq!(
            last_bag_number(&store, "BAG-LHR-01-20261208-").expect("n"),
            0
        );
        write(
            &store,
            bag_writes(&bag("BAG-LHR-01-20261207-002", "LHR-01", true)).expect("w"),
        );
        write(
            &store,
            bag_writes(&bag("BAG-LHR-01-20261207-003", "LHR-01", false)).expect("w"),
        );
        // A bag the index does not name (only an older binary would write one) is not read.
        write(
            &store,
            [(bag_key("BAG-X-20261207-001"), Some(b"not a bag".to_vec()))],
        );
        assert_eq!(
            ids(load_open_bags(&store).expect("load")),
            ["BAG-LHR-01-20261207-003", "BAG-RPO-02-20261207-001"]
        );
        assert_eq!(
            last_bag_number(&store, "BAG-LHR-01-20261207-").expect("n"),
            3
        );
    }
}
