//! A simulated cable: it carries a simulated device's bytes to a pseudo-terminal the driver opens
//! by a stable path, and injects line faults.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_serial::{SerialPort, SerialStream};

/// Faults of the line, applied to what the device sends to the host.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LineFaults {
    /// Insert a burst of random noise bytes before each chunk the device sends.
    pub garbage: bool,
    /// Flip a bit in the second-to-last byte of each chunk: a CRC byte of both a printer frame
    /// and a Modbus RTU frame, so the receiver sees a CRC error.
    pub corrupt_crc: bool,
    /// Drop everything the device sends: the device seems silent.
    pub silent: bool,
    /// Delay everything the device sends by this much: a slow device.
    pub delay: Duration,
}

/// Controls of one wire; cheap to clone.
#[derive(Debug, Clone)]
pub struct WireControl {
    faults: Arc<Mutex<LineFaults>>,
    plugged: watch::Sender<bool>,
    path: PathBuf,
}

impl WireControl {
    /// The stable path the driver opens (a symlink to the current pseudo-terminal).
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sets the line faults.
    pub fn set_faults(&self, faults: LineFaults) {
        if let Ok(mut f) = self.faults.lock() {
            *f = faults;
        }
    }

    /// Edits the line faults.
    pub fn update_faults(&self, edit: impl FnOnce(&mut LineFaults)) {
        if let Ok(mut f) = self.faults.lock() {
            edit(&mut f);
        }
    }

    /// The current line faults.
    #[must_use]
    pub fn faults(&self) -> LineFaults {
        self.faults.lock().map(|f| *f).unwrap_or_default()
    }

    /// Pulls the cable (`false`) or plugs it back (`true`). Unplugging closes the pseudo-terminal
    /// so the driver's reads fail with EIO and its reopens fail until the cable is back; plugging
    /// creates a new pseudo-terminal behind the same symlink, as a USB adapter re-enumerates.
    pub fn set_plugged(&self, plugged: bool) {
        self.plugged.send_replace(plugged);
    }
}

/// A running wire: its control and its task.
#[derive(Debug)]
pub struct SimWire {
    /// Fault and plug controls.
    pub control: WireControl,
    /// The task carrying the bytes; it ends when the device side closes.
    pub task: JoinHandle<()>,
}

/// Connects `device` (one end of a stream the device simulator owns) to a pseudo-terminal whose
/// slave is reachable at `link_path`.
///
/// # Errors
/// When the first pseudo-terminal cannot be created or the symlink cannot be written.
pub fn spawn_wire<D>(device: D, link_path: PathBuf) -> io::Result<SimWire>
where
    D: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let faults = Arc::new(Mutex::new(LineFaults::default()));
    let (plugged, plugged_rx) = watch::channel(true);
    let first = HostSide::create(&link_path)?;
    let control = WireControl {
        faults: faults.clone(),
        plugged,
        path: link_path.clone(),
    };
    let task = tokio::spawn(carry(device, link_path, first, faults, plugged_rx));
    Ok(SimWire { control, task })
}

/// The host side of the cable: a pseudo-terminal pair.
struct HostSide {
    master: SerialStream,
    // Held open so the master never sees EIO while the driver has the slave closed (between a
    // loss and its reopen); it is never read, so it steals no bytes from the driver.
    _slave_keepalive: SerialStream,
}

impl HostSide {
    fn create(link_path: &Path) -> io::Result<Self> {
        let (master, slave) = SerialStream::pair().map_err(io::Error::from)?;
        let name = slave
            .name()
            .ok_or_else(|| io::Error::other("pseudo-terminal has no name"))?;
        // Replace the symlink atomically: a driver reopening at this moment sees the old or the
        // new terminal, never a missing file.
        let tmp = link_path.with_extension("new");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp)?;
        std::fs::rename(&tmp, link_path)?;
        Ok(HostSide {
            master,
            _slave_keepalive: slave,
        })
    }
}

async fn carry<D>(
    mut device: D,
    link_path: PathBuf,
    first: HostSide,
    faults: Arc<Mutex<LineFaults>>,
    mut plugged: watch::Receiver<bool>,
) where
    D: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut host = Some(first);
    let mut from_dev = [0u8; 512];
    let mut from_host = [0u8; 512];
    loop {
        match host.as_mut() {
            None => {
                // Unplugged: the device keeps running; what it sends is lost.
                tokio::select! {
                    r = device.read(&mut from_dev) => if matches!(r, Ok(0) | Err(_)) { return },
                    r = plugged.changed() => {
                        if r.is_err() { return }
                        if *plugged.borrow_and_update() {
                            match HostSide::create(&link_path) {
                                Ok(h) => host = Some(h),
                                Err(e) => tracing::warn!("simulator cannot replug {}: {e}", link_path.display()),
                            }
                        }
                    }
                }
            }
            Some(h) => {
                tokio::select! {
                    r = device.read(&mut from_dev) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let f = faults.lock().map(|f| *f).unwrap_or_default();
                            if f.silent { continue }
                            let bytes = apply_faults(&from_dev[..n], f);
                            if !f.delay.is_zero() {
                                tokio::time::sleep(f.delay).await;
                            }
                            // Nobody may be reading the slave (the driver is reopening): never
                            // let a full terminal buffer stall the device.
                            let _ = tokio::time::timeout(Duration::from_millis(100), h.master.write_all(&bytes)).await;
                        }
                    },
                    r = h.master.read(&mut from_host) => match r {
                        Ok(n) if n > 0 => {
                            if device.write_all(&from_host[..n]).await.is_err() { return }
                        }
                        // EIO cannot happen while we hold the slave open; if it does, wait.
                        _ => tokio::time::sleep(Duration::from_millis(10)).await,
                    },
                    r = plugged.changed() => {
                        if r.is_err() { return }
                        if !*plugged.borrow_and_update() {
                            host = None; // closes master and slave: the driver gets EIO
                            let _ = std::fs::remove_file(&link_path);
                        }
                    }
                }
            }
        }
    }
}

fn apply_faults(chunk: &[u8], f: LineFaults) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunk.len() + 16);
    if f.garbage {
        let mut rng = rand::rng();
        let n = rng.random_range(1..=12);
        // Noise includes STX and ETX bytes on purpose: the decoders must resynchronise anyway.
        out.extend((0..n).map(|_| rng.random::<u8>()));
    }
    out.extend_from_slice(chunk);
    if f.corrupt_crc && chunk.len() >= 2 {
        let i = out.len() - 2;
        out[i] ^= 0x5A;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // in tests a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn crc_corruption_hits_the_second_to_last_byte_only() {
        let out = apply_faults(
            &[1, 2, 3, 4],
            LineFaults {
                corrupt_crc: true,
                ..LineFaults::default()
            },
        );
        assert_eq!(out, vec![1, 2, 3 ^ 0x5A, 4]);
    }
}
