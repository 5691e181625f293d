//! The simulated issuance system: synthetic jobs with a realistic mix of classes, document types
//! and destinations, and obviously fake holders.
//!
//! A job's holder (name, dates, document number, document type) is a pure function of its
//! tracking number, `DM-<issue date>-<time>-<n>`: the QC station's simulated MRZ reader
//! ([`read_mrz`]) gets from the tracking number on its terminal what the printer printed, as a
//! real reader gets it from the data page. Nothing of the holder is ever logged.

use std::time::Duration;

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use hallctl_jobs::intake::{IntakeContext, JobRequest, PersonalizationRequest, validate};
use hallctl_jobs::job::JobId;

use super::dice::Dice;

/// Surnames no one carries: the holders are obviously synthetic.
pub const SURNAMES: &[&str] = &[
    "SPECIMEN",
    "SAMPLE",
    "EXAMPLE",
    "DEMONSTRATION",
    "PLACEHOLDER",
    "FICTITIOUS",
    "SYNTHETIC",
    "TESTCASE",
];

/// Given names: the ICAO spelling alphabet.
const GIVEN_NAMES: &[&str] = &[
    "ALFA", "BRAVO", "CHARLIE", "DELTA", "ECHO", "FOXTROT", "GOLF", "HOTEL", "INDIA", "JULIETT",
    "KILO", "LIMA", "MIKE", "NOVEMBER", "OSCAR", "PAPA", "QUEBEC", "ROMEO", "SIERRA", "TANGO",
    "UNIFORM", "VICTOR", "WHISKEY", "XRAY", "YANKEE", "ZULU",
];

/// Regional passport offices per zone (the agency's 232 offices in 8 zones).
const ZONES: &[(&str, u32)] = &[
    ("CP", 55), // Central Punjab
    ("SP", 28), // South Punjab
    ("NP", 13), // North Punjab
    ("KP", 41), // Khyber Pakhtunkhwa
    ("SD", 37), // Sindh
    ("BL", 33), // Balochistan
    ("AJ", 19), // AJK / GB
    ("HQ", 6),  // Headquarters
];

/// Missions abroad per region (93 missions).
const MISSIONS: &[(&str, u32)] = &[
    ("AF", 10), // Africa
    ("AM", 12), // America
    ("AS", 41), // Asia
    ("AU", 3),  // Australia
    ("EU", 27), // Europe
];

/// Every destination office: `RPO-CP-01` (a regional office) or `MSN-EU-07` (a mission).
pub fn destinations() -> (Vec<String>, Vec<String>) {
    let expand = |prefix: &str, list: &[(&str, u32)]| -> Vec<String> {
        list.iter()
            .flat_map(|(zone, n)| (1..=*n).map(move |i| format!("{prefix}-{zone}-{i:02}")))
            .collect()
    };
    (expand("RPO", ZONES), expand("MSN", MISSIONS))
}

/// A demo tracking number: `DM-20261121-224805123-0007` (issued on 2026-11-21, the 7th of the
/// batch sent at 22:48:05.123).
pub fn tracking_number(at: DateTime<Utc>, n: usize) -> String {
    format!("DM-{}-{n:04}", at.format("%Y%m%d-%H%M%S%3f"))
}

fn issue_date(tracking: &str) -> Option<NaiveDate> {
    let date = tracking.strip_prefix("DM-")?.get(..8)?;
    NaiveDate::parse_from_str(date, "%Y%m%d").ok()
}

/// The document type of a demo job (94 % ordinary, 5 % official, 1 % diplomatic).
fn doc_type(dice: &mut Dice) -> &'static str {
    match dice.below(100) {
        0 => "diplomatic",
        1..=5 => "official",
        _ => "ordinary",
    }
}

/// The document type and holder of a demo job, from its tracking number alone.
fn holder(tracking: &str, issuing_state: &str) -> Option<(&'static str, PersonalizationRequest)> {
    let issued = issue_date(tracking)?;
    let mut d = Dice::of_text(tracking);
    let doc = doc_type(&mut d);
    let age_years = 1 + d.below(79) as u32;
    let born = issued
        .checked_sub_months(Months::new(12 * age_years))?
        .checked_sub_days(chrono::Days::new(d.below(365)))?;
    // Adults get ten years, children five (the last day is the day before the anniversary).
    let validity = if age_years >= 18 { 10 } else { 5 };
    let expiry = issued
        .checked_add_months(Months::new(12 * validity))?
        .pred_opt()?;
    let mut given = d.pick(GIVEN_NAMES).to_string();
    if d.chance(0.4) {
        given.push(' ');
        let second: &&str = d.pick(GIVEN_NAMES);
        given.push_str(second);
    }
    Some((
        doc,
        PersonalizationRequest {
            surname: d.pick(SURNAMES).to_string(),
            given_names: given,
            nationality: issuing_state.to_string(),
            date_of_birth: born.format("%Y-%m-%d").to_string(),
            sex: if d.chance(0.5) { "female" } else { "male" }.into(),
            place_of_birth: "SPECIMEN CITY".into(),
            issuing_state: issuing_state.to_string(),
            document_number: format!("DM{:07}", d.below(10_000_000)),
            date_of_issue: issued.format("%Y-%m-%d").to_string(),
            date_of_expiry: expiry.format("%Y-%m-%d").to_string(),
            personal_number: String::new(),
            portrait_ref: "demo:no-portrait".into(),
        },
    ))
}

/// What the issuance system sends, and how fast.
#[derive(Debug, Clone)]
pub struct JobMix {
    /// Hall time runs this many times as fast as the clock (due times shrink with it).
    pub speed: f64,
    /// The hall's issuing state (nationality and issuing state of every holder).
    pub issuing_state: String,
    regional: Vec<String>,
    missions: Vec<String>,
}

impl JobMix {
    /// The mix for a hall issuing for `issuing_state`, at `speed`.
    pub fn new(speed: f64, issuing_state: &str) -> Self {
        let (regional, missions) = destinations();
        JobMix {
            speed,
            issuing_state: issuing_state.to_string(),
            regional,
            missions,
        }
    }

    /// One job: 80 % normal, 15 % urgent, 5 % fast-track (due in 5 days, 12 h, 4 h of hall
    /// time); 85 % for regional offices, 15 % for missions; a few in a pilgrims' group.
    pub fn request(&self, tracking: String, now: DateTime<Utc>, dice: &mut Dice) -> JobRequest {
        let (doc, personalization) = holder(&tracking, &self.issuing_state)
            .unwrap_or_else(|| ("ordinary", PersonalizationRequest::default()));
        let (class, window_h) = match dice.below(100) {
            0..=4 => ("fast_track", 4.0),
            5..=19 => ("urgent", 12.0),
            _ => ("normal", 120.0),
        };
        let mut groups = Vec::new();
        if class != "fast_track" && dice.chance(0.03) {
            groups.push(format!("HAJJ-{}", now.year() + 1));
        }
        let window = Duration::from_secs_f64(window_h * 3600.0 / self.speed.max(0.01))
            .max(Duration::from_secs(120));
        let due = now + chrono::Duration::from_std(window).unwrap_or(chrono::Duration::hours(4));
        let destination = if dice.chance(0.85) {
            dice.pick(&self.regional)
        } else {
            dice.pick(&self.missions)
        };
        JobRequest {
            tracking_number: tracking,
            doc_type: doc.into(),
            class: class.into(),
            groups,
            due: due.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            destination: destination.clone(),
            personalization,
        }
    }

    /// `n` jobs submitted together at `now`.
    pub fn batch(&self, n: usize, now: DateTime<Utc>, dice: &mut Dice) -> Vec<JobRequest> {
        (1..=n)
            .map(|i| self.request(tracking_number(now, i), now, dice))
            .collect()
    }
}

/// The simulated MRZ reader of a QC station: the two MRZ lines of the demo job with this
/// tracking number, as printed on its data page. `None` for a job the demo did not make.
pub fn read_mrz(tracking: &str, issuing_state: &str) -> Option<[String; 2]> {
    let (doc, personalization) = holder(tracking, issuing_state)?;
    let now = Utc::now();
    // Only the holder matters for the MRZ; the rest just has to pass intake.
    let req = JobRequest {
        tracking_number: tracking.to_string(),
        doc_type: doc.into(),
        class: "normal".into(),
        groups: Vec::new(),
        due: (now + chrono::Duration::days(1))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        destination: "RPO-HQ-01".into(),
        personalization,
    };
    let ctx = IntakeContext {
        now,
        job_id: JobId(1),
        known_destinations: None,
        issuing_states: None,
    };
    let job = validate(&req, &ctx).ok()?;
    let mrz = hallctl_jobs::mrz::generate(job.doc_type, &job.data).ok()?;
    Some([mrz.line1().to_string(), mrz.line2().to_string()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_generated_job_passes_intake_and_its_mrz_reads_back() {
        let mix = JobMix::new(50.0, "PAK");
        let mut dice = Dice::seeded(3);
        let now = Utc::now();
        let mut classes = std::collections::BTreeMap::new();
        for req in mix.batch(2_000, now, &mut dice) {
            let pak = ["PAK".to_string()];
            let ctx = IntakeContext {
                now,
                job_id: JobId(1),
                known_destinations: None,
                issuing_states: Some(&pak),
            };
            let job =
                validate(&req, &ctx).unwrap_or_else(|e| panic!("{}: {e}", req.tracking_number));
            let mrz = hallctl_jobs::mrz::generate(job.doc_type, &job.data).expect("an MRZ");
            let read = read_mrz(&req.tracking_number, "PAK").expect("readable");
            assert_eq!(read, [mrz.line1().to_string(), mrz.line2().to_string()]);
            *classes.entry(req.class.clone()).or_insert(0) += 1;
        }
        assert_eq!(classes.len(), 3, "every class appears: {classes:?}");
    }

    #[test]
    fn the_destinations_are_the_agencys_offices_and_missions() {
        let (regional, missions) = destinations();
        assert_eq!(regional.len(), 232);
        assert_eq!(missions.len(), 93);
        assert!(regional.iter().chain(&missions).all(|d| d.len() <= 16));
    }

    #[test]
    fn a_tracking_number_not_made_by_the_demo_reads_nothing() {
        assert_eq!(read_mrz("TRK-1", "PAK"), None);
        assert!(read_mrz(&tracking_number(Utc::now(), 1), "PAK").is_some());
    }
}
