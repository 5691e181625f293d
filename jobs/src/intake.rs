//! Intake: turning what the issuance system sends into a [`Job`], or saying exactly what is wrong.
//!
//! A [`JobRequest`] is the raw submission. Everything in it is text (dates too), so that a bad
//! value becomes one of *our* errors, naming the field, instead of a deserializer message about
//! the whole document. [`validate`] checks every field and returns all problems at once: the
//! issuance system fixes a rejected job in one round trip, and an invalid job never reaches the
//! queue.
//!
//! Error messages name the field with a dotted path (`personalization.date_of_birth`,
//! `groups[2]`) and say what is expected. They never repeat the submitted value: for biodata that
//! would put passport-holder data into logs and API responses, and for the rest the client has the
//! value anyway.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::country;
use crate::job::{
    Destination, DocumentType, GroupTag, Job, JobId, Personalization, PriorityClass, Sex,
    TrackingNumber,
};
use crate::mrz::{self, MrzError};

/// Longest tracking number accepted.
pub const TRACKING_NUMBER_MAX_LEN: usize = 64;
/// Most group tags on one job.
pub const MAX_GROUPS: usize = 8;
/// Longest group tag.
pub const GROUP_TAG_MAX_LEN: usize = 32;
/// Longest destination code.
pub const DESTINATION_MAX_LEN: usize = 16;
/// Longest surname or given names, as submitted (the MRZ truncates; the data page does not).
pub const NAME_MAX_LEN: usize = 100;
/// Longest place of birth.
pub const PLACE_OF_BIRTH_MAX_LEN: usize = 64;
/// Longest portrait reference.
pub const PORTRAIT_REF_MAX_LEN: usize = 256;
/// How far ahead a due time may be. Group batches (pilgrims) are planned months ahead; a due time
/// years away is a client bug, and would sit in the queue for ever.
pub const DUE_HORIZON_DAYS: i64 = 366;
/// Oldest plausible holder, in years.
pub const MAX_AGE_YEARS: u32 = 150;
/// Longest validity of a passport, in years (one extra day is tolerated, see [`validate`]).
pub const MAX_VALIDITY_YEARS: u32 = 10;

/// A job as submitted by the issuance system (the body of a submission, one per job).
///
/// Missing fields read as empty, so that they are reported by [`validate`] together with every
/// other problem; unknown fields are refused outright, since they mean the two systems disagree
/// about the format. Holds biodata: `Debug` shows only the tracking and document numbers.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct JobRequest {
    /// The issuance system's tracking number (idempotency key): `A`–`Z`, `a`–`z`, `0`–`9`, `-`,
    /// `_`, `.`; at most 64 characters.
    pub tracking_number: String,
    /// `ordinary`, `official` or `diplomatic`.
    pub doc_type: String,
    /// `normal`, `urgent` or `fast_track`.
    pub class: String,
    /// Group tags such as `HAJJ-2027`: `A`–`Z`, `0`–`9`, `-`.
    pub groups: Vec<String>,
    /// When the passport must be ready for dispatch, RFC 3339 (`2026-11-22T08:00:00Z`).
    pub due: String,
    /// Destination office code (`LHR-01`, `ISB-03`).
    pub destination: String,
    /// What goes on the data page.
    pub personalization: PersonalizationRequest,
}

impl fmt::Debug for JobRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobRequest")
            .field("tracking_number", &self.tracking_number)
            .field("doc_type", &self.doc_type)
            .field("class", &self.class)
            .field("groups", &self.groups)
            .field("due", &self.due)
            .field("destination", &self.destination)
            .field("personalization", &self.personalization)
            .finish()
    }
}

/// The personalization data as submitted. Dates are `YYYY-MM-DD`.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct PersonalizationRequest {
    /// Surname (primary identifier), Latin script as on the data page.
    pub surname: String,
    /// Given names (secondary identifier), space separated; may be empty.
    pub given_names: String,
    /// Nationality: ISO 3166-1 alpha-3 or ICAO 9303 code.
    pub nationality: String,
    /// Date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// `female`, `male` or `unspecified`.
    pub sex: String,
    /// Place of birth (data page only).
    pub place_of_birth: String,
    /// Issuing state: ISO 3166-1 alpha-3 or ICAO 9303 code.
    pub issuing_state: String,
    /// Passport number: `A`–`Z`, `0`–`9`, at most 9.
    pub document_number: String,
    /// Date of issue, `YYYY-MM-DD`.
    pub date_of_issue: String,
    /// Date of expiry, `YYYY-MM-DD`.
    pub date_of_expiry: String,
    /// Optional data for the MRZ (personal number); may be empty.
    pub personal_number: String,
    /// Reference to the portrait held by the issuance system.
    pub portrait_ref: String,
}

impl fmt::Debug for PersonalizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalizationRequest")
            .field("document_number", &self.document_number)
            .finish_non_exhaustive()
    }
}

/// What validation needs besides the request: the controller supplies time and identity, so this
/// module reads no clock and stays deterministic.
#[derive(Debug, Clone, Copy)]
pub struct IntakeContext<'a> {
    /// The time of intake: becomes `received_at`, and the reference for every date check.
    pub now: DateTime<Utc>,
    /// The internal id the job gets if accepted.
    pub job_id: JobId,
    /// The destination offices configured for the hall; `None` checks the format only.
    pub known_destinations: Option<&'a BTreeSet<Destination>>,
    /// The issuing states the hall prints for (`hall.issuing_state(s)`, MRZ codes such as `PAK`
    /// or `D`); a job for any other is refused. `None` checks the code only (tools and tests
    /// without a hall).
    pub issuing_states: Option<&'a [String]>,
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Path of the field in the request (`personalization.date_of_birth`, `groups[1]`).
    pub field: String,
    /// What is expected, in plain words. Never contains the submitted value.
    pub message: String,
}

/// Every invalid field of a request (never empty).
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize)]
#[error("invalid job: {}", list(.0))]
pub struct IntakeErrors(pub Vec<FieldError>);

fn list(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl IntakeErrors {
    /// The paths of the fields in error, in request order.
    pub fn fields(&self) -> Vec<&str> {
        self.0.iter().map(|e| e.field.as_str()).collect()
    }

    /// Whether `field` is among the errors.
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| e.field == field)
    }
}

/// Collects errors while every field is checked.
#[derive(Default)]
struct Report(Vec<FieldError>);

impl Report {
    fn err(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Runs a check; its error (if any) is recorded under `field`.
    fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.err(field, message);
                None
            }
        }
    }
}

/// Non-blank, returned as given: codes and identifiers are not trimmed, so that stray whitespace
/// is reported instead of silently making `" TRK-1"` and `"TRK-1"` the same idempotency key.
fn required(s: &str) -> Result<&str, String> {
    if s.trim().is_empty() {
        Err("is required".into())
    } else {
        Ok(s)
    }
}

fn tracking_number(s: &str) -> Result<TrackingNumber, String> {
    let s = required(s)?;
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if s.len() > TRACKING_NUMBER_MAX_LEN
        || !s.chars().all(ok_char)
        || !s.starts_with(|c: char| c.is_ascii_alphanumeric())
    {
        return Err(format!(
            "must be 1-{TRACKING_NUMBER_MAX_LEN} characters A-Z, a-z, 0-9, '-', '_', '.', \
             starting with a letter or digit"
        ));
    }
    Ok(TrackingNumber::new(s))
}

fn doc_type(s: &str) -> Result<DocumentType, String> {
    match required(s)? {
        "ordinary" => Ok(DocumentType::Ordinary),
        "official" => Ok(DocumentType::Official),
        "diplomatic" => Ok(DocumentType::Diplomatic),
        _ => Err("must be one of ordinary, official, diplomatic".into()),
    }
}

fn class(s: &str) -> Result<PriorityClass, String> {
    let s = required(s)?;
    PriorityClass::ALL
        .into_iter()
        .find(|c| c.name() == s)
        .ok_or_else(|| "must be one of normal, urgent, fast_track".into())
}

fn sex(s: &str) -> Result<Sex, String> {
    match required(s)? {
        "female" => Ok(Sex::Female),
        "male" => Ok(Sex::Male),
        "unspecified" => Ok(Sex::Unspecified),
        _ => Err("must be one of female, male, unspecified".into()),
    }
}

/// Upper-case letters and digits with single inner hyphens, first character a letter or digit.
fn is_code(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

fn group_tag(s: &str) -> Result<GroupTag, String> {
    if !is_code(s, GROUP_TAG_MAX_LEN) {
        return Err(format!(
            "must be 1-{GROUP_TAG_MAX_LEN} characters A-Z, 0-9 and inner hyphens (e.g. HAJJ-2027)"
        ));
    }
    Ok(GroupTag::new(s))
}

fn destination(s: &str, known: Option<&BTreeSet<Destination>>) -> Result<Destination, String> {
    let s = required(s)?;
    if !is_code(s, DESTINATION_MAX_LEN) || !s.starts_with(|c: char| c.is_ascii_uppercase()) {
        return Err(format!(
            "must be 1-{DESTINATION_MAX_LEN} characters A-Z, 0-9 and inner hyphens, starting \
             with a letter (e.g. LHR-01)"
        ));
    }
    let d = Destination::new(s);
    match known {
        Some(set) if !set.contains(&d) => Err("is not a destination office of this hall".into()),
        _ => Ok(d),
    }
}

fn due(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = required(s)?;
    let due = DateTime::parse_from_rfc3339(s)
        .map_err(|_| "must be an RFC 3339 time with offset, e.g. 2026-11-22T08:00:00Z")?
        .with_timezone(&Utc);
    if due <= now {
        return Err("must be in the future".into());
    }
    if due > now + chrono::Duration::days(DUE_HORIZON_DAYS) {
        return Err(format!("must be at most {DUE_HORIZON_DAYS} days from now"));
    }
    Ok(due)
}

/// A calendar date written exactly `YYYY-MM-DD`.
fn date(s: &str) -> Result<NaiveDate, String> {
    let s = required(s)?;
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !shaped {
        return Err("must be a date written YYYY-MM-DD".into());
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| "is not a calendar date".into())
}

fn date_of_birth(s: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let d = date(s)?;
    if d > today {
        return Err("must not be in the future".into());
    }
    if today.checked_sub_months(Months::new(12 * MAX_AGE_YEARS)) > Some(d) {
        return Err(format!("must be within the last {MAX_AGE_YEARS} years"));
    }
    Ok(d)
}

/// Maps a field-level MRZ error to a message without the field prefix.
fn mrz_message(e: &MrzError) -> String {
    match e {
        MrzError::InvalidCharacter { .. } => "only A-Z and 0-9 are allowed".into(),
        MrzError::NotTransliterable { .. } => {
            "contains characters with no ICAO 9303 transliteration to A-Z (use Latin letters, \
             spaces, hyphens, apostrophes)"
                .into()
        }
        MrzError::Empty { .. } => "is required".into(),
        MrzError::TooLong { max, .. } => format!("must be at most {max} characters in the MRZ"),
        MrzError::UnknownCode { .. } => "must be an ISO 3166-1 alpha-3 or ICAO 9303 code".into(),
    }
}

fn name(s: &str, field: &'static str, needed: bool) -> Result<String, String> {
    let trimmed = s.trim();
    if needed && trimmed.is_empty() {
        return Err("is required".into());
    }
    if trimmed.chars().count() > NAME_MAX_LEN {
        return Err(format!("must be at most {NAME_MAX_LEN} characters"));
    }
    let mrz = mrz::transliterate_name(trimmed, field).map_err(|e| mrz_message(&e))?;
    if needed && mrz.is_empty() {
        return Err("must contain at least one letter".into());
    }
    Ok(trimmed.to_string())
}

fn free_text(s: &str, max: usize) -> Result<String, String> {
    let s = required(s)?.trim();
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_string())
}

fn code(s: &str, valid: fn(&str) -> bool, what: &str) -> Result<String, String> {
    let s = required(s)?;
    if let Some(icao) = country::icao_replacement(s) {
        return Err(format!("{s} is written {icao} in the MRZ (ICAO 9303)"));
    }
    if !valid(s) {
        return Err(format!(
            "must be an ISO 3166-1 alpha-3 code or an ICAO 9303 code valid as {what} (upper case, \
             e.g. PAK or D)"
        ));
    }
    Ok(s.to_string())
}

/// The issuing state must be one the hall prints for: a hall's blanks and patches are its
/// state's, whatever the issuance system sends.
fn hall_state(s: String, hall: Option<&[String]>) -> Result<String, String> {
    match hall {
        Some(states) if !states.contains(&s) => Err(match states {
            [] => "this hall is configured to print for no issuing state".into(),
            [one] => format!(
                "must be {one}: the issuing state this hall prints passports for \
                 (hall.issuing_state)"
            ),
            several => format!(
                "must be one of {}: the issuing states this hall prints passports for \
                 (hall.issuing_states)",
                several.join(", ")
            ),
        }),
        _ => Ok(s),
    }
}

fn document_number(s: &str) -> Result<String, String> {
    let s = required(s)?;
    if s.len() > mrz::DOCUMENT_NUMBER_LEN
        || !s
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        return Err(format!(
            "must be 1-{} characters A-Z and 0-9",
            mrz::DOCUMENT_NUMBER_LEN
        ));
    }
    Ok(s.to_string())
}

fn personal_number(s: &str) -> Result<String, String> {
    let s = s.trim();
    mrz::transliterate_optional_data(s).map_err(|e| match e {
        MrzError::TooLong { max, .. } => format!("must be at most {max} characters in the MRZ"),
        _ => "only letters, digits, spaces and hyphens are allowed".into(),
    })?;
    Ok(s.to_string())
}

/// Checks a submission and, if every field is valid, builds the [`Job`].
///
/// Date rules, with `today` the UTC date of `ctx.now`: the date of birth is not in the future and
/// within 150 years; the date of issue is not in the future and not before the birth; the date of
/// expiry is after the date of issue, not already past, and at most 10 years (and one day, for
/// states that count the issue day) after issue. The due time is after `ctx.now` and within a
/// year. Finally the MRZ must be generable from the data.
///
/// # Errors
/// [`IntakeErrors`] with one entry per invalid field, in request order.
pub fn validate(req: &JobRequest, ctx: &IntakeContext<'_>) -> Result<Job, IntakeErrors> {
    let mut r = Report::default();
    let today = ctx.now.date_naive();

    let tracking = r.check("tracking_number", tracking_number(&req.tracking_number));
    let doc = r.check("doc_type", doc_type(&req.doc_type));
    let class = r.check("class", class(&req.class));
    let mut groups = Vec::with_capacity(req.groups.len());
    if req.groups.len() > MAX_GROUPS {
        r.err("groups", format!("at most {MAX_GROUPS} group tags"));
    }
    for (i, g) in req.groups.iter().enumerate() {
        let path = format!("groups[{i}]");
        if let Some(tag) = r.check(&path, group_tag(g)) {
            if groups.contains(&tag) {
                r.err(path, "repeats an earlier group tag");
            } else {
                groups.push(tag);
            }
        }
    }
    let due = r.check("due", due(&req.due, ctx.now));
    let destination = r.check(
        "destination",
        destination(&req.destination, ctx.known_destinations),
    );

    let p = &req.personalization;
    let surname = r.check("personalization.surname", name(&p.surname, "surname", true));
    let given_names = r.check(
        "personalization.given_names",
        name(&p.given_names, "given_names", false),
    );
    let nationality = r.check(
        "personalization.nationality",
        code(&p.nationality, country::is_nationality_code, "nationality"),
    );
    let dob = r.check(
        "personalization.date_of_birth",
        date_of_birth(&p.date_of_birth, today),
    );
    let sex = r.check("personalization.sex", sex(&p.sex));
    let place_of_birth = r.check(
        "personalization.place_of_birth",
        free_text(&p.place_of_birth, PLACE_OF_BIRTH_MAX_LEN),
    );
    let issuing_state = r.check(
        "personalization.issuing_state",
        code(&p.issuing_state, country::is_issuing_code, "issuing state")
            .and_then(|s| hall_state(s, ctx.issuing_states)),
    );
    let number = r.check(
        "personalization.document_number",
        document_number(&p.document_number),
    );
    let issue = r.check(
        "personalization.date_of_issue",
        date(&p.date_of_issue).and_then(|d| {
            if d > today {
                Err("must not be in the future".into())
            } else if dob.is_some_and(|b| d < b) {
                Err("must not be before the date of birth".into())
            } else {
                Ok(d)
            }
        }),
    );
    let expiry = r.check(
        "personalization.date_of_expiry",
        date(&p.date_of_expiry).and_then(|d| {
            let longest = issue
                .and_then(|i| i.checked_add_months(Months::new(12 * MAX_VALIDITY_YEARS)))
                .and_then(|i| i.succ_opt());
            if issue.is_some_and(|i| d <= i) {
                Err("must be after the date of issue".into())
            } else if longest.is_some_and(|l| d > l) {
                Err(format!(
                    "must be at most {MAX_VALIDITY_YEARS} years after the date of issue"
                ))
            } else if d <= today {
                Err("must be in the future".into())
            } else {
                Ok(d)
            }
        }),
    );
    let personal = r.check(
        "personalization.personal_number",
        personal_number(&p.personal_number),
    );
    let portrait_ref = r.check(
        "personalization.portrait_ref",
        free_text(&p.portrait_ref, PORTRAIT_REF_MAX_LEN),
    );

    // Every `Option` is `Some` exactly when its field had no error.
    let (
        Some(tracking),
        Some(doc_type),
        Some(class),
        Some(due),
        Some(destination),
        Some(surname),
        Some(given_names),
        Some(nationality),
        Some(date_of_birth),
        Some(sex),
        Some(place_of_birth),
        Some(issuing_state),
        Some(document_number),
        Some(date_of_issue),
        Some(date_of_expiry),
        Some(personal_number),
        Some(portrait_ref),
    ) = (
        tracking,
        doc,
        class,
        due,
        destination,
        surname,
        given_names,
        nationality,
        dob,
        sex,
        place_of_birth,
        issuing_state,
        number,
        issue,
        expiry,
        personal,
        portrait_ref,
    )
    else {
        return Err(IntakeErrors(r.0));
    };
    if !r.0.is_empty() {
        return Err(IntakeErrors(r.0));
    }

    let data = Personalization {
        surname,
        given_names,
        nationality,
        date_of_birth,
        sex,
        place_of_birth,
        issuing_state,
        document_number,
        date_of_issue,
        date_of_expiry,
        personal_number,
        portrait_ref,
    };
    // The checks above cover every MRZ rule; this is the backstop that keeps "accepted" and
    // "printable" the same thing if the two ever drift apart.
    if let Err(e) = mrz::generate(doc_type, &data) {
        r.err(format!("personalization.{}", e.field()), mrz_message(&e));
        return Err(IntakeErrors(r.0));
    }
    Ok(Job {
        id: ctx.job_id,
        tracking,
        doc_type,
        class,
        groups,
        due,
        destination,
        received_at: ctx.now,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 22, 0, 0)
            .single()
            .expect("time")
    }

    fn ctx() -> IntakeContext<'static> {
        IntakeContext {
            now: now(),
            job_id: JobId(42),
            known_destinations: None,
            issuing_states: None,
        }
    }

    fn request() -> JobRequest {
        JobRequest {
            tracking_number: "TRK-2026-000123".into(),
            doc_type: "ordinary".into(),
            class: "urgent".into(),
            groups: vec!["HAJJ-2027".into()],
            due: "2026-11-23T08:00:00Z".into(),
            destination: "LHR-01".into(),
            personalization: PersonalizationRequest {
                surname: "Eriksson".into(),
                given_names: "Anna Maria".into(),
                nationality: "UTO".into(),
                date_of_birth: "1974-08-12".into(),
                sex: "female".into(),
                place_of_birth: "Zenith".into(),
                issuing_state: "UTO".into(),
                document_number: "L898902C3".into(),
                date_of_issue: "2026-11-21".into(),
                date_of_expiry: "2036-11-20".into(),
                personal_number: "ZE184226B".into(),
                portrait_ref: "portrait:specimen".into(),
            },
        }
    }

    fn with(f: impl FnOnce(&mut JobRequest)) -> JobRequest {
        let mut r = request();
        f(&mut r);
        r
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("date")
    }

    #[test]
    fn a_valid_request_becomes_the_job() {
        let job = validate(&request(), &ctx()).expect("valid");
        assert_eq!(job.id, JobId(42));
        assert_eq!(job.tracking, TrackingNumber::new("TRK-2026-000123"));
        assert_eq!(job.doc_type, DocumentType::Ordinary);
        assert_eq!(job.class, PriorityClass::Urgent);
        assert_eq!(job.groups, vec![GroupTag::new("HAJJ-2027")]);
        assert_eq!(
            job.due,
            Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0)
                .single()
                .expect("time")
        );
        assert_eq!(job.destination, Destination::new("LHR-01"));
        assert_eq!(job.received_at, now());
        let d = &job.data;
        assert_eq!(
            (d.surname.as_str(), d.given_names.as_str()),
            ("Eriksson", "Anna Maria")
        );
        assert_eq!(d.date_of_birth, date(1974, 8, 12));
        assert_eq!(d.sex, Sex::Female);
        assert_eq!(d.date_of_issue, date(2026, 11, 21));
        assert_eq!(d.date_of_expiry, date(2036, 11, 20));
        assert_eq!(d.document_number, "L898902C3");
        assert_eq!(d.personal_number, "ZE184226B");
        let m = mrz::generate(job.doc_type, d).expect("printable");
        assert_eq!(m.line1(), "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<");
    }

    #[test]
    fn accented_names_offsets_and_optional_fields_are_accepted() {
        let job = validate(
            &with(|r| {
                r.groups.clear();
                r.due = "2026-11-22T13:00:00+05:00".into();
                r.personalization.surname = "Müller-Lüdenscheidt".into();
                r.personalization.given_names = String::new();
                r.personalization.personal_number = String::new();
                r.personalization.nationality = "D".into();
                r.personalization.issuing_state = "D".into();
                r.personalization.date_of_expiry = "2036-11-22".into();
            }),
            &ctx(),
        )
        .expect("valid");
        assert_eq!(job.due.to_rfc3339(), "2026-11-22T08:00:00+00:00");
        assert!(job.groups.is_empty());
        let m = mrz::generate(job.doc_type, &job.data).expect("printable");
        assert!(m.line1().starts_with("P<D<<MUELLER<LUEDENSCHEIDT<<<"));
    }

    #[test]
    fn iso_codes_icao_replaces_get_the_icao_code_in_the_message() {
        let e = validate(
            &with(|r| r.personalization.nationality = "DEU".into()),
            &ctx(),
        )
        .expect_err("DEU");
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].message, "DEU is written D in the MRZ (ICAO 9303)");
    }

    #[test]
    fn each_invalid_field_is_reported_under_its_own_name() {
        let long = |n: usize| "A".repeat(n);
        type Case = (&'static str, Box<dyn Fn(&mut JobRequest)>);
        let cases: Vec<Case> = vec![
            (
                "tracking_number",
                Box::new(|r| r.tracking_number = String::new()),
            ),
            (
                "tracking_number",
                Box::new(|r| r.tracking_number = "TRK 1".into()),
            ),
            (
                "tracking_number",
                Box::new(move |r| r.tracking_number = long(65)),
            ),
            (
                "tracking_number",
                Box::new(|r| r.tracking_number = "-TRK".into()),
            ),
            (
                "tracking_number",
                Box::new(|r| r.tracking_number = " TRK-1".into()),
            ),
            (
                "destination",
                Box::new(|r| r.destination = "LHR-01 ".into()),
            ),
            ("doc_type", Box::new(|r| r.doc_type = "passport".into())),
            ("doc_type", Box::new(|r| r.doc_type = "Ordinary".into())),
            ("class", Box::new(|r| r.class = "express".into())),
            (
                "groups[0]",
                Box::new(|r| r.groups = vec!["hajj 2027".into()]),
            ),
            (
                "groups[1]",
                Box::new(|r| r.groups = vec!["A".into(), "A".into()]),
            ),
            ("groups[0]", Box::new(|r| r.groups = vec!["-A".into()])),
            (
                "groups",
                Box::new(|r| r.groups = (0..9).map(|i| format!("G{i}")).collect()),
            ),
            ("due", Box::new(|r| r.due = "tomorrow".into())),
            ("due", Box::new(|r| r.due = "2026-11-23T08:00:00".into())),
            ("due", Box::new(|r| r.due = "2026-11-21T21:59:59Z".into())),
            ("due", Box::new(|r| r.due = "2028-01-01T00:00:00Z".into())),
            ("destination", Box::new(|r| r.destination = String::new())),
            ("destination", Box::new(|r| r.destination = "lhr-01".into())),
            ("destination", Box::new(|r| r.destination = "01-LHR".into())),
            (
                "personalization.surname",
                Box::new(|r| r.personalization.surname = " ".into()),
            ),
            (
                "personalization.surname",
                Box::new(|r| r.personalization.surname = "Иванов".into()),
            ),
            (
                "personalization.surname",
                Box::new(|r| r.personalization.surname = "'-'".into()),
            ),
            (
                "personalization.surname",
                Box::new(move |r| r.personalization.surname = long(101)),
            ),
            (
                "personalization.given_names",
                Box::new(|r| r.personalization.given_names = "Ann4".into()),
            ),
            (
                "personalization.nationality",
                Box::new(|r| r.personalization.nationality = "ZZZ".into()),
            ),
            (
                "personalization.nationality",
                Box::new(|r| r.personalization.nationality = "XKX".into()),
            ),
            (
                "personalization.nationality",
                Box::new(|r| r.personalization.nationality = "pak".into()),
            ),
            (
                "personalization.date_of_birth",
                Box::new(|r| r.personalization.date_of_birth = "1974-02-30".into()),
            ),
            (
                "personalization.date_of_birth",
                Box::new(|r| r.personalization.date_of_birth = "12/08/1974".into()),
            ),
            (
                "personalization.date_of_birth",
                Box::new(|r| r.personalization.date_of_birth = "2026-11-22".into()),
            ),
            (
                "personalization.date_of_birth",
                Box::new(|r| r.personalization.date_of_birth = "1850-01-01".into()),
            ),
            (
                "personalization.sex",
                Box::new(|r| r.personalization.sex = "F".into()),
            ),
            (
                "personalization.sex",
                Box::new(|r| r.personalization.sex = String::new()),
            ),
            (
                "personalization.place_of_birth",
                Box::new(|r| r.personalization.place_of_birth = String::new()),
            ),
            (
                "personalization.place_of_birth",
                Box::new(|r| r.personalization.place_of_birth = "Zen\u{7}ith".into()),
            ),
            (
                "personalization.issuing_state",
                Box::new(|r| r.personalization.issuing_state = "XXA".into()),
            ),
            (
                "personalization.issuing_state",
                Box::new(|r| r.personalization.issuing_state = "UT".into()),
            ),
            (
                "personalization.issuing_state",
                Box::new(|r| r.personalization.issuing_state = "GBD".into()),
            ),
            (
                "personalization.issuing_state",
                Box::new(|r| r.personalization.issuing_state = "DEU".into()),
            ),
            (
                "personalization.nationality",
                Box::new(|r| r.personalization.nationality = "DEU".into()),
            ),
            (
                "personalization.document_number",
                Box::new(|r| r.personalization.document_number = "l898902c3".into()),
            ),
            (
                "personalization.document_number",
                Box::new(|r| r.personalization.document_number = "L898902C3X".into()),
            ),
            (
                "personalization.document_number",
                Box::new(|r| r.personalization.document_number = "L8989-02".into()),
            ),
            (
                "personalization.document_number",
                Box::new(|r| r.personalization.document_number = String::new()),
            ),
            (
                "personalization.date_of_issue",
                Box::new(|r| r.personalization.date_of_issue = "2026-11-22".into()),
            ),
            (
                "personalization.date_of_issue",
                Box::new(|r| r.personalization.date_of_issue = "1970-01-01".into()),
            ),
            (
                "personalization.date_of_issue",
                Box::new(|r| r.personalization.date_of_issue = "2026-13-01".into()),
            ),
            (
                "personalization.date_of_expiry",
                Box::new(|r| r.personalization.date_of_expiry = "2026-11-21".into()),
            ),
            (
                "personalization.date_of_expiry",
                Box::new(|r| r.personalization.date_of_expiry = "2036-11-23".into()),
            ),
            (
                "personalization.date_of_expiry",
                Box::new(|r| r.personalization.date_of_expiry = "20361120".into()),
            ),
            (
                "personalization.personal_number",
                Box::new(|r| r.personalization.personal_number = "ZE184226B1234567".into()),
            ),
            (
                "personalization.personal_number",
                Box::new(|r| r.personalization.personal_number = "ZE#18".into()),
            ),
            (
                "personalization.portrait_ref",
                Box::new(|r| r.personalization.portrait_ref = String::new()),
            ),
        ];
        for (field, mutate) in cases {
            let mut req = request();
            mutate(&mut req);
            let errors = validate(&req, &ctx()).expect_err(field);
            assert_eq!(errors.fields(), [field], "{errors}");
        }
    }

    #[test]
    fn names_longer_than_the_mrz_are_accepted_and_truncated_there_only() {
        let job = validate(
            &with(|r| {
                r.personalization.surname = "Bennelong Wooloomooloo Warrandyte Warnambool".into();
                r.personalization.given_names = "Dingo Potoroo".into();
            }),
            &ctx(),
        )
        .expect("valid");
        assert_eq!(
            job.data.surname, "Bennelong Wooloomooloo Warrandyte Warnambool",
            "the data page keeps the full name"
        );
        let m = mrz::generate(job.doc_type, &job.data).expect("printable");
        assert!(m.name_truncated());
        assert_eq!(&m.line1()[5..], "BENNELONG<WOOLOOMOOLOO<WARRANDYTE<W<<DI");
    }

    #[test]
    fn an_expired_passport_is_refused() {
        let errors = validate(
            &with(|r| {
                r.personalization.date_of_issue = "2016-01-01".into();
                r.personalization.date_of_expiry = "2025-12-31".into();
            }),
            &ctx(),
        )
        .expect_err("expired");
        assert_eq!(errors.fields(), ["personalization.date_of_expiry"]);
    }

    #[test]
    fn ten_years_and_one_day_is_the_longest_validity() {
        for (expiry, ok) in [
            ("2036-11-21", true),
            ("2036-11-22", true),
            ("2036-11-23", false),
        ] {
            let r = with(|r| r.personalization.date_of_expiry = expiry.into());
            assert_eq!(validate(&r, &ctx()).is_ok(), ok, "{expiry}");
        }
    }

    #[test]
    fn destinations_are_checked_against_the_hall_when_known() {
        let known: BTreeSet<Destination> = ["LHR-01", "ISB-03"].map(Destination::new).into();
        let ctx = IntakeContext {
            known_destinations: Some(&known),
            ..ctx()
        };
        assert!(validate(&request(), &ctx).is_ok());
        let errors =
            validate(&with(|r| r.destination = "KHI-02".into()), &ctx).expect_err("unknown office");
        assert_eq!(errors.fields(), ["destination"]);
    }

    #[test]
    fn the_issuing_state_must_be_one_the_hall_prints_for() {
        let pak = ["PAK".to_string()];
        let ctx_pak = IntakeContext {
            issuing_states: Some(&pak),
            ..ctx()
        };
        let state = |code: &str| with(|r| r.personalization.issuing_state = code.into());
        assert!(validate(&state("PAK"), &ctx_pak).is_ok());
        for code in ["GBR", "D", "FRA", "EUE", "UTO"] {
            let e = validate(&state(code), &ctx_pak).expect_err(code);
            assert_eq!(e.fields(), ["personalization.issuing_state"], "{code}");
            assert_eq!(
                e.0[0].message,
                "must be PAK: the issuing state this hall prints passports for \
                 (hall.issuing_state)",
                "{code}"
            );
        }
        // A code that is no issuing state at all keeps its own message.
        let e = validate(&state("DEU"), &ctx_pak).expect_err("DEU");
        assert!(e.0[0].message.contains("written D in the MRZ"), "{e}");
        // A hall of several states.
        let several = ["D".to_string(), "EUE".to_string()];
        let ctx_several = IntakeContext {
            issuing_states: Some(&several),
            ..ctx()
        };
        let job = validate(&state("D"), &ctx_several).expect("D");
        let m = mrz::generate(job.doc_type, &job.data).expect("printable");
        assert_eq!(&m.line1()[..5], "P<D<<");
        assert!(validate(&state("EUE"), &ctx_several).is_ok());
        let e = validate(&state("PAK"), &ctx_several).expect_err("PAK");
        assert_eq!(
            e.0[0].message,
            "must be one of D, EUE: the issuing states this hall prints passports for \
             (hall.issuing_states)"
        );
        // Without a hall (format checks only) any issuing code passes.
        assert!(validate(&state("UTO"), &ctx()).is_ok());
    }

    #[test]
    fn several_bad_fields_are_all_reported_in_request_order() {
        let req = with(|r| {
            r.class = "vip".into();
            r.due = "soon".into();
            r.personalization.date_of_birth = "1974-13-12".into();
            r.personalization.sex = "?".into();
            r.personalization.document_number = "TOO-LONG-NUMBER".into();
        });
        let errors = validate(&req, &ctx()).expect_err("invalid");
        assert_eq!(
            errors.fields(),
            [
                "class",
                "due",
                "personalization.date_of_birth",
                "personalization.sex",
                "personalization.document_number"
            ]
        );
        let empty = validate(&JobRequest::default(), &ctx()).expect_err("empty");
        for field in [
            "tracking_number",
            "doc_type",
            "class",
            "due",
            "destination",
            "personalization.surname",
            "personalization.nationality",
            "personalization.date_of_birth",
            "personalization.sex",
            "personalization.place_of_birth",
            "personalization.issuing_state",
            "personalization.document_number",
            "personalization.date_of_issue",
            "personalization.date_of_expiry",
            "personalization.portrait_ref",
        ] {
            assert!(empty.has(field), "{field} missing from {empty}");
        }
        assert!(
            !empty.has("personalization.given_names"),
            "given names are optional"
        );
    }

    #[test]
    fn error_messages_never_repeat_biodata() {
        let req = with(|r| {
            r.personalization.surname = "Ивановa".into();
            r.personalization.given_names = "Zoë7".into();
            r.personalization.date_of_birth = "1974-02-31".into();
            r.personalization.place_of_birth = "Secretville\u{1}".into();
            r.personalization.document_number = "SECRET-NO-1".into();
            r.personalization.personal_number = "PN#SECRET".into();
            r.personalization.nationality = "QQQ".into();
        });
        let errors = validate(&req, &ctx()).expect_err("invalid");
        assert_eq!(errors.0.len(), 7, "{errors}");
        let text = format!("{errors} {errors:?}");
        for secret in [
            "Иванов",
            "Zoë",
            "1974-02-31",
            "Secretville",
            "SECRET",
            "QQQ",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }

    #[test]
    fn requests_deserialize_strictly_and_debug_is_redacted() {
        let json = serde_json::to_string(&request()).expect("ser");
        let back: JobRequest = serde_json::from_str(&json).expect("de");
        assert_eq!(back, request());
        let unknown = json.replacen("{", r#"{"priority":"high","#, 1);
        assert!(serde_json::from_str::<JobRequest>(&unknown).is_err());
        let nested_unknown = json.replacen(r#""surname""#, r#""middle_name":"X","surname""#, 1);
        assert!(serde_json::from_str::<JobRequest>(&nested_unknown).is_err());
        let partial: JobRequest =
            serde_json::from_str(r#"{"tracking_number":"T-1"}"#).expect("missing fields default");
        assert!(validate(&partial, &ctx()).is_err());

        let text = format!("{:?}", request());
        assert!(
            text.contains("TRK-2026-000123") && text.contains("L898902C3"),
            "{text}"
        );
        for secret in [
            "Eriksson",
            "Anna",
            "1974",
            "Zenith",
            "ZE184226B",
            "portrait:",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}
