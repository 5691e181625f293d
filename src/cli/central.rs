//! `hallctl central --mqtt <url>`: the national overview of every hall publishing to a broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use crate::config::{BrokerUrl, MqttConfig};
use crate::mqtt::Broker;

/// Arguments of `hallctl central`.
#[derive(Debug, Args)]
pub struct CentralArgs {
    /// The monitoring broker: mqtt://host:port or mqtts://host:port (the port may be left
    /// out: 1883, 8883).
    #[arg(long)]
    pub mqtt: String,
    /// Where the overview page and /api/halls listen.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    /// The broker account.
    #[arg(long)]
    pub username: Option<String>,
    /// A file whose first line is the broker password (needs --username).
    #[arg(long, requires = "username")]
    pub password_file: Option<PathBuf>,
    /// For mqtts://: the CA certificate(s) that signed the broker's, PEM.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// The MQTT client id (default: hallctl-central-PID, with this process's id).
    #[arg(long)]
    pub client_id: Option<String>,
}

/// Runs the overview until SIGTERM or Ctrl-C.
///
/// # Errors
/// A bad URL, an unreadable credential file, or the listen address is taken.
pub fn run(args: CentralArgs) -> anyhow::Result<()> {
    let url = BrokerUrl::parse(&args.mqtt).map_err(|e| anyhow::anyhow!("--mqtt: {e}"))?;
    if url.tls && args.ca_file.is_none() {
        anyhow::bail!("--mqtt: an mqtts:// broker needs --ca-file (the CA that signed it, PEM)");
    }
    let broker = Broker::from_config(&MqttConfig {
        url,
        client_id: args
            .client_id
            .unwrap_or_else(|| format!("hallctl-central-{}", std::process::id())),
        username: args.username,
        password_file: args.password_file,
        ca_file: args.ca_file,
        keep_alive_secs: 30,
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let central = crate::central::Central::default();
        let follower = tokio::spawn(crate::central::follow(broker, central.clone()));
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        println!("hallctl central: listening on http://{addr}");
        crate::api::central::serve(listener, central, crate::serve::signal())
            .await
            .context("the HTTP server failed")?;
        follower.abort();
        anyhow::Ok(())
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
