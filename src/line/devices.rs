//! The line's side of the devices: one enum over the driver handles, the step each kind runs,
//! and the readiness each reports.
//!
//! A device step is a task on the tokio runtime. It reports its end to the line actor, which
//! decides what it means for the job (a fault spoils the item and requeues the job). A step that
//! ends well reports what the device's own reader read (the printer's booklet read-back, the
//! laminator's patch reader, a bridge's `done` serial): the actor compares it with the scanned
//! serial (issue 16).

use std::time::Duration;

use hallctl_drivers::bridge::BridgeHandle;
use hallctl_drivers::laminator::{LaminatorHandle, LaminatorState};
use hallctl_drivers::printer::{DataField, JobData, PrinterEvent, PrinterHandle};
use hallctl_jobs::job::Job;
use hallctl_jobs::scheduler::DeviceReadiness;
use tokio::sync::broadcast::error::RecvError;

/// A driver handle, whatever the kind of device.
#[derive(Debug, Clone)]
pub enum DeviceHandle {
    /// A passport printer (binary vendor protocol on its own serial port).
    Printer(PrinterHandle),
    /// A laminator (a Modbus RTU unit on an RS-485 bus).
    Laminator(LaminatorHandle),
    /// A vendor SDK behind the JSON-lines bridge.
    Bridge(BridgeHandle),
}

impl DeviceHandle {
    /// The device kind, for views.
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceHandle::Printer(_) => "printer",
            DeviceHandle::Laminator(_) => "laminator",
            DeviceHandle::Bridge(_) => "bridge",
        }
    }

    /// A laminator's machine state, when known (a patch is fed only into a warm laminator).
    pub fn laminator_state(&self) -> Option<LaminatorState> {
        match self {
            DeviceHandle::Laminator(h) => h.view().status.map(|s| s.state),
            _ => None,
        }
    }

    /// Starts a laminator's heater (so that a patch can be fed once it is warm).
    pub async fn start_laminator(&self) {
        if let DeviceHandle::Laminator(h) = self
            && let Err(e) = h.start().await
        {
            tracing::warn!(device = h.name(), "start failed: {e}");
        }
    }

    /// What the device reports now, as the scheduler needs it (pause is the line's business).
    pub fn readiness(&self) -> DeviceReadiness {
        match self {
            DeviceHandle::Printer(h) => {
                let v = h.view();
                match (v.link.is_ready(), v.status) {
                    (false, _) | (true, None) => DeviceReadiness::Offline,
                    (true, Some(s)) if s.fault.is_some() => DeviceReadiness::Faulted,
                    (true, Some(_)) => DeviceReadiness::Ready,
                }
            }
            DeviceHandle::Laminator(h) => {
                let v = h.view();
                match (v.link.is_ready(), v.status) {
                    (false, _) | (true, None) => DeviceReadiness::Offline,
                    (true, Some(s)) if s.fault.is_some() => DeviceReadiness::Faulted,
                    (true, Some(_)) => DeviceReadiness::Ready,
                }
            }
            // The bridge reports by events; a bridge that answers is taken as ready, and a
            // failing call faults the step.
            DeviceHandle::Bridge(_) => DeviceReadiness::Ready,
        }
    }

    /// Waits until the device's reported state may have changed.
    pub async fn changed(&self) {
        match self {
            DeviceHandle::Printer(h) => {
                let mut w = h.watch();
                if w.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            DeviceHandle::Laminator(h) => {
                let mut w = h.watch();
                if w.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            DeviceHandle::Bridge(_) => std::future::pending::<()>().await,
        }
    }
}

/// Clears the device's fault (after the jam was removed, the ink replaced...): the device
/// reports ready again if the cause is gone.
///
/// # Errors
/// The device refused or did not answer.
pub async fn clear_fault(h: &DeviceHandle) -> Result<(), String> {
    match h {
        DeviceHandle::Printer(p) => p.clear_fault().await.map_err(|e| e.to_string()),
        DeviceHandle::Laminator(l) => l.reset_fault().await.map_err(|e| e.to_string()),
        DeviceHandle::Bridge(b) => b
            .call("clear_fault", serde_json::json!({}))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
    }
}

/// The printer's job data for a job: the data page fields and the MRZ. Passport-holder data:
/// it goes to the printer only.
pub fn job_data(job: &Job, job_ref: u32) -> Result<JobData, String> {
    let mrz = hallctl_jobs::mrz::generate(job.doc_type, &job.data)
        .map_err(|e| format!("the MRZ cannot be generated ({})", e.field()))?;
    let d = &job.data;
    let date = |x: chrono::NaiveDate| x.format("%d %b %Y").to_string().to_uppercase();
    Ok(JobData {
        job_ref,
        fields: vec![
            (DataField::Surname, d.surname.clone()),
            (DataField::GivenNames, d.given_names.clone()),
            (DataField::DocumentNumber, d.document_number.clone()),
            (DataField::Nationality, d.nationality.clone()),
            (DataField::DateOfBirth, date(d.date_of_birth)),
            (DataField::Sex, d.sex.mrz_char().to_string()),
            (DataField::PlaceOfBirth, d.place_of_birth.clone()),
            (DataField::DateOfIssue, date(d.date_of_issue)),
            (DataField::DateOfExpiry, date(d.date_of_expiry)),
            (DataField::MrzLine1, mrz.line1().to_string()),
            (DataField::MrzLine2, mrz.line2().to_string()),
            (DataField::PortraitRef, d.portrait_ref.clone()),
        ],
    })
}

/// What a step's device read of the item it took: the serial, or `None` when it reported no
/// reading.
pub type Reading = Option<String>;

/// A reported serial, or `None` when it is empty.
fn reading(serial: &str) -> Reading {
    let s = serial.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

/// Prints one data page: load, print, and wait for the printer's DONE (or FAULT). Returns the
/// DONE's booklet serial (the printer's read-back of the booklet it printed).
///
/// # Errors
/// The fault or link failure, in words.
pub async fn print(h: &DeviceHandle, data: JobData, timeout: Duration) -> Result<Reading, String> {
    let job_ref = data.job_ref;
    match h {
        DeviceHandle::Printer(p) => {
            // Subscribe before PRINT: a fast printer's DONE must not be missed.
            let mut events = p.subscribe();
            p.load_job(&data)
                .await
                .map_err(|e| format!("load failed: {e}"))?;
            p.print(job_ref)
                .await
                .map_err(|e| format!("print failed: {e}"))?;
            let wait = async {
                loop {
                    match events.recv().await {
                        Ok(PrinterEvent::Done {
                            job_ref: r,
                            booklet_serial,
                        }) if r == job_ref => {
                            return Ok(reading(&booklet_serial));
                        }
                        Ok(PrinterEvent::Fault { fault, .. }) => {
                            return Err(format!("printer fault: {fault:?}"));
                        }
                        Ok(PrinterEvent::Cancelled { job_ref: r }) if r == job_ref => {
                            return Err("the printer cancelled the job".to_string());
                        }
                        Ok(_) | Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => {
                            return Err("the printer's link closed".to_string());
                        }
                    }
                }
            };
            match tokio::time::timeout(timeout, wait).await {
                Ok(r) => r,
                Err(_) => {
                    // Stop the job on the printer: it must not finish an attempt the line has
                    // already given up on.
                    let _ = p.cancel().await;
                    Err(format!("no DONE within {} s: cancelled", timeout.as_secs()))
                }
            }
        }
        DeviceHandle::Bridge(b) => {
            bridge_step(b, "print", "booklet_serial", job_ref, timeout).await
        }
        DeviceHandle::Laminator(_) => Err("a laminator cannot print".to_string()),
    }
}

/// Laminates one booklet: warm up if needed, FEED, and wait until the patch counter moves (or
/// a fault). Returns what the laminator's patch reader read during the feed: LAST_PATCH_SERIAL
/// when PATCH_READ_SEQ moved since the last poll before FEED, `None` when it did not.
///
/// # Errors
/// The fault or link failure, in words.
pub async fn laminate(
    h: &DeviceHandle,
    job_ref: u32,
    timeout: Duration,
) -> Result<Reading, String> {
    match h {
        DeviceHandle::Laminator(l) => {
            let run = async {
                let mut s = l.status().await.map_err(|e| format!("status: {e}"))?;
                if s.state == LaminatorState::Idle {
                    l.start().await.map_err(|e| format!("start: {e}"))?;
                }
                while s.state != LaminatorState::Ready {
                    if let Some(f) = s.fault {
                        return Err(format!("laminator fault: {f:?}"));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    s = l.status().await.map_err(|e| format!("status: {e}"))?;
                }
                let (before, read_before) = (s.patch_count, s.patch_read_seq);
                l.feed().await.map_err(|e| format!("feed failed: {e}"))?;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let s = l.status().await.map_err(|e| format!("status: {e}"))?;
                    if let Some(f) = s.fault {
                        return Err(format!("laminator fault: {f:?}"));
                    }
                    if s.patch_count > before && s.state != LaminatorState::Running {
                        // A new read is a new PATCH_READ_SEQ; an unchanged one is no reading.
                        return Ok(if s.patch_read_seq == read_before {
                            None
                        } else {
                            reading(&s.last_patch_serial)
                        });
                    }
                }
            };
            match tokio::time::timeout(timeout, run).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = l.stop().await;
                    Err(format!(
                        "not laminated within {} s: stopped",
                        timeout.as_secs()
                    ))
                }
            }
        }
        DeviceHandle::Bridge(b) => {
            bridge_step(b, "laminate", "patch_serial", job_ref, timeout).await
        }
        DeviceHandle::Printer(_) => Err("a printer cannot laminate".to_string()),
    }
}

/// A bridge step: call `method` with the job reference, then wait for its `done` (or `fault`)
/// event, as `docs/drivers.md` recommends to bridge writers. Returns the `done` event's
/// `serial_key` (`booklet_serial`, `patch_serial`): what the device read.
async fn bridge_step(
    b: &BridgeHandle,
    method: &str,
    serial_key: &str,
    job_ref: u32,
    timeout: Duration,
) -> Result<Reading, String> {
    let mut events = b.subscribe();
    b.call(method, serde_json::json!({ "job_ref": job_ref }))
        .await
        .map_err(|e| format!("{method} failed: {e}"))?;
    let wait = async {
        loop {
            match events.recv().await {
                Ok(e) if e.event == "done" && e.data["job_ref"] == job_ref => {
                    return Ok(e.data[serial_key].as_str().and_then(reading));
                }
                Ok(e) if e.event == "fault" => {
                    let code = e.data["code"].as_str().unwrap_or("unknown").to_string();
                    return Err(format!("bridge fault: {code}"));
                }
                Ok(_) | Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return Err("the bridge closed".to_string()),
            }
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or_else(|_| Err(format!("no done event within {} s", timeout.as_secs())))
}
