//! The personalization job: what the issuance system asks for, and where it is in the line.
//!
//! A [`Job`] is immutable once accepted at intake. Its progress is a [`JobRecord`]: the current
//! [`JobState`] plus the crew who did each step (needed later for separation of duties and for the
//! forensic trace). The lifecycle is one pure state machine, [`JobState::apply`]; the record folds
//! events through it. Nothing here does I/O.
//!
//! Passport-holder data lives only in [`Personalization`], whose `Debug` output is redacted so a
//! stray `{:?}` in a log line cannot leak a name or a date of birth.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Internal, dense job number assigned by the controller at intake (cheap to index and compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "J-{:08}", self.0)
    }
}

/// Declares a text identifier newtype (`Serialize` as a plain string, `Display`, `new`, `as_str`).
/// Exported so the other crates of the workspace declare their identifiers the same way
/// (`hallctl_jobs::string_id!(/// doc\n Name);`); the using crate needs `serde` as a dependency.
#[macro_export]
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, ::serde::Serialize, ::serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// Wraps an identifier. Intake and configuration validate the text; this does not.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }
            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The issuance system's tracking number: the idempotency key of a submission.
    TrackingNumber
);
string_id!(
    /// A station of the hall (`PRN-1`, `LAM-2`, `QC-1`, `DSP-1`, `VAULT`).
    StationId
);
string_id!(
    /// A device (printer, laminator, ...) attached to a station.
    DeviceId
);
string_id!(
    /// An operator's identity (staff number), never their name.
    OperatorId
);
string_id!(
    /// A group tag on a job, e.g. a pilgrimage batch (`HAJJ-2027`).
    GroupTag
);
string_id!(
    /// A destination office code: a regional passport office or a mission abroad.
    Destination
);

/// The kind of passport (ICAO 9303 document code: `P<`, `PO`, `PD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentType {
    /// An ordinary passport (`P<`).
    Ordinary,
    /// An official (service) passport (`PO`).
    Official,
    /// A diplomatic passport (`PD`).
    Diplomatic,
}

impl DocumentType {
    /// The two-character document code that opens the first MRZ line.
    pub fn mrz_code(self) -> &'static str {
        match self {
            DocumentType::Ordinary => "P<",
            DocumentType::Official => "PO",
            DocumentType::Diplomatic => "PD",
        }
    }
}

/// The service class the applicant paid for. Ordered from least to most urgent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PriorityClass {
    /// Normal processing.
    Normal,
    /// Urgent processing.
    Urgent,
    /// Fast-track (same or next day).
    FastTrack,
}

impl PriorityClass {
    /// Every class, least urgent first (handy for reports).
    pub const ALL: [PriorityClass; 3] = [
        PriorityClass::Normal,
        PriorityClass::Urgent,
        PriorityClass::FastTrack,
    ];

    /// Index into per-class arrays (`Normal` = 0).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The class's name as used in the API and reports.
    pub fn name(self) -> &'static str {
        match self {
            PriorityClass::Normal => "normal",
            PriorityClass::Urgent => "urgent",
            PriorityClass::FastTrack => "fast_track",
        }
    }
}

/// Holder sex as printed in the MRZ (`F`, `M`, or `<` for unspecified).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    /// `F`
    Female,
    /// `M`
    Male,
    /// `<` in the MRZ (`X` in the visual zone).
    Unspecified,
}

impl Sex {
    /// The MRZ character.
    pub fn mrz_char(self) -> char {
        match self {
            Sex::Female => 'F',
            Sex::Male => 'M',
            Sex::Unspecified => '<',
        }
    }
}

/// The data printed on the data page. This is passport-holder data: it never goes to the ledger,
/// to logs or to error messages, and its `Debug` shows only the document number.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Personalization {
    /// Primary identifier (surname), in Latin script as it should appear in the visual zone.
    pub surname: String,
    /// Secondary identifier (given names), space separated; may be empty.
    pub given_names: String,
    /// ISO 3166-1 alpha-3 (or ICAO special) code of the holder's nationality.
    pub nationality: String,
    /// Date of birth.
    pub date_of_birth: NaiveDate,
    /// Sex.
    pub sex: Sex,
    /// Place of birth (visual zone only).
    pub place_of_birth: String,
    /// ISO 3166-1 alpha-3 code of the issuing state.
    pub issuing_state: String,
    /// Passport number (up to 9 characters, `A`–`Z` and `0`–`9`).
    pub document_number: String,
    /// Date of issue.
    pub date_of_issue: NaiveDate,
    /// Date of expiry.
    pub date_of_expiry: NaiveDate,
    /// Optional data of the MRZ (personal number), up to 14 characters; empty when absent.
    pub personal_number: String,
    /// Reference to the portrait image held by the issuance system (never the image itself).
    pub portrait_ref: String,
}

impl fmt::Debug for Personalization {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Personalization")
            .field("document_number", &self.document_number)
            .finish_non_exhaustive()
    }
}

/// A personalization job as accepted at intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Dense internal number.
    pub id: JobId,
    /// The issuance system's tracking number (idempotency key).
    pub tracking: TrackingNumber,
    /// Ordinary, official or diplomatic.
    pub doc_type: DocumentType,
    /// Service class.
    pub class: PriorityClass,
    /// Group tags (e.g. a pilgrimage batch); a supervisor can lift a whole group.
    pub groups: Vec<GroupTag>,
    /// When the finished passport must be ready for dispatch.
    pub due: DateTime<Utc>,
    /// Where the passport goes (regional office or mission).
    pub destination: Destination,
    /// When the controller accepted the job.
    pub received_at: DateTime<Utc>,
    /// Data page content (passport-holder data, redacted in `Debug`).
    pub data: Personalization,
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, {}, due {})",
            self.tracking,
            self.class.name(),
            self.destination,
            self.due.format("%Y-%m-%dT%H:%MZ")
        )
    }
}

/// A stage of the line. Every job passes them in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Data page printing on a passport printer.
    Print,
    /// Applying the security laminate patch.
    Laminate,
    /// Quality control: the MRZ read back must match.
    Qc,
    /// Packing into the destination's bag.
    Dispatch,
}

impl Stage {
    /// Every stage, in line order.
    pub const ALL: [Stage; 4] = [Stage::Print, Stage::Laminate, Stage::Qc, Stage::Dispatch];

    /// Index into per-stage arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stage's name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Print => "print",
            Stage::Laminate => "laminate",
            Stage::Qc => "qc",
            Stage::Dispatch => "dispatch",
        }
    }
}

/// Who did a step, where and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRun {
    /// The station.
    pub station: StationId,
    /// The device at that station.
    pub device: DeviceId,
    /// The operator signed in at that station.
    pub operator: OperatorId,
    /// When the step started.
    pub started_at: DateTime<Utc>,
}

/// Why an item was spoiled and the job sent back to printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpoilReason {
    /// The printer jammed.
    Jam,
    /// A print defect found by the operator.
    PrintDefect,
    /// A lamination defect (bubble, misalignment, burnt patch).
    LaminationDefect,
    /// QC read back an MRZ that did not match.
    QcMismatch,
    /// A device fault interrupted the step.
    DeviceFault,
    /// Decided by a supervisor at inspection.
    Inspection,
}

/// What a supervisor decided about a job that needed inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InspectionVerdict {
    /// The interrupted step did complete correctly: count it as done.
    StepCompleted,
    /// The interrupted step did not happen: queue the same step again.
    RetryStep,
    /// The item is spoiled: print again on a new booklet.
    Spoil,
}

/// A waiting state (where a job sits in a queue between steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Waiting {
    /// Waiting for printing.
    Queued,
    /// Waiting for a new booklet after a spoil.
    SpoiledRequeued {
        /// Why the last booklet was spoiled.
        reason: SpoilReason,
    },
    /// Printed, waiting for lamination.
    Printed,
    /// Laminated, waiting for QC.
    Laminated,
    /// Passed QC, waiting for dispatch.
    Ready,
}

impl Waiting {
    /// The stage this waiting state waits for.
    pub fn next_stage(self) -> Stage {
        match self {
            Waiting::Queued | Waiting::SpoiledRequeued { .. } => Stage::Print,
            Waiting::Printed => Stage::Laminate,
            Waiting::Laminated => Stage::Qc,
            Waiting::Ready => Stage::Dispatch,
        }
    }
}

/// Where a job is in its lifecycle. States are data, not strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// Accepted at intake, not yet queued.
    Received,
    /// Waiting for printing.
    Queued,
    /// A booklet was spoiled; waiting to print again on a new one (priority kept).
    SpoiledRequeued {
        /// Why the last attempt was spoiled.
        reason: SpoilReason,
    },
    /// Being printed.
    Printing {
        /// Who and where.
        run: StepRun,
    },
    /// Printed, waiting for lamination.
    Printed,
    /// Being laminated.
    Laminating {
        /// Who and where.
        run: StepRun,
    },
    /// Laminated, waiting for QC.
    Laminated,
    /// In quality control.
    Qc {
        /// Who and where.
        run: StepRun,
    },
    /// Passed QC, waiting for dispatch.
    Ready,
    /// Packed into a destination bag. Final.
    Dispatched {
        /// The bag's identifier.
        bag: String,
    },
    /// Held by a supervisor; released back to the waiting state it left.
    Held {
        /// The waiting state to return to.
        resume: Waiting,
    },
    /// Cancelled. Final.
    Cancelled {
        /// The supervisor's reason.
        reason: String,
    },
    /// The operator reported a defect on the step's items (print or lamination): they wait for a
    /// supervisor's decision with the items in hand. Approved, the job is spoiled (printed
    /// again on a new booklet); rejected, the step stands as done.
    DefectReported {
        /// The step the defect was reported at.
        stage: Stage,
        /// Who and where.
        run: StepRun,
        /// The defect.
        reason: SpoilReason,
    },
    /// A step was in flight when the controller stopped; a supervisor must look before the line
    /// touches the job again. Never silently re-run.
    NeedsInspection {
        /// The interrupted step.
        stage: Stage,
        /// Who was doing it.
        run: StepRun,
    },
}

/// Something that happens to a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum JobEvent {
    /// Intake accepted the job into the print queue.
    Queue,
    /// The line started a step on the job.
    Start {
        /// The stage started.
        stage: Stage,
        /// Who and where.
        run: StepRun,
    },
    /// The running step finished well (for QC: the MRZ matched).
    Finish {
        /// The stage finished.
        stage: Stage,
        /// The item serial scanned for it (booklet at print, patch at lamination).
        serial: Option<String>,
    },
    /// The running step spoiled the item; the job goes back to printing on a new booklet.
    Spoil {
        /// Why.
        reason: SpoilReason,
    },
    /// The operator reported a defect on the running print or lamination: the job waits for a
    /// supervisor's decision ([`JobState::DefectReported`]).
    ReportDefect {
        /// Why.
        reason: SpoilReason,
    },
    /// A supervisor rejected the defect report: the step stands as finished.
    RejectDefect {
        /// The item serial scanned for the step (booklet at print, patch at lamination).
        serial: Option<String>,
    },
    /// Packed into a bag.
    Dispatch {
        /// The bag.
        bag: String,
    },
    /// A supervisor holds a waiting job.
    Hold,
    /// A supervisor releases a held job.
    Release,
    /// A supervisor cancels a job that is not in a step.
    Cancel {
        /// Why.
        reason: String,
    },
    /// Recovery found the job in a step after a restart.
    Interrupt,
    /// A supervisor inspected an interrupted job.
    Inspect {
        /// The decision.
        verdict: InspectionVerdict,
        /// For a completed print or lamination: the serial found on the booklet or patch.
        serial: Option<String>,
    },
}

impl JobEvent {
    /// The event's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            JobEvent::Queue => "queue",
            JobEvent::Start { .. } => "start",
            JobEvent::Finish { .. } => "finish",
            JobEvent::Spoil { .. } => "spoil",
            JobEvent::ReportDefect { .. } => "report a defect",
            JobEvent::RejectDefect { .. } => "reject a defect report",
            JobEvent::Dispatch { .. } => "dispatch",
            JobEvent::Hold => "hold",
            JobEvent::Release => "release",
            JobEvent::Cancel { .. } => "cancel",
            JobEvent::Interrupt => "interrupt",
            JobEvent::Inspect { .. } => "inspect",
        }
    }
}

/// An event that the current state does not allow.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a job that is {state} cannot {event}{detail}")]
pub struct TransitionError {
    /// The state's name.
    pub state: &'static str,
    /// The event's name.
    pub event: &'static str,
    /// More detail, starting with a separator, or empty.
    pub detail: String,
}

impl JobState {
    /// The state's name as shown in the API and UI.
    pub fn name(&self) -> &'static str {
        match self {
            JobState::Received => "received",
            JobState::Queued => "queued",
            JobState::SpoiledRequeued { .. } => "spoiled_requeued",
            JobState::Printing { .. } => "printing",
            JobState::Printed => "printed",
            JobState::Laminating { .. } => "laminating",
            JobState::Laminated => "laminated",
            JobState::Qc { .. } => "qc",
            JobState::Ready => "ready",
            JobState::Dispatched { .. } => "dispatched",
            JobState::Held { .. } => "held",
            JobState::Cancelled { .. } => "cancelled",
            JobState::NeedsInspection { .. } => "needs_inspection",
            JobState::DefectReported { .. } => "defect_reported",
        }
    }

    /// The waiting state this is, if the job sits in a queue.
    pub fn waiting(&self) -> Option<Waiting> {
        match self {
            JobState::Queued => Some(Waiting::Queued),
            JobState::SpoiledRequeued { reason } => {
                Some(Waiting::SpoiledRequeued { reason: *reason })
            }
            JobState::Printed => Some(Waiting::Printed),
            JobState::Laminated => Some(Waiting::Laminated),
            JobState::Ready => Some(Waiting::Ready),
            _ => None,
        }
    }

    /// The running step, if a step is in flight.
    pub fn in_step(&self) -> Option<(Stage, &StepRun)> {
        match self {
            JobState::Printing { run } => Some((Stage::Print, run)),
            JobState::Laminating { run } => Some((Stage::Laminate, run)),
            JobState::Qc { run } => Some((Stage::Qc, run)),
            _ => None,
        }
    }

    /// Dispatched or cancelled: nothing more can happen.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            JobState::Dispatched { .. } | JobState::Cancelled { .. }
        )
    }

    fn from_waiting(w: Waiting) -> JobState {
        match w {
            Waiting::Queued => JobState::Queued,
            Waiting::SpoiledRequeued { reason } => JobState::SpoiledRequeued { reason },
            Waiting::Printed => JobState::Printed,
            Waiting::Laminated => JobState::Laminated,
            Waiting::Ready => JobState::Ready,
        }
    }

    /// The lifecycle: the state after `event`, or why `event` is not allowed now.
    ///
    /// # Errors
    /// [`TransitionError`] when the event does not apply to this state (for example starting
    /// lamination on a job that is not printed, or cancelling a job in a step).
    pub fn apply(&self, event: &JobEvent) -> Result<JobState, TransitionError> {
        use JobEvent as E;
        use JobState as S;
        let refuse = |detail: String| TransitionError {
            state: self.name(),
            event: event.name(),
            detail,
        };
        let next = match (self, event) {
            (S::Received, E::Queue) => S::Queued,
            (
                S::Queued | S::SpoiledRequeued { .. } | S::Printed | S::Laminated,
                E::Start { stage, run },
            ) => {
                let waiting = self.waiting().map(Waiting::next_stage);
                match (waiting, stage) {
                    (Some(Stage::Print), Stage::Print) => S::Printing { run: run.clone() },
                    (Some(Stage::Laminate), Stage::Laminate) => S::Laminating { run: run.clone() },
                    (Some(Stage::Qc), Stage::Qc) => S::Qc { run: run.clone() },
                    (Some(want), got) => {
                        return Err(refuse(format!(
                            ": it waits for {}, not {}",
                            want.name(),
                            got.name()
                        )));
                    }
                    (None, _) => return Err(refuse(String::new())),
                }
            }
            (S::Printing { .. } | S::Laminating { .. } | S::Qc { .. }, E::Finish { stage, .. }) => {
                let (running, _) = self.in_step().ok_or_else(|| refuse(String::new()))?;
                if running != *stage {
                    return Err(refuse(format!(
                        ": {} is running, not {}",
                        running.name(),
                        stage.name()
                    )));
                }
                match stage {
                    Stage::Print => S::Printed,
                    Stage::Laminate => S::Laminated,
                    Stage::Qc | Stage::Dispatch => S::Ready,
                }
            }
            (S::Printing { run } | S::Laminating { run }, E::ReportDefect { reason }) => {
                let (stage, _) = self.in_step().ok_or_else(|| refuse(String::new()))?;
                S::DefectReported {
                    stage,
                    run: run.clone(),
                    reason: *reason,
                }
            }
            (S::DefectReported { stage, .. }, E::RejectDefect { .. }) => match stage {
                Stage::Print => S::Printed,
                Stage::Laminate => S::Laminated,
                Stage::Qc | Stage::Dispatch => S::Ready,
            },
            // A defect found during a step, or on a booklet waiting between steps (or held), or
            // a reported defect approved: destroy and reproduce.
            (
                S::DefectReported { .. }
                | S::Printing { .. }
                | S::Laminating { .. }
                | S::Qc { .. }
                | S::Printed
                | S::Laminated
                | S::Ready
                | S::Held { .. },
                E::Spoil { reason },
            ) => S::SpoiledRequeued { reason: *reason },
            (S::Ready, E::Dispatch { bag }) => S::Dispatched { bag: bag.clone() },
            (
                S::Queued | S::SpoiledRequeued { .. } | S::Printed | S::Laminated | S::Ready,
                E::Hold,
            ) => S::Held {
                resume: self.waiting().ok_or_else(|| refuse(String::new()))?,
            },
            (S::Held { resume }, E::Release) => S::from_waiting(*resume),
            (
                S::Received
                | S::Queued
                | S::SpoiledRequeued { .. }
                | S::Printed
                | S::Laminated
                | S::Ready
                | S::Held { .. }
                | S::NeedsInspection { .. },
                E::Cancel { reason },
            ) => S::Cancelled {
                reason: reason.clone(),
            },
            (S::Printing { .. } | S::Laminating { .. } | S::Qc { .. }, E::Interrupt) => {
                let (stage, run) = self.in_step().ok_or_else(|| refuse(String::new()))?;
                S::NeedsInspection {
                    stage,
                    run: run.clone(),
                }
            }
            (S::NeedsInspection { stage, .. }, E::Inspect { verdict, .. }) => match verdict {
                InspectionVerdict::StepCompleted => match stage {
                    Stage::Print => S::Printed,
                    Stage::Laminate => S::Laminated,
                    Stage::Qc | Stage::Dispatch => S::Ready,
                },
                InspectionVerdict::RetryStep => match stage {
                    Stage::Print => S::Queued,
                    Stage::Laminate => S::Printed,
                    Stage::Qc | Stage::Dispatch => S::Laminated,
                },
                InspectionVerdict::Spoil => S::SpoiledRequeued {
                    reason: SpoilReason::Inspection,
                },
            },
            _ => return Err(refuse(String::new())),
        };
        Ok(next)
    }
}

/// Separation of duties (ICAO Doc 9303 Part 2, §4.3): who may do a step on a booklet, given who
/// did the earlier ones. The one rule the scheduler, the job record and the simulator all use.
///
/// The operator who laminates a booklet never printed it: that rule is fixed, it is why this
/// product exists. Whether QC must be a third person is configurable, strict by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Separation {
    /// QC must be done by someone who neither printed nor laminated the booklet.
    pub qc_independent: bool,
}

impl Separation {
    /// The default: QC is a third person.
    pub fn strict() -> Self {
        Self {
            qc_independent: true,
        }
    }

    /// Whether `operator` may do `stage` on a booklet printed by `printed_by` and laminated by
    /// `laminated_by`.
    ///
    /// # Errors
    /// [`SeparationViolation`] naming the earlier step this operator did.
    pub fn check(
        &self,
        stage: Stage,
        operator: &OperatorId,
        printed_by: Option<&OperatorId>,
        laminated_by: Option<&OperatorId>,
    ) -> Result<(), SeparationViolation> {
        let printed = printed_by == Some(operator);
        let laminated = laminated_by == Some(operator);
        match stage {
            Stage::Laminate | Stage::Qc
                if printed && (stage == Stage::Laminate || self.qc_independent) =>
            {
                Err(SeparationViolation::PrintedIt(operator.clone()))
            }
            Stage::Qc if laminated && self.qc_independent => {
                Err(SeparationViolation::LaminatedIt(operator.clone()))
            }
            _ => Ok(()),
        }
    }
}

impl Default for Separation {
    fn default() -> Self {
        Self::strict()
    }
}

/// A step refused by separation of duties.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SeparationViolation {
    /// The operator printed this booklet.
    #[error("operator {0} printed this booklet")]
    PrintedIt(OperatorId),
    /// The operator laminated this booklet.
    #[error("operator {0} laminated this booklet")]
    LaminatedIt(OperatorId),
}

/// Who did the finished steps of a job: the facts separation of duties and the trace need.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Crew {
    /// The print step of the current attempt.
    pub printed: Option<StepRun>,
    /// The lamination step of the current attempt.
    pub laminated: Option<StepRun>,
    /// The QC step of the current attempt.
    pub checked: Option<StepRun>,
    /// Booklet serial scanned at print (current attempt).
    pub booklet: Option<String>,
    /// Patch serial scanned at lamination (current attempt).
    pub patch: Option<String>,
}

/// A job and its progress: the value the controller stores per job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job as accepted.
    pub job: Job,
    /// Where it is now.
    pub state: JobState,
    /// Who did the steps of the current attempt.
    pub crew: Crew,
    /// How many booklets were spoiled for this job so far.
    pub spoiled: u32,
}

impl JobRecord {
    /// A freshly received job.
    pub fn new(job: Job) -> Self {
        Self {
            job,
            state: JobState::Received,
            crew: Crew::default(),
            spoiled: 0,
        }
    }

    /// The record after `event`: the state machine, separation of duties and the crew
    /// bookkeeping. A step cannot start with an operator `separation` bars; a print or lamination
    /// cannot finish without the serial scanned for it; each spoil is counted once.
    ///
    /// # Errors
    /// The [`TransitionError`] of [`JobState::apply`], or one naming the separation rule or the
    /// missing serial; the record is unchanged.
    pub fn apply(
        &self,
        event: &JobEvent,
        separation: &Separation,
    ) -> Result<JobRecord, TransitionError> {
        let refuse = |detail: String| TransitionError {
            state: self.state.name(),
            event: event.name(),
            detail,
        };
        let needs_serial = |stage: Stage, serial: &Option<String>| match (stage, serial) {
            (Stage::Print, None) => Err(refuse(
                ": the booklet serial scanned at print is missing".into(),
            )),
            (Stage::Laminate, None) => Err(refuse(
                ": the patch serial scanned at lamination is missing".into(),
            )),
            _ => Ok(()),
        };
        match event {
            JobEvent::Start { stage, run } => {
                let op = |s: &Option<StepRun>| s.as_ref().map(|r| r.operator.clone());
                separation
                    .check(
                        *stage,
                        &run.operator,
                        op(&self.crew.printed).as_ref(),
                        op(&self.crew.laminated).as_ref(),
                    )
                    .map_err(|v| refuse(format!(": {v}")))?;
            }
            JobEvent::Finish { stage, serial } => needs_serial(*stage, serial)?,
            JobEvent::RejectDefect { serial } => {
                if let JobState::DefectReported { stage, .. } = &self.state {
                    needs_serial(*stage, serial)?;
                }
            }
            JobEvent::Inspect {
                verdict: InspectionVerdict::StepCompleted,
                serial,
            } => {
                if let JobState::NeedsInspection { stage, .. } = &self.state {
                    needs_serial(*stage, serial)?;
                }
            }
            _ => {}
        }
        let state = self.state.apply(event)?;
        let mut next = JobRecord {
            job: self.job.clone(),
            state,
            crew: self.crew.clone(),
            spoiled: self.spoiled,
        };
        match (&self.state, event) {
            (JobState::Printing { run }, JobEvent::Finish { serial, .. }) => {
                next.crew.printed = Some(run.clone());
                next.crew.booklet = serial.clone();
            }
            (JobState::Laminating { run }, JobEvent::Finish { serial, .. }) => {
                next.crew.laminated = Some(run.clone());
                next.crew.patch = serial.clone();
            }
            (JobState::DefectReported { stage, run, .. }, JobEvent::RejectDefect { serial }) => {
                match stage {
                    Stage::Print => {
                        next.crew.printed = Some(run.clone());
                        next.crew.booklet = serial.clone();
                    }
                    Stage::Laminate => {
                        next.crew.laminated = Some(run.clone());
                        next.crew.patch = serial.clone();
                    }
                    Stage::Qc | Stage::Dispatch => next.crew.checked = Some(run.clone()),
                }
            }
            (JobState::Qc { run }, JobEvent::Finish { .. }) => {
                next.crew.checked = Some(run.clone());
            }
            (
                JobState::NeedsInspection { stage, run },
                JobEvent::Inspect {
                    verdict: InspectionVerdict::StepCompleted,
                    serial,
                },
            ) => match stage {
                Stage::Print => {
                    next.crew.printed = Some(run.clone());
                    next.crew.booklet = serial.clone();
                }
                Stage::Laminate => {
                    next.crew.laminated = Some(run.clone());
                    next.crew.patch = serial.clone();
                }
                Stage::Qc | Stage::Dispatch => next.crew.checked = Some(run.clone()),
            },
            _ => {}
        }
        // A spoil is an event, not a state: counting state changes would count a held and
        // released spoiled job twice.
        if matches!(
            event,
            JobEvent::Spoil { .. }
                | JobEvent::Inspect {
                    verdict: InspectionVerdict::Spoil,
                    ..
                }
        ) {
            next.spoiled += 1;
            next.crew = Crew::default();
        }
        Ok(next)
    }
}

/// The job record as stored: versioned, so that records written today still read in ten years.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredJobRecord {
    /// Version 1.
    #[serde(rename = "1")]
    V1(JobRecord),
}

impl From<JobRecord> for StoredJobRecord {
    fn from(r: JobRecord) -> Self {
        StoredJobRecord::V1(r)
    }
}

impl From<StoredJobRecord> for JobRecord {
    fn from(s: StoredJobRecord) -> Self {
        match s {
            StoredJobRecord::V1(r) => r,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn specimen_data() -> Personalization {
        Personalization {
            surname: "ERIKSSON".into(),
            given_names: "ANNA MARIA".into(),
            nationality: "UTO".into(),
            date_of_birth: NaiveDate::from_ymd_opt(1974, 8, 12).expect("date"),
            sex: Sex::Female,
            place_of_birth: "ZENITH".into(),
            issuing_state: "UTO".into(),
            document_number: "L898902C3".into(),
            date_of_issue: NaiveDate::from_ymd_opt(2002, 4, 16).expect("date"),
            date_of_expiry: NaiveDate::from_ymd_opt(2012, 4, 15).expect("date"),
            personal_number: "ZE184226B".into(),
            portrait_ref: "portrait:specimen".into(),
        }
    }

    fn job() -> Job {
        let t = Utc
            .with_ymd_and_hms(2026, 11, 21, 22, 0, 0)
            .single()
            .expect("time");
        Job {
            id: JobId(1),
            tracking: TrackingNumber::new("TRK-1"),
            doc_type: DocumentType::Ordinary,
            class: PriorityClass::FastTrack,
            groups: vec![],
            due: t + chrono::Duration::hours(8),
            destination: Destination::new("LHR-01"),
            received_at: t,
            data: specimen_data(),
        }
    }

    fn run(op: &str) -> StepRun {
        StepRun {
            station: StationId::new("PRN-1"),
            device: DeviceId::new("PRN-1/printer"),
            operator: OperatorId::new(op),
            started_at: Utc
                .with_ymd_and_hms(2026, 11, 21, 23, 0, 0)
                .single()
                .expect("time"),
        }
    }

    #[test]
    fn debug_and_display_never_show_passport_holder_data() {
        let j = job();
        for text in [
            format!("{j:?}"),
            format!("{j}"),
            format!("{:?}", JobRecord::new(j.clone())),
        ] {
            for secret in [
                "ERIKSSON",
                "ANNA",
                "MARIA",
                "1974",
                "ZENITH",
                "portrait:specimen",
                "ZE184226B",
            ] {
                assert!(!text.contains(secret), "{secret} leaked in {text}");
            }
        }
        assert!(
            format!("{j:?}").contains("L898902C3"),
            "the document number is not biodata"
        );
    }

    #[test]
    fn happy_path_through_every_stage() {
        let mut r = JobRecord::new(job());
        let events = [
            JobEvent::Queue,
            JobEvent::Start {
                stage: Stage::Print,
                run: run("A"),
            },
            JobEvent::Finish {
                stage: Stage::Print,
                serial: Some("BK-9001234".into()),
            },
            JobEvent::Start {
                stage: Stage::Laminate,
                run: run("B"),
            },
            JobEvent::Finish {
                stage: Stage::Laminate,
                serial: Some("0041200".into()),
            },
            JobEvent::Start {
                stage: Stage::Qc,
                run: run("C"),
            },
            JobEvent::Finish {
                stage: Stage::Qc,
                serial: None,
            },
            JobEvent::Dispatch {
                bag: "LHR-01/2026-11-22/1".into(),
            },
        ];
        let mut names = vec![r.state.name()];
        for e in &events {
            r = r.apply(e, &Separation::strict()).expect("allowed");
            names.push(r.state.name());
        }
        assert_eq!(
            names,
            [
                "received",
                "queued",
                "printing",
                "printed",
                "laminating",
                "laminated",
                "qc",
                "ready",
                "dispatched"
            ]
        );
        assert_eq!(
            r.crew.printed.as_ref().map(|s| s.operator.as_str()),
            Some("A")
        );
        assert_eq!(
            r.crew.laminated.as_ref().map(|s| s.operator.as_str()),
            Some("B")
        );
        assert_eq!(
            r.crew.checked.as_ref().map(|s| s.operator.as_str()),
            Some("C")
        );
        assert_eq!(r.crew.booklet.as_deref(), Some("BK-9001234"));
        assert_eq!(r.crew.patch.as_deref(), Some("0041200"));
        assert!(r.state.is_final());
    }

    #[test]
    fn refusals_name_state_and_event() {
        let queued = JobState::Queued;
        let err = queued
            .apply(&JobEvent::Start {
                stage: Stage::Laminate,
                run: run("B"),
            })
            .expect_err("cannot laminate an unprinted job");
        assert_eq!(
            err.to_string(),
            "a job that is queued cannot start: it waits for print, not laminate"
        );
        let printing = JobState::Printing { run: run("A") };
        assert!(
            printing
                .apply(&JobEvent::Cancel { reason: "x".into() })
                .is_err()
        );
        assert!(printing.apply(&JobEvent::Hold).is_err());
        assert!(
            printing
                .apply(&JobEvent::Finish {
                    stage: Stage::Laminate,
                    serial: None
                })
                .is_err()
        );
        let done = JobState::Dispatched { bag: "b".into() };
        for e in [
            JobEvent::Queue,
            JobEvent::Hold,
            JobEvent::Cancel { reason: "x".into() },
            JobEvent::Interrupt,
        ] {
            assert!(done.apply(&e).is_err(), "{} after dispatch", e.name());
        }
    }

    #[test]
    fn spoil_requeues_for_print_with_a_fresh_crew() {
        let mut r = JobRecord::new(job());
        for e in [
            JobEvent::Queue,
            JobEvent::Start {
                stage: Stage::Print,
                run: run("A"),
            },
            JobEvent::Finish {
                stage: Stage::Print,
                serial: Some("BK-1".into()),
            },
            JobEvent::Start {
                stage: Stage::Laminate,
                run: run("B"),
            },
            JobEvent::Spoil {
                reason: SpoilReason::LaminationDefect,
            },
        ] {
            r = r.apply(&e, &Separation::strict()).expect("allowed");
        }
        assert_eq!(
            r.state,
            JobState::SpoiledRequeued {
                reason: SpoilReason::LaminationDefect
            }
        );
        assert_eq!(r.spoiled, 1);
        assert_eq!(
            r.crew,
            Crew::default(),
            "a new booklet means a new chain of custody"
        );
        let again = r
            .apply(
                &JobEvent::Start {
                    stage: Stage::Print,
                    run: run("D"),
                },
                &Separation::strict(),
            )
            .expect("reprint");
        assert_eq!(again.state.name(), "printing");
    }

    #[test]
    fn hold_release_returns_to_the_same_queue() {
        for (w, st) in [
            (Waiting::Queued, JobState::Queued),
            (Waiting::Printed, JobState::Printed),
            (Waiting::Laminated, JobState::Laminated),
            (Waiting::Ready, JobState::Ready),
        ] {
            let held = st.apply(&JobEvent::Hold).expect("hold");
            assert_eq!(held, JobState::Held { resume: w });
            assert_eq!(held.apply(&JobEvent::Release).expect("release"), st);
        }
    }

    #[test]
    fn interrupted_step_needs_inspection_and_is_never_rerun_silently() {
        let printing = JobState::Printing { run: run("A") };
        let ni = printing.apply(&JobEvent::Interrupt).expect("interrupt");
        assert_eq!(ni.name(), "needs_inspection");
        assert!(
            ni.apply(&JobEvent::Start {
                stage: Stage::Print,
                run: run("A")
            })
            .is_err()
        );
        assert_eq!(
            ni.apply(&JobEvent::Inspect {
                verdict: InspectionVerdict::RetryStep,
                serial: None,
            })
            .expect("ok"),
            JobState::Queued
        );
        assert_eq!(
            ni.apply(&JobEvent::Inspect {
                verdict: InspectionVerdict::StepCompleted,
                serial: Some("BK-1".into()),
            })
            .expect("ok"),
            JobState::Printed
        );
        assert_eq!(
            ni.apply(&JobEvent::Inspect {
                verdict: InspectionVerdict::Spoil,
                serial: None,
            })
            .expect("ok")
            .name(),
            "spoiled_requeued"
        );
    }

    #[test]
    fn stored_record_is_versioned_and_round_trips() {
        let r = JobRecord::new(job())
            .apply(&JobEvent::Queue, &Separation::strict())
            .expect("queue");
        let json = serde_json::to_string(&StoredJobRecord::from(r.clone())).expect("ser");
        assert!(json.starts_with(r#"{"v":"1""#), "{json}");
        let back: StoredJobRecord = serde_json::from_str(&json).expect("de");
        assert_eq!(JobRecord::from(back), r);
    }

    fn printed_by(op: &str) -> JobRecord {
        let mut r = JobRecord::new(job());
        for e in [
            JobEvent::Queue,
            JobEvent::Start {
                stage: Stage::Print,
                run: run(op),
            },
            JobEvent::Finish {
                stage: Stage::Print,
                serial: Some("BK-9001234".into()),
            },
        ] {
            r = r.apply(&e, &Separation::strict()).expect("allowed");
        }
        r
    }

    #[test]
    fn the_record_refuses_the_printer_at_lamination_and_both_at_qc() {
        let r = printed_by("A");
        let strict = Separation::strict();
        let lam_a = JobEvent::Start {
            stage: Stage::Laminate,
            run: run("A"),
        };
        let err = r.apply(&lam_a, &strict).expect_err("A printed it");
        assert_eq!(
            err.to_string(),
            "a job that is printed cannot start: operator A printed this booklet"
        );
        let relaxed = Separation {
            qc_independent: false,
        };
        assert!(
            r.apply(&lam_a, &relaxed).is_err(),
            "printer/laminator separation is not configurable"
        );
        let r = r
            .apply(
                &JobEvent::Start {
                    stage: Stage::Laminate,
                    run: run("B"),
                },
                &strict,
            )
            .and_then(|r| {
                r.apply(
                    &JobEvent::Finish {
                        stage: Stage::Laminate,
                        serial: Some("0041200".into()),
                    },
                    &strict,
                )
            })
            .expect("B laminates");
        for (op, word) in [("A", "printed"), ("B", "laminated")] {
            let qc = JobEvent::Start {
                stage: Stage::Qc,
                run: run(op),
            };
            let err = r.apply(&qc, &strict).expect_err("QC is a third person");
            assert!(
                err.to_string()
                    .ends_with(&format!("operator {op} {word} this booklet")),
                "{err}"
            );
            assert!(r.apply(&qc, &relaxed).is_ok(), "relaxed QC allows {op}");
        }
        assert!(
            r.apply(
                &JobEvent::Start {
                    stage: Stage::Qc,
                    run: run("C")
                },
                &strict
            )
            .is_ok()
        );
    }

    #[test]
    fn print_and_lamination_cannot_finish_without_their_serial() {
        let strict = Separation::strict();
        let mut r = JobRecord::new(job());
        for e in [
            JobEvent::Queue,
            JobEvent::Start {
                stage: Stage::Print,
                run: run("A"),
            },
        ] {
            r = r.apply(&e, &strict).expect("allowed");
        }
        let err = r
            .apply(
                &JobEvent::Finish {
                    stage: Stage::Print,
                    serial: None,
                },
                &strict,
            )
            .expect_err("no booklet serial");
        assert!(err.to_string().contains("booklet serial"), "{err}");
        let ni = r.apply(&JobEvent::Interrupt, &strict).expect("interrupt");
        let done_without = JobEvent::Inspect {
            verdict: InspectionVerdict::StepCompleted,
            serial: None,
        };
        assert!(ni.apply(&done_without, &strict).is_err());
        let done = JobEvent::Inspect {
            verdict: InspectionVerdict::StepCompleted,
            serial: Some("BK-7".into()),
        };
        let printed = ni.apply(&done, &strict).expect("inspected");
        assert_eq!(printed.crew.booklet.as_deref(), Some("BK-7"));
        assert_eq!(
            printed.crew.printed.as_ref().map(|s| s.operator.as_str()),
            Some("A")
        );
    }

    #[test]
    fn regression_hold_and_release_of_a_spoiled_job_counts_one_spoil_and_keeps_its_reason() {
        let strict = Separation::strict();
        let mut r = JobRecord::new(job());
        for e in [
            JobEvent::Queue,
            JobEvent::Start {
                stage: Stage::Print,
                run: run("A"),
            },
            JobEvent::Spoil {
                reason: SpoilReason::Jam,
            },
            JobEvent::Hold,
            JobEvent::Release,
        ] {
            r = r.apply(&e, &strict).expect("allowed");
        }
        assert_eq!(r.spoiled, 1);
        assert_eq!(
            r.state,
            JobState::SpoiledRequeued {
                reason: SpoilReason::Jam
            }
        );
    }

    #[test]
    fn a_defect_found_between_steps_spoils_and_requeues() {
        let strict = Separation::strict();
        let r = printed_by("A");
        let held = r.apply(&JobEvent::Hold, &strict).expect("hold");
        let spoiled = held
            .apply(
                &JobEvent::Spoil {
                    reason: SpoilReason::PrintDefect,
                },
                &strict,
            )
            .expect("a held booklet found defective is spoiled");
        assert_eq!(spoiled.state.name(), "spoiled_requeued");
        assert_eq!(spoiled.spoiled, 1);
        let spoiled = r
            .apply(
                &JobEvent::Spoil {
                    reason: SpoilReason::PrintDefect,
                },
                &strict,
            )
            .expect("spoil");
        assert_eq!(spoiled.crew, Crew::default());
        assert!(
            JobState::Queued
                .apply(&JobEvent::Spoil {
                    reason: SpoilReason::Jam
                })
                .is_err(),
            "nothing printed yet"
        );
    }

    #[test]
    fn a_reported_defect_waits_for_the_decision_then_spoils_or_stands() {
        let strict = Separation::strict();
        let r = printed_by("A");
        let lam = r
            .apply(
                &JobEvent::Start {
                    stage: Stage::Laminate,
                    run: run("B"),
                },
                &strict,
            )
            .expect("B laminates");
        let report = JobEvent::ReportDefect {
            reason: SpoilReason::LaminationDefect,
        };
        let reported = lam.apply(&report, &strict).expect("reported");
        assert_eq!(reported.state.name(), "defect_reported");
        assert_eq!(reported.spoiled, 0, "not spoiled on the operator's word");
        assert!(reported.state.waiting().is_none() && reported.state.in_step().is_none());
        // Nothing else happens to it while it waits: no hold, no cancel, no second report.
        for e in [
            JobEvent::Hold,
            JobEvent::Cancel { reason: "x".into() },
            report.clone(),
        ] {
            assert!(reported.apply(&e, &strict).is_err(), "{e:?}");
        }
        // Approved: spoiled once, back to printing with a fresh crew.
        let spoiled = reported
            .apply(
                &JobEvent::Spoil {
                    reason: SpoilReason::LaminationDefect,
                },
                &strict,
            )
            .expect("approved");
        assert_eq!(spoiled.state.name(), "spoiled_requeued");
        assert_eq!(
            (spoiled.spoiled, spoiled.crew.clone()),
            (1, Crew::default())
        );
        // Rejected: the lamination stands, with its patch and laminator.
        assert!(
            reported
                .apply(&JobEvent::RejectDefect { serial: None }, &strict)
                .is_err(),
            "a lamination stands only with its patch"
        );
        let stands = reported
            .apply(
                &JobEvent::RejectDefect {
                    serial: Some("0041200".into()),
                },
                &strict,
            )
            .expect("rejected");
        assert_eq!(stands.state, JobState::Laminated);
        assert_eq!(stands.spoiled, 0);
        assert_eq!(stands.crew.patch.as_deref(), Some("0041200"));
        assert_eq!(
            stands.crew.laminated.as_ref().map(|r| r.operator.as_str()),
            Some("B")
        );
        assert_eq!(stands.crew.booklet.as_deref(), Some("BK-9001234"));
        // A QC step or a waiting job has no defect report.
        assert!(JobState::Printed.apply(&report).is_err());
    }
}
