//! One simulated person at a terminal: their connection to the API and their session token,
//! signed in with their own id and PIN (at a station, or on the hall UI), and signed in again
//! when the token expires.

use std::net::SocketAddr;

use hyper::Method;
use serde_json::{Value, json};

use super::client::{Answer, ApiClient};
use super::staff::Member;

/// A person's terminal.
#[derive(Debug)]
pub struct Terminal {
    api: ApiClient,
    /// Who is at it.
    pub who: Member,
    /// The station terminal it is (`None`: the hall UI).
    pub station: Option<String>,
    token: Option<String>,
}

impl Terminal {
    /// `who` at `station`'s terminal (or the hall UI), not signed in yet.
    pub fn new(addr: SocketAddr, who: Member, station: Option<String>) -> Self {
        Terminal {
            api: ApiClient::new(addr),
            who,
            station,
            token: None,
        }
    }

    /// The session token, when signed in.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Signs in with id and PIN (at the station, which it takes).
    ///
    /// # Errors
    /// The controller's refusal (station taken, operator elsewhere...) or why it cannot be
    /// reached.
    pub async fn sign_in(&mut self) -> Result<(), String> {
        let mut body = json!({"user": self.who.id, "pin": self.who.pin});
        if let Some(s) = &self.station {
            body["station"] = json!(s);
        }
        let a = self
            .api
            .post("/session", None, &body)
            .await
            .map_err(|e| e.to_string())?;
        match a.body["token"].as_str() {
            Some(t) if a.ok() => {
                self.token = Some(t.to_string());
                Ok(())
            }
            _ => Err(format!("{} cannot sign in: {}", self.who.id, a.message())),
        }
    }

    /// Signs out (leaving the station).
    ///
    /// # Errors
    /// The controller's refusal, or why it cannot be reached.
    pub async fn sign_out(&mut self) -> Result<(), String> {
        let Some(t) = self.token.take() else {
            return Ok(());
        };
        let a = self
            .api
            .delete("/session", &t)
            .await
            .map_err(|e| e.to_string())?;
        if a.ok() || a.status == 401 {
            Ok(())
        } else {
            self.token = Some(t);
            Err(format!("{} cannot sign out: {}", self.who.id, a.message()))
        }
    }

    /// One request as this person (signing in first if needed, and once more when the token
    /// expired).
    ///
    /// # Errors
    /// The controller cannot be reached, or the person cannot sign in. A refusal of the
    /// request itself is an answer, not an error.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, String> {
        for _ in 0..2 {
            if self.token.is_none() {
                self.sign_in().await?;
            }
            let a = self
                .api
                .call(method.clone(), path, self.token.as_deref(), body)
                .await
                .map_err(|e| e.to_string())?;
            if a.status != 401 {
                return Ok(a);
            }
            self.token = None;
        }
        Err(format!("{} keeps being refused as signed out", self.who.id))
    }

    /// `GET`.
    ///
    /// # Errors
    /// As [`Terminal::call`].
    pub async fn get(&mut self, path: &str) -> Result<Answer, String> {
        self.call(Method::GET, path, None).await
    }

    /// `POST` with a JSON body.
    ///
    /// # Errors
    /// As [`Terminal::call`].
    pub async fn post(&mut self, path: &str, body: &Value) -> Result<Answer, String> {
        self.call(Method::POST, path, Some(body)).await
    }
}
