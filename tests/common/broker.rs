//! A Mosquitto broker of the tests' own and an MQTT subscriber that keeps what it receives
//! (`tests/mqtt.rs`, `tests/red_team.rs`): `#[path = "common/broker.rs"] mod broker;` next to
//! `mod common;`.

#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // in tests a panic is the failure report

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hallctl::mqtt::EventMessage;
use rumqttc::{Event, Incoming, MqttOptions, QoS};

use crate::common::{Client, HALL_TOML, hallctl, wait_for};

// ---- the broker -----------------------------------------------------------------------------------

pub fn mosquitto_program() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("mosquitto"))
        .find(|p| p.is_file())
        .expect("the mosquitto program (scripts/test-all installs it: apt-get install mosquitto)")
}

/// A Mosquitto broker of our own, on the loopback, with persistence in its directory (so that
/// a restart keeps the test subscriber's session and what was queued for it).
pub struct Broker {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub child: Option<Child>,
    /// Extra configuration lines (TLS, accounts).
    pub extra: String,
}

impl Broker {
    pub fn start() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut b = Broker {
            dir: tempfile::tempdir().expect("tempdir"),
            port,
            child: None,
            extra: String::new(),
        };
        b.restart();
        b
    }

    /// A broker that speaks TLS only (a certificate for 127.0.0.1 signed by a CA of our own,
    /// made with openssl) and admits one account, `hall-t` with password `s3cret-Pass`.
    pub fn start_tls() -> Broker {
        let mut b = Broker::start_stopped();
        let d = b.dir.path().to_path_buf();
        let run = |args: &[&str]| {
            let o = Command::new(args[0])
                .args(&args[1..])
                .current_dir(&d)
                .output()
                .unwrap_or_else(|e| panic!("{}: {e} (scripts/test-all installs it)", args[0]));
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let mut ca = vec!["openssl", "req", "-x509"];
        ca.extend(ec);
        ca.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hallctl test CA",
        ]);
        run(&ca);
        let mut csr = vec!["openssl", "req"];
        csr.extend(ec);
        csr.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        run(&csr);
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        run(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        run(&[
            "mosquitto_passwd",
            "-b",
            "-c",
            "passwd",
            "hall-t",
            "s3cret-Pass",
        ]);
        b.extra = format!(
            "cafile {0}/ca.pem\ncertfile {0}/server.pem\nkeyfile {0}/server.key\n\
             allow_anonymous false\npassword_file {0}/passwd\n",
            d.display()
        );
        b.restart();
        b
    }

    pub fn start_stopped() -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        Broker {
            dir: tempfile::tempdir().expect("tempdir"),
            port,
            child: None,
            extra: String::new(),
        }
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and persistence) and waits until it accepts.
    pub fn restart(&mut self) {
        let conf = self.dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\npersistence true\n\
                 persistence_location {}/\n# as root, mosquitto would switch to its own user\n\
                 user root\n{}",
                self.port,
                self.dir.path().display(),
                if self.extra.is_empty() {
                    "allow_anonymous true\n"
                } else {
                    &self.extra
                }
            ),
        )
        .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .unwrap();
        let child = Command::new(mosquitto_program())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        wait_for(60, "mosquitto to accept connections", || {
            let up = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            (up.then_some(()), self.log())
        });
    }

    /// Stops it cleanly (SIGTERM: it saves its sessions and queues) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- mosquitto log ----\n{}\n---- end ----", self.log());
        }
    }
}

// ---- a subscriber --------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Got {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
    /// When it arrived here.
    pub at: Instant,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// Subscribes to `filter` (QoS 1) on every connection and keeps every message, in order.
/// `persistent`: a session the broker keeps (and queues for) while we are away.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub client: rumqttc::Client,
}

impl Subscriber {
    pub fn start(broker: &Broker, id: &str, filter: &str, persistent: bool) -> Subscriber {
        let mut o = MqttOptions::new(id, "127.0.0.1", broker.port);
        o.set_clean_session(!persistent)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut connection) = rumqttc::Client::new(o, 64);
        let got = Arc::new(Mutex::new(Vec::new()));
        let (sub, keep) = (client.clone(), got.clone());
        let filter = filter.to_string();
        std::thread::spawn(move || {
            for ev in connection.iter() {
                match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        let _ = sub.try_subscribe(filter.clone(), QoS::AtLeastOnce);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        keep.lock().unwrap().push(Got {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                            at: Instant::now(),
                        });
                    }
                    Ok(_) => {}
                    // The broker is down: try again shortly (the iterator reconnects).
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        Subscriber { got, client }
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The event messages received, parsed, in arrival order.
    pub fn events(&self, hall: &str) -> Vec<(EventMessage, Vec<u8>)> {
        let topic = format!("hallctl/v1/{hall}/events");
        self.all()
            .into_iter()
            .filter(|g| g.topic == topic)
            .map(|g| {
                let m: EventMessage = serde_json::from_slice(&g.payload)
                    .unwrap_or_else(|e| panic!("an event message: {e}: {}", g.text()));
                (m, g.payload)
            })
            .collect()
    }

    /// The latest message on `topic`.
    pub fn last(&self, topic: &str) -> Option<Got> {
        self.all().into_iter().rev().find(|g| g.topic == topic)
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

// ---- halls ---------------------------------------------------------------------------------------

/// The service tests' hall as hall `id`, publishing to `broker`.
pub fn hall_toml(id: &str, broker: &Broker) -> String {
    let toml = HALL_TOML.replacen("id = \"svc-test\"", &format!("id = \"{id}\""), 1);
    assert!(toml.contains(id), "the hall id was replaced");
    format!(
        "{toml}\n[mqtt]\nurl = \"{}\"\nkeep_alive_secs = 5\n",
        broker.url()
    )
}

// ---- central -------------------------------------------------------------------------------------

/// `hallctl central` on a free port, reading the broker; killed when dropped (`tests/mqtt.rs`,
/// the browser tests).
pub struct Central {
    pub child: Child,
    pub client: Client,
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn start_central(broker: &Broker) -> Central {
    use std::io::BufRead;
    let mut child = hallctl()
        .args([
            "central",
            "--mqtt",
            &broker.url(),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hallctl central");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    std::io::BufReader::new(out)
        .read_line(&mut line)
        .expect("central's first line");
    let addr: std::net::SocketAddr = line
        .split("listening on http://")
        .nth(1)
        .unwrap_or_else(|| panic!("central says where it listens: {line:?}"))
        .trim()
        .parse()
        .expect("an address");
    Central {
        child,
        client: Client { addr },
    }
}
