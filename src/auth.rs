//! Users and access: accounts, PINs, lockout, session and service tokens, role checks.
//!
//! # Accounts
//! A [`User`] is a person (operator, supervisor, auditor, admin) who signs in with an id and a
//! PIN, or a monitoring service (role [`Role::Monitor`]) that presents a service token. Accounts
//! live in the ledger's operational state (aux key `user/<id>`, versioned JSON) and every change
//! to one is written in the same atomic, durable batch as the ledger record that accounts for it
//! ([`ControlAction::UserChanged`], with its actor). A refused change writes nothing.
//!
//! # Secrets
//! - PINs are hashed with Argon2id (the `argon2` crate's defaults, which are OWASP's
//!   recommendation: 19 MiB, 2 passes, 1 lane) into a PHC string with a random salt; verification
//!   is the crate's constant-time comparison. Neither PINs nor hashes appear in `Debug` output,
//!   error messages or logs.
//! - Session and service tokens are 32 random bytes from the OS, hex-encoded. Only their SHA-256
//!   is kept: session tokens in memory, service tokens under aux `svc/<hex sha-256>` → user id.
//!   (A plain hash is enough: the token has 256 bits of entropy, so nothing can be guessed from
//!   its hash, and a fast hash keeps [`Users::authenticate`] cheap on every request.)
//! - Session tokens live only in memory: **a restart of the controller signs everyone out.**
//!   They expire [`AuthPolicy::token_ttl`] after sign-in (fixed, not sliding: a shift is 8 h).
//!
//! # Sign-in answers (no user enumeration, no PIN oracle)
//! - Unknown id, wrong PIN, a disabled account or a service account: the same
//!   [`AuthError::InvalidCredentials`] ("invalid id or PIN"), after the same Argon2 work (a dummy
//!   hash is verified for ids without a PIN), so neither the answer nor its timing tells whether
//!   the id exists.
//! - Every failure counts against the id given, known or not. After
//!   [`AuthPolicy::max_failures`] consecutive failures the id is locked for
//!   [`AuthPolicy::lockout`], and that attempt and every attempt until the lock ends are answered
//!   [`AuthError::Locked`] **without checking the PIN**: a locked account gives no oracle for
//!   guessing, and since unknown ids lock the same way, "locked" does not reveal that an id
//!   exists either. The legitimate user learns when to try again.
//! - Checks in flight spend the failure budget before the PIN is checked: parallel guesses cannot
//!   get more than `max_failures` PINs checked ahead of the lock.
//! - **Nobody locks anyone else out.** A sign-in from a known place (the client's address:
//!   [`Users::sign_in_from_at`]) counts and locks the id *at that place* only: wrong PINs typed
//!   for a supervisor at an operator's terminal lock that terminal out of the supervisor's
//!   account, not the supervisor at their own. Such a lock is recorded (`LockedOut` with its
//!   `origin`) and kept with its record, so a restart keeps it until it ends (never longer than
//!   one lockout from the start); a PIN reset ends the account's locks at every place. Wrong **co-signer** PINs count against whoever asked and
//!   their terminal, never the co-signer ([`Users::verify_cosigner_at`]).
//! - Without a place (console checks), a known account's lockout is the account's and is
//!   persisted (user record + a `LockedOut` ledger record whose actor is the account); an unknown
//!   id's lock and all failure counters below the limit are kept **in memory only**, so a restart
//!   forgets them (an attacker gains at most `max_failures - 1` tries per restart and place, and
//!   restarts are themselves visible).
//! - A lockout does not sign the account out of its current sessions, and never affects a service
//!   token: typing wrong PINs for someone's id must not take their station or the monitoring room
//!   offline.
//!
//! # Blocking
//! Everything here is synchronous: Argon2 takes tens of milliseconds of CPU and every state change
//! waits for the ledger's fsync. From async code call [`Users::sign_in`], [`Users::verify_pin`],
//! [`Users::sign_out`], [`Users::sweep_expired`] and the account changes in
//! `tokio::task::spawn_blocking`; [`Users::authenticate`], [`Users::get`], [`Users::list`] and
//! [`require`] only read memory and may be called directly.
//!
//! # Authorization
//! [`Users`] does not decide who may change accounts: the caller does, with [`require`] (every
//! route names the roles it admits; an empty list admits nobody) and [`require_manage`] (admins
//! manage every account, supervisors manage operators).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, TimeDelta, Utc};
use hallctl_jobs::job::{OperatorId, StationId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::ledger::{ControlAction, Ledger, LedgerError, LedgerEvent, Role, UserChange};
use crate::roster::Shift;

/// The actor of account changes made on the command line by someone with shell access to the
/// data directory (this is how the first admin is created). Reserved: no account may take it.
pub const CONSOLE: &str = "CONSOLE";
/// The actor of records the controller writes on its own (expired sessions). Reserved.
pub const CONTROLLER: &str = "CONTROLLER";

const USER_PREFIX: &[u8] = b"user/";
const SERVICE_PREFIX: &[u8] = b"svc/";
/// `lock/<id>\0<place>` → the end of a place's sign-in lock (RFC 3339), written with its
/// `LockedOut` record, so that a restart keeps the lock until it ends.
const PLACE_LOCK_PREFIX: &[u8] = b"lock/";

fn place_lock_key(failure_key: &str) -> Vec<u8> {
    [PLACE_LOCK_PREFIX, failure_key.as_bytes()].concat()
}

/// What an account change does beyond its record (a PIN reset also ends the place locks).
enum ChangeKind {
    PinReset,
    Other,
}
/// Version of the stored user record (aux `user/<id>`).
const USER_FORMAT: u32 = 1;
/// Unknown ids whose failures are remembered at most (a spray of random ids must not grow memory
/// without bound); beyond it, entries whose last failure is older than the lockout are dropped.
const MAX_TRACKED_IDS: usize = 10_000;

/// Everything that can go wrong with users and access. No message contains a PIN, a PIN hash or
/// a token. The HTTP layer maps them: 401 `InvalidCredentials`, `Expired`; 403 `Locked`,
/// `Disabled`, `Forbidden`; 404 `UnknownUser`; 409 `Exists`, `NoChange`; 422 `WeakPin`,
/// `InvalidId`, `InvalidName`, `AccountKind`; 500 the rest.
#[derive(Debug, Error)]
pub enum AuthError {
    /// Sign-in or token refused; deliberately says nothing about which part was wrong.
    #[error("invalid id or PIN")]
    InvalidCredentials,
    /// Too many wrong PINs: try again after `until`.
    #[error("too many wrong PINs: locked until {} UTC", until.format("%H:%M"))]
    Locked {
        /// When sign-in is possible again.
        until: DateTime<Utc>,
    },
    /// A co-signer's PIN was wrong. Counted against whoever asked (and their terminal), never
    /// against the co-signer's account.
    #[error("the PIN of co-signer {cosigner} is wrong ({failures} of {max} wrong co-signer PINs from {asker}{})", at.as_ref().map(|s| format!(" at {s}")).unwrap_or_default())]
    CosignerPin {
        /// The co-signer named.
        cosigner: OperatorId,
        /// Who asked for the co-signature.
        asker: OperatorId,
        /// Their station, if they asked from a terminal.
        at: Option<StationId>,
        /// Failures of the asker (or their terminal) within the lockout period.
        failures: u32,
        /// The limit.
        max: u32,
    },
    /// Too many wrong co-signer PINs from this person or terminal: no co-signing from them until
    /// `until`. The co-signers' own accounts are untouched.
    #[error("too many wrong co-signer PINs from {asker}{}: co-signing from here is blocked until {} UTC", at.as_ref().map(|s| format!(" at {s}")).unwrap_or_default(), until.format("%H:%M"))]
    CosignBlocked {
        /// Who asked.
        asker: OperatorId,
        /// Their station.
        at: Option<StationId>,
        /// When they may ask again.
        until: DateTime<Utc>,
    },
    /// The session token belongs to an account that was disabled.
    #[error("the account is disabled")]
    Disabled,
    /// No account with that id (account management only; sign-in never says this).
    #[error("no user {0}")]
    UnknownUser(OperatorId),
    /// An account with that id exists already.
    #[error("user {0} already exists")]
    Exists(OperatorId),
    /// The new PIN breaks a rule (named; the PIN is not repeated).
    #[error("PIN refused: {rule}")]
    WeakPin {
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A user id must be 2 to 32 characters `A-Z`, `0-9`, `-`, and not a reserved name.
    #[error("invalid user id: {reason}")]
    InvalidId {
        /// What is wrong with it (the id itself is not repeated: it may be a mistyped PIN).
        reason: &'static str,
    },
    /// A display name must be 1 to 100 printable characters.
    #[error("invalid name: {reason}")]
    InvalidName {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operation does not apply to this kind of account (a PIN for a service account, a
    /// service token for a person).
    #[error("{0}")]
    AccountKind(&'static str),
    /// The account is already in the requested state; nothing was written.
    #[error("{0}")]
    NoChange(String),
    /// The session token expired: sign in again.
    #[error("the session expired: sign in again")]
    Expired,
    /// The PIN was right but the account is not rostered for the shift now (nor within the
    /// grace either side of one of its shifts).
    #[error("{0}")]
    NotRostered(crate::roster::NotRostered),
    /// The principal's role is not admitted here.
    #[error("role {role} may not do this (allowed: {allowed})")]
    Forbidden {
        /// The principal's role.
        role: Role,
        /// The roles admitted, comma-separated (`nobody` when none).
        allowed: String,
    },
    /// The policy is unusable (zero failures, a zero or absurd duration).
    #[error("invalid access policy: {0}")]
    Policy(String),
    /// The OS random source or the password hash failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// The ledger refused or failed; nothing was changed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl AuthError {
    /// A stable machine-readable code for the API's error body.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidCredentials => "invalid_credentials",
            AuthError::Locked { .. } => "locked",
            AuthError::CosignerPin { .. } => "cosigner_pin",
            AuthError::CosignBlocked { .. } => "cosign_blocked",
            AuthError::Disabled => "disabled",
            AuthError::UnknownUser(_) => "unknown_user",
            AuthError::Exists(_) => "exists",
            AuthError::WeakPin { .. } => "weak_pin",
            AuthError::InvalidId { .. } => "invalid_id",
            AuthError::InvalidName { .. } => "invalid_name",
            AuthError::AccountKind(_) => "account_kind",
            AuthError::NoChange(_) => "no_change",
            AuthError::Expired => "expired",
            AuthError::NotRostered(_) => "not_rostered",
            AuthError::Forbidden { .. } => "forbidden",
            AuthError::Policy(_) => "policy",
            AuthError::Crypto(_) => "internal",
            AuthError::Ledger(_) => "internal",
        }
    }
}

/// Sign-in and session rules (mapped from the configuration's `[policy]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPolicy {
    /// Consecutive wrong PINs that lock an id.
    pub max_failures: u32,
    /// How long a lock lasts.
    pub lockout: Duration,
    /// How long a session token is valid after sign-in.
    pub token_ttl: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        AuthPolicy {
            max_failures: 5,
            lockout: Duration::from_secs(15 * 60),
            token_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl AuthPolicy {
    /// Checks the policy: at least one failure before a lock; durations between 1 s and 30 days.
    ///
    /// # Errors
    /// [`AuthError::Policy`] naming the field.
    pub fn validate(&self) -> Result<(), AuthError> {
        const MAX: Duration = Duration::from_secs(30 * 24 * 3600);
        if self.max_failures == 0 {
            return Err(AuthError::Policy("max_failures must be at least 1".into()));
        }
        for (name, d) in [("lockout", self.lockout), ("token_ttl", self.token_ttl)] {
            if d < Duration::from_secs(1) || d > MAX {
                return Err(AuthError::Policy(format!(
                    "{name} must be between 1 second and 30 days"
                )));
            }
        }
        Ok(())
    }
}

/// An account. Built only by [`Users`]; its PIN hash never leaves this module.
#[derive(Clone, PartialEq, Eq)]
pub struct User {
    /// Staff number (or service name), `[A-Z0-9-]{2,32}`.
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// What the account may do.
    pub role: Role,
    /// A disabled account cannot sign in and its tokens are revoked.
    pub disabled: bool,
    /// Argon2id PHC string; empty for a service account (no PIN).
    pin_hash: String,
    /// Locked for sign-in until then (may lie in the past: the lock is over).
    pub locked_until: Option<DateTime<Utc>>,
    /// The shifts it signs in for; empty: any.
    pub shifts: Vec<Shift>,
}

impl fmt::Debug for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("role", &self.role)
            .field("disabled", &self.disabled)
            .field("pin_hash", &"<redacted>")
            .field("locked_until", &self.locked_until)
            .field("shifts", &self.shifts)
            .finish()
    }
}

impl User {
    /// A service account (role monitor): authenticates with a service token, never a PIN.
    pub fn is_service(&self) -> bool {
        self.role == Role::Monitor
    }

    /// Whether sign-in is locked at `now`.
    pub fn is_locked(&self, now: DateTime<Utc>) -> bool {
        self.locked_until.is_some_and(|t| t > now)
    }

    /// What may be shown of the account (API responses, `hallctl users list`): no hash.
    pub fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id.clone(),
            name: self.name.clone(),
            role: self.role,
            disabled: self.disabled,
            service: self.is_service(),
            locked_until: self.locked_until,
            shifts: crate::roster::names(&self.shifts),
        }
    }
}

/// The public view of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    /// Id.
    pub id: OperatorId,
    /// Display name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Disabled.
    pub disabled: bool,
    /// A service account (token, no PIN).
    pub service: bool,
    /// Sign-in locked until then (may lie in the past).
    pub locked_until: Option<DateTime<Utc>>,
    /// The shifts it signs in for: `["any"]`, or some of `A`, `B`, `C`.
    #[serde(default)]
    pub shifts: Vec<String>,
}

/// The stored form of an account (aux `user/<id>`).
#[derive(Serialize, Deserialize)]
struct StoredUser {
    v: u32,
    id: OperatorId,
    name: String,
    role: Role,
    disabled: bool,
    pin_hash: String,
    locked_until: Option<DateTime<Utc>>,
    /// Absent (records before rosters) or empty: any shift.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    shifts: Vec<Shift>,
}

impl StoredUser {
    fn encode(u: &User) -> Result<Vec<u8>, AuthError> {
        serde_json::to_vec(&StoredUser {
            v: USER_FORMAT,
            id: u.id.clone(),
            name: u.name.clone(),
            role: u.role,
            disabled: u.disabled,
            pin_hash: u.pin_hash.clone(),
            locked_until: u.locked_until,
            shifts: u.shifts.clone(),
        })
        .map_err(|e| LedgerError::Corrupt(format!("user {}: {e}", u.id)).into())
    }

    fn decode(key: &[u8], v: &[u8]) -> Result<User, AuthError> {
        let name = String::from_utf8_lossy(key);
        let s: StoredUser =
            serde_json::from_slice(v).map_err(|e| LedgerError::Corrupt(format!("{name}: {e}")))?;
        if key.strip_prefix(USER_PREFIX) != Some(s.id.as_str().as_bytes()) {
            return Err(LedgerError::Corrupt(format!("{name}: holds the account {}", s.id)).into());
        }
        if s.v != USER_FORMAT {
            return Err(
                LedgerError::Corrupt(format!("{name}: unknown format version {}", s.v)).into(),
            );
        }
        Ok(User {
            id: s.id,
            name: s.name,
            role: s.role,
            disabled: s.disabled,
            pin_hash: s.pin_hash,
            locked_until: s.locked_until,
            shifts: s.shifts,
        })
    }
}

/// A signed-in session, as handed to the client once at sign-in.
#[derive(Clone, Serialize)]
pub struct Token {
    /// The bearer token (64 hex digits). Secret: shown once, stored only as a hash.
    pub token: String,
    /// Who signed in.
    pub user: OperatorId,
    /// Their role.
    pub role: Role,
    /// Where (a station terminal), or `None` on the hall UI.
    pub station: Option<StationId>,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("token", &"<redacted>")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("station", &self.station)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who is making a request: the result of [`Users::authenticate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    /// The account.
    pub user: OperatorId,
    /// Its role.
    pub role: Role,
    /// The station the session was opened at (`None` on the hall UI and for service tokens).
    pub station: Option<StationId>,
    /// A public fingerprint of the token (first 8 bytes of its SHA-256, hex): safe to log,
    /// identifies the session without revealing it.
    pub token_id: String,
}

/// Admits the principal only if its role is one of `roles`. Deny by default: an empty list
/// admits nobody.
///
/// # Errors
/// [`AuthError::Forbidden`].
pub fn require(principal: &Principal, roles: &[Role]) -> Result<(), AuthError> {
    if roles.contains(&principal.role) {
        return Ok(());
    }
    let allowed = if roles.is_empty() {
        "nobody".to_string()
    } else {
        roles
            .iter()
            .map(|r| r.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(AuthError::Forbidden {
        role: principal.role,
        allowed,
    })
}

/// Admits the principal to manage (add, disable, enable, reset) an account of role `target`:
/// admins manage every account; supervisors manage operators (BRIEF §2: "manage operators and
/// shifts"); nobody else manages accounts.
///
/// # Errors
/// [`AuthError::Forbidden`].
pub fn require_manage(principal: &Principal, target: Role) -> Result<(), AuthError> {
    match (principal.role, target) {
        (Role::Admin, _) | (Role::Supervisor, Role::Operator) => Ok(()),
        (Role::Supervisor, _) => require(principal, &[Role::Admin]),
        _ => require(principal, &[Role::Admin, Role::Supervisor]),
    }
}

/// Parses a user id: 2 to 32 characters `A-Z`, `0-9` and `-`, not a reserved actor name.
///
/// # Errors
/// [`AuthError::InvalidId`].
pub fn parse_user_id(s: &str) -> Result<OperatorId, AuthError> {
    if !(2..=32).contains(&s.len()) {
        return Err(AuthError::InvalidId {
            reason: "it must be 2 to 32 characters long",
        });
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(AuthError::InvalidId {
            reason: "only capital letters A-Z, digits 0-9 and '-' are allowed",
        });
    }
    if s == CONSOLE || s == CONTROLLER || s == crate::line::LINE_ACTOR {
        return Err(AuthError::InvalidId {
            reason: "CONSOLE, CONTROLLER and LINE are reserved actor names",
        });
    }
    Ok(OperatorId::new(s))
}

fn check_name(name: &str) -> Result<String, AuthError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AuthError::InvalidName {
            reason: "it is empty",
        });
    }
    if name.chars().count() > 100 {
        return Err(AuthError::InvalidName {
            reason: "it is longer than 100 characters",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(AuthError::InvalidName {
            reason: "it contains control characters",
        });
    }
    Ok(name.to_string())
}

/// PINs that are neither repetitions nor runs but are among the most used six-digit PINs.
const COMMON_PINS: &[&str] = &[
    "112233", "123321", "123654", "147258", "159753", "159357", "102030", "111222", "121314",
    "147852", "258369", "369258", "456789", "789456", "741852", "852456", "963852", "951753",
];

/// The PIN rules for people: 6 to 12 digits; not a repetition of a shorter pattern (000000,
/// 121212, 123123); not a run of consecutive digits up or down (123456, 654321, 890123); not one
/// of the most common PINs; not containing (or contained in) the digits of the user id.
///
/// # Errors
/// [`AuthError::WeakPin`] naming the first rule broken.
pub fn check_pin_rules(pin: &str, id: &OperatorId) -> Result<(), AuthError> {
    let weak = |rule| Err(AuthError::WeakPin { rule });
    let d = pin.as_bytes();
    if !(6..=12).contains(&d.len()) || !d.iter().all(u8::is_ascii_digit) {
        return weak("a PIN is 6 to 12 digits");
    }
    let n = d.len();
    if (1..=n / 2).any(|p| n.is_multiple_of(p) && d.chunks(p).all(|c| c == &d[..p])) {
        return weak("a PIN may not repeat a short pattern (like 000000, 121212, 123123)");
    }
    let step = |a: &u8, b: &u8| (10 + b - a) % 10;
    if [1, 9]
        .iter()
        .any(|&s| d.windows(2).all(|w| step(&w[0], &w[1]) == s))
    {
        return weak("a PIN may not be a run of consecutive digits (like 123456, 654321)");
    }
    if COMMON_PINS.contains(&pin) {
        return weak("a PIN may not be one of the most commonly used PINs");
    }
    let id_digits: String = id.as_str().chars().filter(char::is_ascii_digit).collect();
    if id_digits.len() >= 4 && (pin.contains(&id_digits) || id_digits.contains(pin)) {
        return weak("a PIN may not contain the digits of the user id");
    }
    Ok(())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut b)
        .map_err(|e| AuthError::Crypto(format!("OS random source: {e}")))?;
    Ok(b)
}

/// A random PIN that passes [`check_pin_rules`] for `id`: 8 digits (for the console to print
/// once, when an admin does not choose one).
///
/// # Errors
/// [`AuthError::Crypto`] when the OS random source fails.
pub fn generate_pin(id: &OperatorId) -> Result<String, AuthError> {
    loop {
        // Rejection sampling: bytes ≥ 250 would bias the digits.
        let pin: String = random_bytes::<32>()?
            .iter()
            .filter(|b| **b < 250)
            .take(8)
            .map(|b| char::from(b'0' + b % 10))
            .collect();
        if pin.len() == 8 && check_pin_rules(&pin, id).is_ok() {
            return Ok(pin);
        }
    }
}

fn hash_pin(pin: &str) -> Result<String, AuthError> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| AuthError::Crypto(format!("salt: {e}")))?;
    Ok(Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map_err(|e| AuthError::Crypto(format!("PIN hash: {e}")))?
        .to_string())
}

/// Constant-time check of `pin` against a PHC string (the crate compares in constant time; the
/// parameters come from the string, so hashes made with older parameters still verify).
fn pin_matches(phc: &str, pin: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(pin.as_bytes(), &h)
            .is_ok()
    })
}

type TokenHash = [u8; 32];

fn token_hash(token: &str) -> TokenHash {
    Sha256::digest(token.as_bytes()).into()
}

fn token_id(h: &TokenHash) -> String {
    hex::encode(&h[..8])
}

fn new_token() -> Result<(String, TokenHash), AuthError> {
    let token = hex::encode(random_bytes::<32>()?);
    let h = token_hash(&token);
    Ok((token, h))
}

fn user_key(id: &OperatorId) -> Vec<u8> {
    [USER_PREFIX, id.as_str().as_bytes()].concat()
}

fn service_key(h: &TokenHash) -> Vec<u8> {
    [SERVICE_PREFIX, hex::encode(h).as_bytes()].concat()
}

fn to_delta(d: Duration) -> TimeDelta {
    // `validate` caps durations at 30 days, far inside TimeDelta's range.
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

#[derive(Debug, Clone)]
struct Session {
    hash: TokenHash,
    user: OperatorId,
    station: Option<StationId>,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default)]
struct Failures {
    /// Consecutive failed checks.
    count: u32,
    /// Checks in flight (see `check_credentials`).
    pending: u32,
    last: DateTime<Utc>,
    /// Only for ids without an account: a known account's lock is in its record.
    locked_until: Option<DateTime<Utc>>,
}

#[derive(Default)]
struct State {
    users: BTreeMap<OperatorId, User>,
    /// Service token hash → account (mirror of aux `svc/`).
    services: HashMap<TokenHash, OperatorId>,
    /// Session token hash → session. In memory only: a restart signs everyone out.
    sessions: HashMap<TokenHash, Session>,
    /// Consecutive failures per id given at sign-in (known or not). In memory only.
    failures: HashMap<String, Failures>,
    /// Sessions found expired by `authenticate`, to be recorded by `sweep_expired`.
    expired: Vec<Session>,
}

/// The failure counter of `id`: the account's, or the account's at `origin` (a client address).
fn failure_key(id: &OperatorId, origin: Option<&str>) -> String {
    match origin {
        Some(o) => format!("{id}\0{o}"),
        None => id.as_str().to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Account updates are applied after their ledger write succeeded, in a few assignments, and
    // the counters are advisory: a panic cannot leave the maps inconsistent in a way that matters.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The accounts of the hall and their sessions. `Send + Sync`: the service holds it in an `Arc`.
pub struct Users {
    ledger: Arc<Ledger>,
    policy: AuthPolicy,
    lockout: TimeDelta,
    ttl: TimeDelta,
    /// Serializes every change that writes to the ledger, so that the check before a write and
    /// the update after it see the same accounts. Held across the fsync; never while verifying
    /// a PIN.
    write: Mutex<()>,
    /// Accounts, tokens and counters: held only for short, non-blocking sections.
    state: Mutex<State>,
    /// A hash of a random PIN, verified for ids without a PIN so that they take as long.
    dummy_hash: String,
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Users")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Users {
    /// Loads the accounts and service tokens from the ledger's operational state.
    ///
    /// # Errors
    /// [`AuthError::Policy`] for an unusable policy; [`AuthError::Ledger`] when the store cannot
    /// be read or a stored account is unreadable.
    pub fn open(ledger: Arc<Ledger>, policy: AuthPolicy) -> Result<Users, AuthError> {
        policy.validate()?;
        let mut st = State::default();
        let mut bad: Option<AuthError> = None;
        ledger
            .store()
            .aux_for_each(USER_PREFIX, USER_PREFIX, |k, v| {
                match StoredUser::decode(k, v) {
                    Ok(u) => {
                        st.users.insert(u.id.clone(), u);
                        true
                    }
                    Err(e) => {
                        bad = Some(e);
                        false
                    }
                }
            })
            .map_err(LedgerError::from)?;
        ledger
            .store()
            .aux_for_each(SERVICE_PREFIX, SERVICE_PREFIX, |k, v| {
                let h = hex::decode(&k[SERVICE_PREFIX.len()..])
                    .ok()
                    .and_then(|b| TokenHash::try_from(b).ok());
                match h {
                    Some(h) => {
                        st.services
                            .insert(h, OperatorId::new(String::from_utf8_lossy(v)));
                        true
                    }
                    None => {
                        bad = Some(
                            LedgerError::Corrupt(format!(
                                "{}: not a token hash",
                                String::from_utf8_lossy(k)
                            ))
                            .into(),
                        );
                        false
                    }
                }
            })
            .map_err(LedgerError::from)?;
        if let Some(e) = bad {
            return Err(e);
        }
        // Places still locked out of an account (an ended lock is left as it is: it locks
        // nothing, and the next lock of the same place overwrites it).
        let now = Utc::now();
        ledger
            .store()
            .aux_for_each(PLACE_LOCK_PREFIX, PLACE_LOCK_PREFIX, |k, v| {
                let key = String::from_utf8_lossy(&k[PLACE_LOCK_PREFIX.len()..]).into_owned();
                let until = std::str::from_utf8(v)
                    .ok()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc));
                // Never longer than one lockout from now (a clock that was ahead when the
                // lock was written must not stretch it).
                let until = until.map(|u| u.min(now + to_delta(policy.lockout)));
                if let Some(until) = until.filter(|u| *u > now) {
                    st.failures.insert(
                        key,
                        Failures {
                            last: now,
                            locked_until: Some(until),
                            ..Failures::default()
                        },
                    );
                }
                true
            })
            .map_err(LedgerError::from)?;
        Ok(Users {
            ledger,
            lockout: to_delta(policy.lockout),
            ttl: to_delta(policy.token_ttl),
            policy,
            write: Mutex::new(()),
            state: Mutex::new(st),
            dummy_hash: hash_pin(&hex::encode(random_bytes::<8>()?))?,
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// One account.
    pub fn get(&self, id: &OperatorId) -> Option<User> {
        lock(&self.state).users.get(id).cloned()
    }

    /// Every account, by id.
    pub fn list(&self) -> Vec<User> {
        lock(&self.state).users.values().cloned().collect()
    }

    /// Writes the records and the account state in one durable batch.
    fn commit(
        &self,
        now: DateTime<Utc>,
        actor: &OperatorId,
        actions: Vec<ControlAction>,
        aux: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    ) -> Result<(), AuthError> {
        let entries = actions
            .into_iter()
            .map(|action| (now, actor.clone(), LedgerEvent::Action { action }))
            .collect();
        self.ledger.append_batch_with(entries, aux)?;
        Ok(())
    }

    fn existing(&self, id: &OperatorId) -> Result<User, AuthError> {
        self.get(id)
            .ok_or_else(|| AuthError::UnknownUser(id.clone()))
    }

    /// Adds a person's account with a PIN. Records `UserChanged { Added }` as `actor`.
    ///
    /// # Errors
    /// [`AuthError::InvalidId`], [`AuthError::InvalidName`], [`AuthError::AccountKind`] for role
    /// monitor (use [`Users::add_service`]), [`AuthError::Exists`], [`AuthError::WeakPin`],
    /// ledger errors. Nothing is written on error.
    pub fn add(
        &self,
        actor: &OperatorId,
        id: &str,
        name: &str,
        role: Role,
        pin: &str,
    ) -> Result<User, AuthError> {
        let id = parse_user_id(id)?;
        if role == Role::Monitor {
            return Err(AuthError::AccountKind(
                "monitor accounts are service accounts with a token, not a PIN: add them as a service",
            ));
        }
        let name = check_name(name)?;
        if self.get(&id).is_some() {
            return Err(AuthError::Exists(id));
        }
        check_pin_rules(pin, &id)?;
        let user = User {
            id,
            name,
            role,
            disabled: false,
            pin_hash: hash_pin(pin)?,
            locked_until: None,
            shifts: Vec::new(),
        };
        self.insert_new(actor, user, None)
    }

    /// Adds a monitoring service's account (role monitor) and returns its service token, to be
    /// shown once: only its SHA-256 is stored.
    ///
    /// # Errors
    /// As [`Users::add`], without the PIN rules.
    pub fn add_service(
        &self,
        actor: &OperatorId,
        id: &str,
        name: &str,
    ) -> Result<(User, String), AuthError> {
        let id = parse_user_id(id)?;
        let name = check_name(name)?;
        let (token, h) = new_token()?;
        let user = User {
            id,
            name,
            role: Role::Monitor,
            disabled: false,
            pin_hash: String::new(),
            locked_until: None,
            shifts: Vec::new(),
        };
        let user = self.insert_new(actor, user, Some(h))?;
        Ok((user, token))
    }

    fn insert_new(
        &self,
        actor: &OperatorId,
        user: User,
        service: Option<TokenHash>,
    ) -> Result<User, AuthError> {
        let _w = lock(&self.write);
        if self.get(&user.id).is_some() {
            return Err(AuthError::Exists(user.id));
        }
        let mut aux = vec![(user_key(&user.id), Some(StoredUser::encode(&user)?))];
        if let Some(h) = &service {
            aux.push((service_key(h), Some(user.id.as_str().as_bytes().to_vec())));
        }
        let action = ControlAction::UserChanged {
            user: user.id.clone(),
            change: UserChange::Added { role: user.role },
        };
        self.commit(Utc::now(), actor, vec![action], aux)?;
        let mut st = lock(&self.state);
        if let Some(h) = service {
            st.services.insert(h, user.id.clone());
        }
        st.users.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    /// Disables an account: it can no longer sign in, its sessions are signed out (a
    /// `SignedOut { reason: "account disabled" }` record each) and its service token is revoked
    /// (deleted: enabling the account again needs [`Users::reset_service_token`]).
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`], [`AuthError::NoChange`] when already disabled, ledger errors.
    pub fn disable(&self, actor: &OperatorId, id: &OperatorId) -> Result<User, AuthError> {
        let _w = lock(&self.write);
        let mut user = self.existing(id)?;
        if user.disabled {
            return Err(AuthError::NoChange(format!(
                "user {id} is already disabled"
            )));
        }
        user.disabled = true;
        self.change(actor, user, UserChange::Disabled, "account disabled", true)
    }

    /// Enables a disabled account again. (A service account then needs a new token:
    /// [`Users::reset_service_token`].)
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`], [`AuthError::NoChange`] when not disabled, ledger errors.
    pub fn enable(&self, actor: &OperatorId, id: &OperatorId) -> Result<User, AuthError> {
        let _w = lock(&self.write);
        let mut user = self.existing(id)?;
        if !user.disabled {
            return Err(AuthError::NoChange(format!("user {id} is not disabled")));
        }
        user.disabled = false;
        self.change(actor, user, UserChange::Enabled, "", false)
    }

    /// Sets a new PIN for a person's account, clears its failures and lockout, and signs its
    /// sessions out (a PIN is reset because it was forgotten or may be known to someone else).
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`], [`AuthError::AccountKind`] for a service account,
    /// [`AuthError::WeakPin`], ledger errors.
    pub fn reset_pin(
        &self,
        actor: &OperatorId,
        id: &OperatorId,
        pin: &str,
    ) -> Result<User, AuthError> {
        let user = self.existing(id)?;
        if user.is_service() {
            return Err(AuthError::AccountKind(
                "a service account has no PIN: reset its service token instead",
            ));
        }
        check_pin_rules(pin, id)?;
        let pin_hash = hash_pin(pin)?;
        let _w = lock(&self.write);
        let mut user = self.existing(id)?;
        user.pin_hash = pin_hash;
        user.locked_until = None;
        let user = self.change(actor, user, UserChange::PinReset, "PIN reset", false)?;
        lock(&self.state).failures.remove(id.as_str());
        Ok(user)
    }

    /// [`Users::set_shifts_at`] now.
    ///
    /// # Errors
    /// As [`Users::set_shifts_at`].
    pub fn set_shifts(
        &self,
        actor: &OperatorId,
        id: &OperatorId,
        shifts: Vec<Shift>,
    ) -> Result<User, AuthError> {
        self.set_shifts_at(actor, id, shifts, Utc::now())
    }

    /// Rosters a person's account to `shifts` (empty: any shift) at `now`. Recorded as
    /// `Rostered`. Its sessions are signed out ("not rostered now") when the new roster does not
    /// cover `now`; otherwise they end, at the latest, when the window of `now` closes (as a
    /// sign-in at `now` would).
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`], [`AuthError::AccountKind`] for a service account,
    /// [`AuthError::NoChange`] when it is rostered so already, ledger errors.
    pub fn set_shifts_at(
        &self,
        actor: &OperatorId,
        id: &OperatorId,
        shifts: Vec<Shift>,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError> {
        let _w = lock(&self.write);
        let mut user = self.existing(id)?;
        if user.is_service() {
            return Err(AuthError::AccountKind(
                "a service account does not sign in by shift: it has no roster",
            ));
        }
        if user.shifts == shifts {
            return Err(AuthError::NoChange(format!(
                "user {id} is already rostered for shift(s) {}",
                crate::roster::describe(&shifts)
            )));
        }
        let off = crate::roster::may_sign_in(&shifts, now).is_err();
        let end = crate::roster::session_end(&shifts, now);
        user.shifts = shifts;
        let change = UserChange::Rostered {
            shifts: crate::roster::names(&user.shifts),
        };
        let signed_out = if off { "not rostered now" } else { "" };
        let user = self.change(actor, user, change, signed_out, false)?;
        if let Some(end) = end {
            for s in lock(&self.state).sessions.values_mut() {
                if s.user == user.id {
                    s.expires_at = s.expires_at.min(end);
                }
            }
        }
        Ok(user)
    }

    /// Replaces a service account's token: the old one stops working, the new one is returned
    /// to be shown once. Recorded as `PinReset`.
    ///
    /// # Errors
    /// [`AuthError::UnknownUser`], [`AuthError::AccountKind`] for a person's account, ledger
    /// errors.
    pub fn reset_service_token(
        &self,
        actor: &OperatorId,
        id: &OperatorId,
    ) -> Result<String, AuthError> {
        let _w = lock(&self.write);
        let user = self.existing(id)?;
        if !user.is_service() {
            return Err(AuthError::AccountKind(
                "only service (monitor) accounts have a service token",
            ));
        }
        let (token, h) = new_token()?;
        self.change_with(actor, user, UserChange::PinReset, "", true, Some(h))?;
        Ok(token)
    }

    /// Records `change` and writes `user`; signs out the account's sessions when `signed_out`
    /// names a reason; revokes its service tokens when `revoke_service`, and registers
    /// `new_service` as its token. Call with `write` held.
    /// The failure keys of `id`'s locks at places, stored or in memory (`id\0place`).
    fn place_locks_of(&self, id: &OperatorId) -> Result<Vec<String>, AuthError> {
        let prefix = format!("{id}\0");
        let mut keys: Vec<String> = lock(&self.state)
            .failures
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let stored = place_lock_key(&prefix);
        self.ledger
            .store()
            .aux_for_each(&stored, &stored, |k, _| {
                let k = String::from_utf8_lossy(&k[PLACE_LOCK_PREFIX.len()..]).into_owned();
                if !keys.contains(&k) {
                    keys.push(k);
                }
                true
            })
            .map_err(LedgerError::from)?;
        Ok(keys)
    }

    fn change(
        &self,
        actor: &OperatorId,
        user: User,
        change: UserChange,
        signed_out: &str,
        revoke_service: bool,
    ) -> Result<User, AuthError> {
        self.change_with(actor, user, change, signed_out, revoke_service, None)
    }

    fn change_with(
        &self,
        actor: &OperatorId,
        user: User,
        change: UserChange,
        signed_out: &str,
        revoke_service: bool,
        new_service: Option<TokenHash>,
    ) -> Result<User, AuthError> {
        let (sessions, services) = {
            let st = lock(&self.state);
            let sessions: Vec<Session> = if signed_out.is_empty() {
                Vec::new()
            } else {
                st.sessions
                    .values()
                    .filter(|s| s.user == user.id)
                    .cloned()
                    .collect()
            };
            let services: Vec<TokenHash> = if revoke_service {
                st.services
                    .iter()
                    .filter(|(_, u)| **u == user.id)
                    .map(|(h, _)| *h)
                    .collect()
            } else {
                Vec::new()
            };
            (sessions, services)
        };
        let change_kind = if matches!(change, UserChange::PinReset) {
            ChangeKind::PinReset
        } else {
            ChangeKind::Other
        };
        let mut actions = vec![ControlAction::UserChanged {
            user: user.id.clone(),
            change,
        }];
        actions.extend(sessions.iter().map(|s| ControlAction::SignedOut {
            user: s.user.clone(),
            station: s.station.clone(),
            reason: signed_out.to_string(),
        }));
        let mut aux = vec![(user_key(&user.id), Some(StoredUser::encode(&user)?))];
        aux.extend(services.iter().map(|h| (service_key(h), None)));
        // A PIN reset ends the account's locks at every place too.
        let place_locks = if matches!(change_kind, ChangeKind::PinReset) {
            self.place_locks_of(&user.id)?
        } else {
            Vec::new()
        };
        aux.extend(place_locks.iter().map(|k| (place_lock_key(k), None)));
        if let Some(h) = &new_service {
            aux.push((service_key(h), Some(user.id.as_str().as_bytes().to_vec())));
        }
        self.commit(Utc::now(), actor, actions, aux)?;
        let mut st = lock(&self.state);
        for k in &place_locks {
            st.failures.remove(k);
        }
        for s in &sessions {
            st.sessions.remove(&s.hash);
        }
        for h in &services {
            st.services.remove(h);
        }
        if let Some(h) = new_service {
            st.services.insert(h, user.id.clone());
        }
        st.users.insert(user.id.clone(), user.clone());
        Ok(user)
    }

    /// Signs a person in at `now` (at a station terminal, or on the hall UI when `station` is
    /// `None`): checks the PIN (see the module docs for the answers and the lockout), records
    /// `SignedIn` (actor: the user) and returns a session token valid for the policy's TTL.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::Locked`], ledger errors.
    pub fn sign_in_at(
        &self,
        id: &OperatorId,
        pin: &str,
        station: Option<StationId>,
        now: DateTime<Utc>,
    ) -> Result<Token, AuthError> {
        self.sign_in_from_at(id, pin, station, None, now)
    }

    /// [`Users::sign_in_at`] from `origin` (the client's address): wrong PINs count, and lock,
    /// at that place only, so that nobody can lock anyone else out of the terminals they are not
    /// at. Such a lock is kept with its record (a restart keeps it; a PIN reset ends it) and recorded
    /// (`LockedOut` with the origin).
    ///
    /// # Errors
    /// As [`Users::sign_in_at`].
    pub fn sign_in_from_at(
        &self,
        id: &OperatorId,
        pin: &str,
        station: Option<StationId>,
        origin: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Token, AuthError> {
        let user = self.check_credentials(id, pin, now, origin)?;
        let (token, hash) = new_token()?;
        let _w = lock(&self.write);
        // A disable or PIN reset may have run since the check: it holds `write`, so now is final.
        let Some(current) = self
            .get(id)
            .filter(|u| !u.disabled && u.pin_hash == user.pin_hash)
        else {
            return Err(AuthError::InvalidCredentials);
        };
        // The PIN was right: who this is may be told why they cannot sign in now.
        crate::roster::may_sign_in(&current.shifts, now).map_err(AuthError::NotRostered)?;
        let action = ControlAction::SignedIn {
            user: user.id.clone(),
            station: station.clone(),
        };
        self.commit(now, &user.id, vec![action], Vec::new())?;
        // A rostered person's session ends with the window it was opened in, not 12 h later in
        // someone else's shift.
        let expires_at = crate::roster::session_end(&current.shifts, now)
            .map_or(now + self.ttl, |end| end.min(now + self.ttl));
        lock(&self.state).sessions.insert(
            hash,
            Session {
                hash,
                user: user.id.clone(),
                station: station.clone(),
                expires_at,
            },
        );
        Ok(Token {
            token,
            user: user.id,
            role: user.role,
            station,
            expires_at,
        })
    }

    /// [`Users::sign_in_at`] now.
    ///
    /// # Errors
    /// As [`Users::sign_in_at`].
    pub fn sign_in(
        &self,
        id: &OperatorId,
        pin: &str,
        station: Option<StationId>,
    ) -> Result<Token, AuthError> {
        self.sign_in_at(id, pin, station, Utc::now())
    }

    /// Checks a person's PIN without signing them in: for co-signing (two-person counts,
    /// witnesses). Same answers, failure counting and lockout as [`Users::sign_in_at`]; writes
    /// nothing unless it locks the account (the co-signed record names the co-signer).
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`], [`AuthError::Locked`], ledger errors.
    pub fn verify_pin_at(
        &self,
        id: &OperatorId,
        pin: &str,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError> {
        self.check_credentials(id, pin, now, None)
    }

    /// [`Users::verify_pin_at`] now, from `origin` (see [`Users::sign_in_from_at`]).
    ///
    /// # Errors
    /// As [`Users::verify_pin_at`].
    pub fn verify_pin_from(
        &self,
        id: &OperatorId,
        pin: &str,
        origin: Option<&str>,
    ) -> Result<User, AuthError> {
        self.check_credentials(id, pin, Utc::now(), origin)
    }

    /// [`Users::verify_pin_at`] now.
    ///
    /// # Errors
    /// As [`Users::verify_pin_at`].
    pub fn verify_pin(&self, id: &OperatorId, pin: &str) -> Result<User, AuthError> {
        self.verify_pin_at(id, pin, Utc::now())
    }

    /// Checks a co-signer's PIN typed at `asker`'s request (counts, returns, destruction
    /// witnesses, discrepancies). Wrong PINs count against the asker and their terminal, within
    /// the lockout period, never against the co-signer: nobody can lock anyone else out. At
    /// [`AuthPolicy::max_failures`] the asker (or terminal) may not ask for co-signatures until
    /// the period is over. The co-signer's own sign-in lockout does not stop a co-signature.
    ///
    /// # Errors
    /// [`AuthError::CosignerPin`] (a wrong PIN, an unknown or disabled co-signer: the same
    /// answer), [`AuthError::CosignBlocked`].
    pub fn verify_cosigner_at(
        &self,
        asker: &OperatorId,
        at: Option<&StationId>,
        id: &OperatorId,
        pin: &str,
        now: DateTime<Utc>,
    ) -> Result<User, AuthError> {
        let keys: Vec<String> = std::iter::once(format!("cosign-by\0{asker}"))
            .chain(at.map(|s| format!("cosign-at\0{s}")))
            .collect();
        let blocked = |until| AuthError::CosignBlocked {
            asker: asker.clone(),
            at: at.cloned(),
            until,
        };
        let user = {
            let mut st = lock(&self.state);
            for k in &keys {
                let f = st.failures.get(k).copied().unwrap_or_default();
                if let Some(until) = f.locked_until.filter(|t| *t > now) {
                    return Err(blocked(until));
                }
                // Checks in flight spend the budget up front (see `check_credentials`).
                if f.count + f.pending >= self.policy.max_failures && f.last > now - self.lockout {
                    return Err(blocked(now + self.lockout));
                }
            }
            self.prune(&mut st, now);
            for k in &keys {
                let f = st.failures.entry(k.clone()).or_insert(Failures {
                    last: now,
                    ..Failures::default()
                });
                // Failures older than the period are forgotten.
                if f.last <= now - self.lockout {
                    f.count = 0;
                    f.locked_until = None;
                }
                f.pending += 1;
            }
            st.users.get(id).cloned()
        };
        let ok = match &user {
            Some(u) if !u.disabled && !u.is_service() => pin_matches(&u.pin_hash, pin),
            _ => {
                let _ = pin_matches(&self.dummy_hash, pin);
                false
            }
        };
        let mut st = lock(&self.state);
        let mut failures = 0;
        for k in &keys {
            let Some(f) = st.failures.get_mut(k) else {
                continue;
            };
            f.pending = f.pending.saturating_sub(1);
            if ok {
                continue;
            }
            f.count += 1;
            f.last = now;
            failures = failures.max(f.count);
            if f.count >= self.policy.max_failures {
                f.locked_until = Some(now + self.lockout);
            }
        }
        match user {
            Some(u) if ok => Ok(u),
            // The failure that reaches the limit is still reported as the wrong PIN it was (with
            // the count); the next attempt is answered blocked.
            _ => Err(AuthError::CosignerPin {
                cosigner: id.clone(),
                asker: asker.clone(),
                at: at.cloned(),
                failures,
                max: self.policy.max_failures,
            }),
        }
    }

    fn check_credentials(
        &self,
        id: &OperatorId,
        pin: &str,
        now: DateTime<Utc>,
        origin: Option<&str>,
    ) -> Result<User, AuthError> {
        let key = failure_key(id, origin);
        let user = {
            let mut st = lock(&self.state);
            let user = st.users.get(id).cloned();
            let f = st.failures.get(&key).copied().unwrap_or_default();
            // From a known place (a terminal's address) the lock is that place's: nobody locks
            // anyone else out of the terminals they are not at. Without one, the account's.
            let locked = match (&user, origin) {
                (Some(u), None) => u.locked_until,
                _ => f.locked_until,
            };
            if let Some(until) = locked.filter(|t| *t > now) {
                // Not even checked: a locked id must give no oracle for guessing its PIN.
                return Err(AuthError::Locked { until });
            }
            // Attempts in flight spend the failure budget up front, so that parallel guesses
            // cannot get more than `max_failures` PINs checked before the lock is written. One
            // beyond the budget is refused unchecked (it is not counted: those in flight will
            // either lock the id or succeed).
            if f.count + f.pending >= self.policy.max_failures {
                return Err(AuthError::InvalidCredentials);
            }
            self.prune(&mut st, now);
            st.failures
                .entry(key.clone())
                .or_insert(Failures {
                    last: now,
                    ..Failures::default()
                })
                .pending += 1;
            user
        };
        let ok = match &user {
            Some(u) if !u.disabled && !u.is_service() => pin_matches(&u.pin_hash, pin),
            _ => {
                // As long as a real check, so the answer's timing does not tell either.
                let _ = pin_matches(&self.dummy_hash, pin);
                false
            }
        };
        match user {
            Some(u) if ok => {
                let mut st = lock(&self.state);
                if let Some(f) = st.failures.get_mut(&key) {
                    f.pending = f.pending.saturating_sub(1);
                    f.count = 0;
                    if f.pending == 0 {
                        st.failures.remove(&key);
                    }
                }
                Ok(u)
            }
            _ => self.failed(id, now, origin),
        }
    }

    /// Bounds the failure table: beyond [`MAX_TRACKED_IDS`] ids, forgets those with nothing in
    /// flight, no lock, and no failure within the lockout period.
    fn prune(&self, st: &mut State, now: DateTime<Utc>) {
        if st.failures.len() >= MAX_TRACKED_IDS {
            let horizon = now - self.lockout;
            st.failures.retain(|_, f| {
                f.pending > 0 || f.last > horizon || f.locked_until.is_some_and(|t| t > now)
            });
        }
    }

    /// Counts a failed attempt on `id` (from `origin`); locks it (there) at the limit. Always
    /// an error.
    fn failed(
        &self,
        id: &OperatorId,
        now: DateTime<Utc>,
        origin: Option<&str>,
    ) -> Result<User, AuthError> {
        let key = failure_key(id, origin);
        let _w = lock(&self.write);
        let mut st = lock(&self.state);
        let known = st.users.get(id).cloned();
        let f = st.failures.entry(key.clone()).or_insert(Failures {
            last: now,
            ..Failures::default()
        });
        f.pending = f.pending.saturating_sub(1);
        f.count += 1;
        f.last = now;
        if f.count < self.policy.max_failures {
            return Err(AuthError::InvalidCredentials);
        }
        let failures = f.count;
        let until = now + self.lockout;
        let Some(mut user) = known else {
            f.count = 0;
            f.locked_until = Some(until);
            return Err(AuthError::Locked { until });
        };
        if let Some(origin) = origin {
            // The lock is this place's, kept with its record (a restart keeps it until it
            // ends); the record says who was guessed at, from where.
            f.locked_until = Some(until);
            drop(st);
            let action = ControlAction::UserChanged {
                user: id.clone(),
                change: UserChange::LockedOut {
                    failures,
                    origin: Some(origin.to_string()),
                },
            };
            let aux = vec![(place_lock_key(&key), Some(until.to_rfc3339().into_bytes()))];
            self.commit(now, id, vec![action], aux)?;
            if let Some(f) = lock(&self.state).failures.get_mut(&key) {
                f.count = 0;
            }
            return Err(AuthError::Locked { until });
        }
        drop(st);
        user.locked_until = Some(until);
        let action = ControlAction::UserChanged {
            user: id.clone(),
            change: UserChange::LockedOut {
                failures,
                origin: None,
            },
        };
        let aux = vec![(user_key(id), Some(StoredUser::encode(&user)?))];
        // The count is reset only once the lock is durable: a failing ledger keeps refusing.
        self.commit(now, id, vec![action], aux)?;
        let mut st = lock(&self.state);
        if let Some(f) = st.failures.get_mut(&key) {
            f.count = 0;
        }
        st.users.insert(id.clone(), user);
        Err(AuthError::Locked { until })
    }

    /// Who presents `bearer` at `now`: a live session token of an enabled account, or the
    /// service token of an enabled service account. An expired session token is dropped (and
    /// recorded as signed out by the next [`Users::sweep_expired_at`]). Reads memory only.
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] (unknown token), [`AuthError::Expired`],
    /// [`AuthError::Disabled`].
    pub fn authenticate_at(
        &self,
        bearer: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, AuthError> {
        if bearer.len() > 256 {
            return Err(AuthError::InvalidCredentials);
        }
        let h = token_hash(bearer);
        let mut st = lock(&self.state);
        if let Some(s) = st.sessions.get(&h).cloned() {
            if s.expires_at <= now {
                st.sessions.remove(&h);
                st.expired.push(s);
                return Err(AuthError::Expired);
            }
            return match st.users.get(&s.user) {
                Some(u) if !u.disabled => Ok(Principal {
                    user: s.user,
                    role: u.role,
                    station: s.station,
                    token_id: token_id(&h),
                }),
                _ => Err(AuthError::Disabled),
            };
        }
        if let Some(id) = st.services.get(&h) {
            return match st.users.get(id) {
                Some(u) if !u.disabled && u.is_service() => Ok(Principal {
                    user: id.clone(),
                    role: u.role,
                    station: None,
                    token_id: token_id(&h),
                }),
                _ => Err(AuthError::Disabled),
            };
        }
        Err(AuthError::InvalidCredentials)
    }

    /// [`Users::authenticate_at`] now.
    ///
    /// # Errors
    /// As [`Users::authenticate_at`].
    pub fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        self.authenticate_at(bearer, Utc::now())
    }

    /// Ends the session of `token`, recording `SignedOut` (actor: the user; reason "signed
    /// out", or "token expired" when it already had).
    ///
    /// # Errors
    /// [`AuthError::InvalidCredentials`] for an unknown token, [`AuthError::AccountKind`] for a
    /// service token (revoked by disabling or resetting its account), ledger errors.
    pub fn sign_out_at(&self, token: &str, now: DateTime<Utc>) -> Result<(), AuthError> {
        let h = token_hash(token);
        let _w = lock(&self.write);
        let session = {
            let st = lock(&self.state);
            if st.services.contains_key(&h) {
                return Err(AuthError::AccountKind(
                    "a service token is not signed out: disable the account or reset its token",
                ));
            }
            st.sessions
                .get(&h)
                .cloned()
                .ok_or(AuthError::InvalidCredentials)?
        };
        let reason = if session.expires_at <= now {
            "token expired"
        } else {
            "signed out"
        };
        let action = ControlAction::SignedOut {
            user: session.user.clone(),
            station: session.station.clone(),
            reason: reason.into(),
        };
        self.commit(now, &session.user, vec![action], Vec::new())?;
        lock(&self.state).sessions.remove(&h);
        Ok(())
    }

    /// [`Users::sign_out_at`] now.
    ///
    /// # Errors
    /// As [`Users::sign_out_at`].
    pub fn sign_out(&self, token: &str) -> Result<(), AuthError> {
        self.sign_out_at(token, Utc::now())
    }

    /// Drops the sessions expired at `now` and records each as `SignedOut { reason: "token
    /// expired" }` (actor [`CONTROLLER`]), in one batch. Returns how many. The service calls it
    /// now and then (every minute, say); tokens stop working at expiry whether or not it runs.
    ///
    /// # Errors
    /// Ledger errors (the sessions stay listed for the next sweep).
    pub fn sweep_expired_at(&self, now: DateTime<Utc>) -> Result<usize, AuthError> {
        Ok(self.sweep_expired_sessions_at(now)?.len())
    }

    /// [`Users::sweep_expired_at`], answering who was signed out, and where: the line signs
    /// them out of their stations too (a session left holding items is abandoned).
    ///
    /// # Errors
    /// As [`Users::sweep_expired_at`].
    pub fn sweep_expired_sessions_at(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(OperatorId, Option<StationId>)>, AuthError> {
        let _w = lock(&self.write);
        let (expired, noticed) = {
            let st = lock(&self.state);
            let mut expired: Vec<Session> = st
                .sessions
                .values()
                .filter(|s| s.expires_at <= now)
                .cloned()
                .collect();
            let noticed = st.expired.len();
            expired.extend(st.expired.iter().cloned());
            (expired, noticed)
        };
        if expired.is_empty() {
            return Ok(Vec::new());
        }
        let actions = expired
            .iter()
            .map(|s| ControlAction::SignedOut {
                user: s.user.clone(),
                station: s.station.clone(),
                reason: "token expired".into(),
            })
            .collect();
        self.commit(now, &OperatorId::new(CONTROLLER), actions, Vec::new())?;
        let mut st = lock(&self.state);
        for s in &expired {
            st.sessions.remove(&s.hash);
        }
        // `authenticate` may have noticed more meanwhile: keep those for the next sweep.
        st.expired.drain(..noticed);
        Ok(expired.into_iter().map(|s| (s.user, s.station)).collect())
    }

    /// [`Users::sweep_expired_at`] now.
    ///
    /// # Errors
    /// As [`Users::sweep_expired_at`].
    pub fn sweep_expired(&self) -> Result<usize, AuthError> {
        self.sweep_expired_at(Utc::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerConfig;
    use crate::ledger::query::RecordFilter;

    const PIN: &str = "482917";

    struct Hall {
        _dir: tempfile::TempDir,
        ledger: Arc<Ledger>,
        users: Users,
    }

    fn hall(policy: AuthPolicy) -> Hall {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Arc::new(Ledger::open(dir.path(), LedgerConfig::default()).expect("ledger"));
        let users = Users::open(Arc::clone(&ledger), policy).expect("users");
        Hall {
            _dir: dir,
            ledger,
            users,
        }
    }

    fn admin() -> OperatorId {
        OperatorId::new("ADM-1")
    }

    fn op(s: &str) -> OperatorId {
        OperatorId::new(s)
    }

    fn digest(h: &Hall) -> u64 {
        h.ledger.store().content_digest().expect("digest")
    }

    /// The user's records: (actor, action).
    fn actions_of(h: &Hall, user: &str) -> Vec<(String, ControlAction)> {
        let filter = RecordFilter {
            operator: Some(op(user)),
            ..RecordFilter::default()
        };
        h.ledger
            .records(&filter, 1000)
            .expect("records")
            .into_iter()
            .filter_map(|r| match r.event {
                LedgerEvent::Action { action } => Some((r.actor.0, action)),
                _ => None,
            })
            .collect()
    }

    fn changes_of(h: &Hall, user: &str) -> Vec<(String, UserChange)> {
        actions_of(h, user)
            .into_iter()
            .filter_map(|(a, c)| match c {
                ControlAction::UserChanged { change, .. } => Some((a, change)),
                _ => None,
            })
            .collect()
    }

    fn sign_outs(h: &Hall, user: &str) -> Vec<(String, String)> {
        actions_of(h, user)
            .into_iter()
            .filter_map(|(a, c)| match c {
                ControlAction::SignedOut { reason, .. } => Some((a, reason)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn users_can_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Users>();
    }

    #[test]
    fn pin_rules_refuse_trivial_pins_and_name_the_rule() {
        let id = op("OP-4711");
        for (pin, rule) in [
            ("12345", Some("6 to 12 digits")),
            ("1234567890123", Some("6 to 12 digits")),
            ("48a917", Some("6 to 12 digits")),
            ("482 17", Some("6 to 12 digits")),
            ("000000", Some("repeat a short pattern")),
            ("99999999", Some("repeat a short pattern")),
            ("121212", Some("repeat a short pattern")),
            ("123123", Some("repeat a short pattern")),
            ("123456", Some("consecutive digits")),
            ("654321", Some("consecutive digits")),
            ("890123", Some("consecutive digits")),
            ("0123456789", Some("consecutive digits")),
            ("112233", Some("commonly used")),
            ("147258", Some("commonly used")),
            ("947110", Some("digits of the user id")),
            ("304711", Some("digits of the user id")),
            ("482917", None),
            ("30571946", None),
            ("271828182845", None),
        ] {
            match (check_pin_rules(pin, &id), rule) {
                (Ok(()), None) => {}
                (Err(AuthError::WeakPin { rule: said }), Some(rule)) => {
                    // The rule is a `&'static str`: the message cannot carry the PIN.
                    assert!(said.contains(rule), "{pin}: said {said:?}, want {rule:?}");
                }
                (got, want) => panic!("{pin}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn generated_pins_pass_the_rules() {
        let id = op("OP-1");
        for _ in 0..50 {
            let pin = generate_pin(&id).expect("pin");
            assert_eq!(pin.len(), 8);
            check_pin_rules(&pin, &id).expect("rules");
        }
    }

    #[test]
    fn user_ids_are_capitals_digits_and_dashes() {
        for ok in ["OP-1", "S2", "MON-CENTRAL-ROOM", &"A".repeat(32)] {
            assert_eq!(parse_user_id(ok).expect(ok).as_str(), ok);
        }
        for bad in [
            "",
            "A",
            "op-1",
            "OP 1",
            "OP_1",
            "ÖP-1",
            &"A".repeat(33),
            CONSOLE,
            CONTROLLER,
        ] {
            assert!(
                matches!(parse_user_id(bad), Err(AuthError::InvalidId { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_pin_is_stored_only_as_an_argon2id_hash() {
        let h = hall(AuthPolicy::default());
        let u = h
            .users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        assert_ne!(u.pin_hash, PIN);
        assert!(u.pin_hash.starts_with("$argon2id$"), "{}", u.pin_hash);
        assert!(!u.pin_hash.contains(PIN));
        // Two accounts with the same PIN get different hashes (salted).
        let v = h
            .users
            .add(&admin(), "OP-2", "Bilal Ahmed", Role::Operator, PIN)
            .expect("add");
        assert_ne!(u.pin_hash, v.pin_hash);
        // Nowhere in the store is the PIN in clear.
        let stored = h
            .ledger
            .store()
            .aux_get(b"user/OP-1")
            .expect("get")
            .expect("stored");
        let text = String::from_utf8(stored).expect("utf-8");
        assert!(
            text.contains("\"v\":1") && text.contains("$argon2id$"),
            "{text}"
        );
        assert!(!text.contains(PIN));
        h.ledger
            .store()
            .aux_for_each(b"", b"", |_, v| {
                assert!(!String::from_utf8_lossy(v).contains(PIN));
                true
            })
            .expect("scan");
    }

    #[test]
    fn debug_output_never_shows_a_hash_or_a_token() {
        let h = hall(AuthPolicy::default());
        let u = h
            .users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let dbg = format!("{u:?} {:?}", h.users.list());
        assert!(dbg.contains("<redacted>") && dbg.contains("OP-1"), "{dbg}");
        assert!(
            !dbg.contains("argon2") && !dbg.contains(&u.pin_hash),
            "{dbg}"
        );
        let t = h.users.sign_in(&u.id, PIN, None).expect("sign in");
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(&t.token), "{dbg}");
        let p = h.users.authenticate(&t.token).expect("authenticate");
        assert!(!format!("{p:?}").contains(&t.token));
        let summary = serde_json::to_string(&u.summary()).expect("json");
        assert!(
            !summary.contains("argon2") && !summary.contains("pin"),
            "{summary}"
        );
    }

    #[test]
    fn a_signed_in_operator_is_authenticated_with_role_and_station() {
        let h = hall(AuthPolicy::default());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let t0 = Utc::now();
        let t = h
            .users
            .sign_in_at(&op("OP-1"), PIN, Some(StationId::new("PRN-1")), t0)
            .expect("sign in");
        assert_eq!(t.token.len(), 64);
        assert_eq!(t.expires_at, t0 + TimeDelta::hours(12));
        let p = h.users.authenticate_at(&t.token, t0).expect("authenticate");
        assert_eq!(
            (
                p.user.as_str(),
                p.role,
                p.station.as_ref().map(StationId::as_str)
            ),
            ("OP-1", Role::Operator, Some("PRN-1"))
        );
        assert_eq!(p.token_id, hex::encode(&token_hash(&t.token)[..8]));
        let signed_in: Vec<_> = actions_of(&h, "OP-1")
            .into_iter()
            .filter(|(_, a)| matches!(a, ControlAction::SignedIn { .. }))
            .collect();
        assert_eq!(signed_in.len(), 1);
        assert_eq!(signed_in[0].0, "OP-1", "the actor of a sign-in is the user");
        assert!(matches!(
            h.users.authenticate_at("not-a-token", t0),
            Err(AuthError::InvalidCredentials)
        ));
        // Signing out ends the token and is recorded.
        h.users.sign_out_at(&t.token, t0).expect("sign out");
        assert!(h.users.authenticate_at(&t.token, t0).is_err());
        assert_eq!(
            sign_outs(&h, "OP-1"),
            vec![("OP-1".to_string(), "signed out".to_string())]
        );
        assert!(matches!(
            h.users.sign_out_at(&t.token, t0),
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[test]
    fn lockout_after_max_failures_then_unlock_after_the_period() {
        let policy = AuthPolicy {
            max_failures: 3,
            ..AuthPolicy::default()
        };
        let h = hall(policy.clone());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let id = op("OP-1");
        let t0 = Utc::now();
        for n in 0..2 {
            let e = h
                .users
                .sign_in_at(&id, "999111", None, t0)
                .expect_err("wrong");
            assert!(matches!(e, AuthError::InvalidCredentials), "try {n}: {e}");
        }
        // A success in between resets the count.
        h.users.sign_in_at(&id, PIN, None, t0).expect("right");
        for _ in 0..2 {
            h.users
                .sign_in_at(&id, "999111", None, t0)
                .expect_err("wrong");
        }
        // The co-signing check counts too: the third consecutive failure locks.
        let until = t0 + TimeDelta::minutes(15);
        match h.users.verify_pin_at(&id, "999111", t0) {
            Err(AuthError::Locked { until: u }) => assert_eq!(u, until),
            other => panic!("not locked: {other:?}"),
        }
        assert!(
            AuthError::Locked { until }
                .to_string()
                .contains(&until.format("%H:%M").to_string())
        );
        // While locked even the right PIN is refused the same way: no oracle.
        let t1 = t0 + TimeDelta::minutes(14);
        assert!(matches!(
            h.users.sign_in_at(&id, PIN, None, t1),
            Err(AuthError::Locked { .. })
        ));
        assert!(matches!(
            h.users.verify_pin_at(&id, PIN, t1),
            Err(AuthError::Locked { .. })
        ));
        // The lock is recorded (actor: the account) and survives a restart.
        assert_eq!(
            changes_of(&h, "OP-1").last(),
            Some(&(
                "OP-1".to_string(),
                UserChange::LockedOut {
                    failures: 3,
                    origin: None
                }
            ))
        );
        let reopened = Users::open(Arc::clone(&h.ledger), policy).expect("reopen");
        assert!(matches!(
            reopened.sign_in_at(&id, PIN, None, t1),
            Err(AuthError::Locked { .. })
        ));
        // After the period the right PIN works again, and wrong ones count from zero.
        let t2 = t0 + TimeDelta::minutes(15);
        reopened.sign_in_at(&id, PIN, None, t2).expect("unlocked");
        assert!(matches!(
            reopened.sign_in_at(&id, "999111", None, t2),
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[test]
    fn wrong_pins_from_one_place_lock_the_account_there_only() {
        let policy = AuthPolicy {
            max_failures: 3,
            ..AuthPolicy::default()
        };
        let h = hall(policy.clone());
        h.users
            .add(&admin(), "SUP-1", "Supervisor One", Role::Supervisor, PIN)
            .expect("add");
        let id = op("SUP-1");
        let t0 = Utc::now();
        let (here, there) = (Some("10.0.0.21"), Some("10.0.0.22"));
        for _ in 0..2 {
            assert!(matches!(
                h.users.sign_in_from_at(&id, "999111", None, here, t0),
                Err(AuthError::InvalidCredentials)
            ));
        }
        assert!(matches!(
            h.users.sign_in_from_at(&id, "999111", None, here, t0),
            Err(AuthError::Locked { .. })
        ));
        // Locked where the guesses came from, even with the right PIN...
        assert!(matches!(
            h.users.sign_in_from_at(&id, PIN, None, here, t0),
            Err(AuthError::Locked { .. })
        ));
        // ...and nowhere else: the supervisor signs in at their own terminal.
        h.users
            .sign_in_from_at(&id, PIN, None, there, t0)
            .expect("not locked out by someone else's guesses");
        assert!(!h.users.get(&id).expect("the account").is_locked(t0));
        // The lock is on the record, with where the guesses came from.
        assert_eq!(
            changes_of(&h, "SUP-1").last(),
            Some(&(
                "SUP-1".to_string(),
                UserChange::LockedOut {
                    failures: 3,
                    origin: Some("10.0.0.21".into())
                }
            ))
        );
        // A restart keeps the place's lock until it ends (it used to forget it).
        let reopened = Users::open(Arc::clone(&h.ledger), policy.clone()).expect("reopen");
        assert!(matches!(
            reopened.sign_in_from_at(&id, PIN, None, here, t0),
            Err(AuthError::Locked { .. })
        ));
        reopened
            .sign_in_from_at(&id, PIN, None, there, t0)
            .expect("still not locked elsewhere");
        let later = t0 + reopened.lockout + chrono::Duration::seconds(1);
        reopened
            .sign_in_from_at(&id, PIN, None, here, later)
            .expect("the lock ends when it ends");

        // A PIN reset ends the account's locks at every place, for good.
        for _ in 0..3 {
            let _ = reopened.sign_in_from_at(&id, "999111", None, here, t0);
        }
        assert!(matches!(
            reopened.sign_in_from_at(&id, PIN, None, here, t0),
            Err(AuthError::Locked { .. })
        ));
        reopened.reset_pin(&admin(), &id, "402817").expect("reset");
        reopened
            .sign_in_from_at(&id, "402817", None, here, t0)
            .expect("the reset ended the lock");
        Users::open(Arc::clone(&h.ledger), policy)
            .expect("reopen")
            .sign_in_from_at(&id, "402817", None, here, t0)
            .expect("and it stays ended after a restart");
    }

    #[test]
    fn parallel_guesses_cannot_outrun_the_lockout() {
        let h = hall(AuthPolicy {
            max_failures: 3,
            ..AuthPolicy::default()
        });
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let id = op("OP-1");
        // One failure so far and two checks in flight: the budget is spent, so even the right
        // PIN is not checked until they resolve.
        lock(&h.users.state).failures.insert(
            "OP-1".into(),
            Failures {
                count: 1,
                pending: 2,
                ..Failures::default()
            },
        );
        assert!(matches!(
            h.users.sign_in(&id, PIN, None),
            Err(AuthError::InvalidCredentials)
        ));
        // Once they resolved (as failures), the third failure locks.
        lock(&h.users.state).failures.insert(
            "OP-1".into(),
            Failures {
                count: 2,
                ..Failures::default()
            },
        );
        assert!(matches!(
            h.users.sign_in(&id, "999111", None),
            Err(AuthError::Locked { .. })
        ));
        // Real threads: 12 wrong guesses at once never check more than 3 PINs, and lock.
        let h = hall(AuthPolicy {
            max_failures: 3,
            ..AuthPolicy::default()
        });
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        std::thread::scope(|s| {
            for _ in 0..12 {
                s.spawn(|| h.users.sign_in(&id, "999111", None).expect_err("wrong"));
            }
        });
        assert!(matches!(
            h.users.sign_in(&id, PIN, None),
            Err(AuthError::Locked { .. })
        ));
        assert_eq!(
            changes_of(&h, "OP-1").last(),
            Some(&(
                "OP-1".to_string(),
                UserChange::LockedOut {
                    failures: 3,
                    origin: None
                }
            ))
        );
    }

    #[test]
    fn unknown_ids_are_answered_exactly_like_known_ones_and_write_nothing() {
        let h = hall(AuthPolicy {
            max_failures: 2,
            ..AuthPolicy::default()
        });
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let t0 = Utc::now();
        let before = digest(&h);
        let answers = |id: &str| -> Vec<String> {
            (0..4)
                .map(|_| {
                    let e = h
                        .users
                        .sign_in_at(&op(id), PIN, None, t0)
                        .expect_err("refused");
                    e.to_string()
                })
                .collect()
        };
        // NOPE does not exist; OP-1 is tried with a wrong PIN.
        let unknown = answers("NOPE");
        assert_eq!(
            digest(&h),
            before,
            "failures on an unknown id write nothing"
        );
        let known: Vec<String> = (0..4)
            .map(|_| {
                h.users
                    .sign_in_at(&op("OP-1"), "999111", None, t0)
                    .expect_err("refused")
                    .to_string()
            })
            .collect();
        assert_eq!(unknown, known);
        assert_eq!(unknown[0], "invalid id or PIN");
        assert!(unknown[1].starts_with("too many wrong PINs"), "{unknown:?}");
    }

    #[test]
    fn a_disabled_account_cannot_sign_in_and_its_tokens_are_refused() {
        let h = hall(AuthPolicy::default());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let id = op("OP-1");
        let t = h
            .users
            .sign_in(&id, PIN, Some(StationId::new("LAM-2")))
            .expect("sign in");
        h.users.disable(&admin(), &id).expect("disable");
        assert!(h.users.authenticate(&t.token).is_err());
        assert_eq!(
            sign_outs(&h, "OP-1"),
            vec![("ADM-1".to_string(), "account disabled".to_string())]
        );
        // The right PIN gets the same answer as a wrong one.
        assert!(matches!(
            h.users.sign_in(&id, PIN, None),
            Err(AuthError::InvalidCredentials)
        ));
        assert!(matches!(
            h.users.verify_pin(&id, PIN),
            Err(AuthError::InvalidCredentials)
        ));
        h.users.enable(&admin(), &id).expect("enable");
        let t = h.users.sign_in(&id, PIN, None).expect("sign in again");
        h.users.authenticate(&t.token).expect("works");
    }

    #[test]
    fn a_rostered_account_signs_in_only_near_its_shifts_and_the_roster_is_kept() {
        use chrono::TimeZone;
        let h = hall(AuthPolicy::default());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let id = op("OP-1");
        let at = |hh, mm| Utc.with_ymd_and_hms(2026, 12, 7, hh, mm, 0).unwrap();
        // Any shift by default: 03:00 is fine.
        h.users.sign_in_at(&id, PIN, None, at(3, 0)).expect("any");
        h.users
            .set_shifts(&admin(), &id, vec![Shift::A])
            .expect("roster");
        let before = digest(&h);
        match h.users.sign_in_at(&id, PIN, None, at(3, 0)) {
            Err(AuthError::NotRostered(e)) => {
                assert_eq!((e.now, e.shifts), (Shift::C, vec![Shift::A]));
            }
            other => panic!("not rostered at 03:00: {other:?}"),
        }
        assert_eq!(digest(&h), before, "a refused sign-in writes nothing here");
        // The grace: 05:30 is in; the right PIN is checked first (a wrong one says nothing).
        h.users
            .sign_in_at(&id, PIN, None, at(5, 30))
            .expect("grace");
        assert!(matches!(
            h.users.sign_in_at(&id, "730518", None, at(3, 0)),
            Err(AuthError::InvalidCredentials)
        ));
        // The same roster again is no change; a service account has none.
        assert!(matches!(
            h.users.set_shifts(&admin(), &id, vec![Shift::A]),
            Err(AuthError::NoChange(_))
        ));
        let (svc, _) = h
            .users
            .add_service(&admin(), "MON-1", "Central")
            .expect("service");
        assert!(matches!(
            h.users.set_shifts(&admin(), &svc.id, vec![Shift::B]),
            Err(AuthError::AccountKind(_))
        ));
        assert_eq!(
            changes_of(&h, "OP-1").last(),
            Some(&(
                "ADM-1".to_string(),
                UserChange::Rostered {
                    shifts: vec!["A".to_string()]
                }
            ))
        );
        let reopened = Users::open(Arc::clone(&h.ledger), AuthPolicy::default()).expect("reopen");
        assert_eq!(reopened.get(&id).expect("OP-1").shifts, vec![Shift::A]);
    }

    #[test]
    fn a_rostered_session_ends_with_its_shift_and_a_new_roster_signs_out_who_it_no_longer_covers() {
        use chrono::TimeZone;
        let h = hall(AuthPolicy::default());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let id = op("OP-1");
        let at = |hh, mm| Utc.with_ymd_and_hms(2026, 12, 7, hh, mm, 0).unwrap();
        // Rostered for A, signed in at 14:25 (the grace after A): out at 14:30, not at 02:25.
        h.users
            .set_shifts_at(&admin(), &id, vec![Shift::A], at(10, 0))
            .expect("roster A");
        let t = h
            .users
            .sign_in_at(&id, PIN, None, at(14, 25))
            .expect("grace");
        assert_eq!(t.expires_at, at(14, 30));
        h.users
            .authenticate_at(&t.token, at(14, 29))
            .expect("in A's grace");
        assert!(matches!(
            h.users.authenticate_at(&t.token, at(14, 31)),
            Err(AuthError::Expired)
        ));
        // Signed in for any shift at 03:00, then rostered for A at 03:00: signed out now.
        h.users
            .set_shifts_at(&admin(), &id, Vec::new(), at(3, 0))
            .expect("any");
        let t = h.users.sign_in_at(&id, PIN, None, at(3, 0)).expect("any");
        assert_eq!(t.expires_at, at(3, 0) + TimeDelta::hours(12));
        h.users
            .set_shifts_at(&admin(), &id, vec![Shift::A], at(3, 0))
            .expect("roster A at 03:00");
        assert!(matches!(
            h.users.authenticate_at(&t.token, at(3, 1)),
            Err(AuthError::InvalidCredentials)
        ));
        assert_eq!(
            sign_outs(&h, "OP-1").last(),
            Some(&("ADM-1".to_string(), "not rostered now".to_string()))
        );
        // Signed in for any shift at 09:00, rostered for A at 10:00: kept, but only until 14:30.
        h.users
            .set_shifts_at(&admin(), &id, Vec::new(), at(9, 0))
            .expect("any");
        let t = h.users.sign_in_at(&id, PIN, None, at(9, 0)).expect("any");
        h.users
            .set_shifts_at(&admin(), &id, vec![Shift::A], at(10, 0))
            .expect("roster A at 10:00");
        h.users
            .authenticate_at(&t.token, at(14, 0))
            .expect("still A");
        assert!(matches!(
            h.users.authenticate_at(&t.token, at(14, 30)),
            Err(AuthError::Expired)
        ));
    }

    #[test]
    fn an_account_stored_before_rosters_reads_as_any_shift() {
        let old = br#"{"v":1,"id":"OP-1","name":"Ayesha Khan","role":"operator","disabled":false,"pin_hash":"","locked_until":null}"#;
        let u = StoredUser::decode(b"user/OP-1", old).expect("an old record");
        assert!(u.shifts.is_empty());
        assert_eq!(u.summary().shifts, vec!["any".to_string()]);
        // And an account of any shift is stored as before: no `shifts` field.
        let again = StoredUser::encode(&u).expect("encode");
        assert!(!String::from_utf8_lossy(&again).contains("shifts"));
    }

    #[test]
    fn an_expired_token_is_refused_and_recorded_as_signed_out() {
        let h = hall(AuthPolicy::default());
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        h.users
            .add(&admin(), "OP-2", "Bilal Ahmed", Role::Operator, "730518")
            .expect("add");
        let t0 = Utc::now();
        let a = h.users.sign_in_at(&op("OP-1"), PIN, None, t0).expect("a");
        let b = h
            .users
            .sign_in_at(&op("OP-2"), "730518", None, t0 + TimeDelta::hours(1))
            .expect("b");
        let end = t0 + TimeDelta::hours(12);
        h.users
            .authenticate_at(&a.token, end - TimeDelta::seconds(1))
            .expect("still valid");
        assert!(matches!(
            h.users.authenticate_at(&a.token, end),
            Err(AuthError::Expired)
        ));
        // Dropped once noticed; the other session lives on.
        assert!(matches!(
            h.users.authenticate_at(&a.token, end),
            Err(AuthError::InvalidCredentials)
        ));
        h.users.authenticate_at(&b.token, end).expect("b valid");
        assert_eq!(h.users.sweep_expired_at(end).expect("sweep"), 1);
        assert_eq!(
            sign_outs(&h, "OP-1"),
            vec![(CONTROLLER.to_string(), "token expired".to_string())]
        );
        assert_eq!(h.users.sweep_expired_at(end).expect("sweep"), 0);
        let later = t0 + TimeDelta::hours(13);
        assert_eq!(h.users.sweep_expired_at(later).expect("sweep"), 1);
        assert!(matches!(
            h.users.authenticate_at(&b.token, later),
            Err(AuthError::InvalidCredentials)
        ));
    }

    #[test]
    fn a_service_token_works_is_stored_hashed_and_is_revoked_with_its_account() {
        let h = hall(AuthPolicy::default());
        let (u, token) = h
            .users
            .add_service(&admin(), "MON-CENTRAL", "Central monitoring room")
            .expect("add");
        assert_eq!((u.role, u.is_service()), (Role::Monitor, true));
        assert_eq!(token.len(), 64);
        let p = h.users.authenticate(&token).expect("authenticate");
        assert_eq!(
            (p.user.as_str(), p.role, p.station),
            ("MON-CENTRAL", Role::Monitor, None)
        );
        // Stored as its SHA-256 only.
        let key = format!("svc/{}", hex::encode(Sha256::digest(token.as_bytes())));
        assert_eq!(
            h.ledger
                .store()
                .aux_get(key.as_bytes())
                .expect("get")
                .as_deref(),
            Some(&b"MON-CENTRAL"[..])
        );
        h.ledger
            .store()
            .aux_for_each(b"", b"", |k, v| {
                assert!(!String::from_utf8_lossy(k).contains(&token));
                assert!(!String::from_utf8_lossy(v).contains(&token));
                true
            })
            .expect("scan");
        // It survives a restart (sessions do not).
        let reopened = Users::open(Arc::clone(&h.ledger), AuthPolicy::default()).expect("reopen");
        reopened.authenticate(&token).expect("after restart");
        // No PIN sign-in for a service account, whatever is typed.
        assert!(matches!(
            reopened.sign_in(&u.id, "", None),
            Err(AuthError::InvalidCredentials)
        ));
        // A new token replaces the old.
        let fresh = reopened
            .reset_service_token(&admin(), &u.id)
            .expect("reset");
        assert!(reopened.authenticate(&token).is_err());
        reopened.authenticate(&fresh).expect("new token");
        // Disabling revokes it for good: enabling again does not bring it back.
        reopened.disable(&admin(), &u.id).expect("disable");
        assert!(reopened.authenticate(&fresh).is_err());
        reopened.enable(&admin(), &u.id).expect("enable");
        assert!(reopened.authenticate(&fresh).is_err());
        let mut svc = 0;
        h.ledger
            .store()
            .aux_for_each(b"svc/", b"svc/", |_, _| {
                svc += 1;
                true
            })
            .expect("scan");
        assert_eq!(svc, 0);
    }

    #[test]
    fn every_change_is_recorded_with_its_actor() {
        let h = hall(AuthPolicy::default());
        let id = op("SUP-3");
        h.users
            .add(&op(CONSOLE), "SUP-3", "Sana Malik", Role::Supervisor, PIN)
            .expect("add");
        h.users.disable(&admin(), &id).expect("disable");
        h.users.enable(&op("ADM-2"), &id).expect("enable");
        h.users.reset_pin(&admin(), &id, "730518").expect("reset");
        assert_eq!(
            changes_of(&h, "SUP-3"),
            vec![
                (
                    CONSOLE.to_string(),
                    UserChange::Added {
                        role: Role::Supervisor
                    }
                ),
                ("ADM-1".to_string(), UserChange::Disabled),
                ("ADM-2".to_string(), UserChange::Enabled),
                ("ADM-1".to_string(), UserChange::PinReset),
            ]
        );
        // The state matches, also after a restart.
        let reopened = Users::open(Arc::clone(&h.ledger), AuthPolicy::default()).expect("reopen");
        let u = reopened.get(&id).expect("user");
        assert_eq!(
            (u.name.as_str(), u.role, u.disabled),
            ("Sana Malik", Role::Supervisor, false)
        );
        assert_eq!(reopened.list(), h.users.list());
        reopened.sign_in(&id, "730518", None).expect("new PIN");
        assert!(reopened.sign_in(&id, PIN, None).is_err());
    }

    #[test]
    fn a_pin_reset_clears_the_lockout_and_signs_the_account_out() {
        let h = hall(AuthPolicy {
            max_failures: 1,
            ..AuthPolicy::default()
        });
        let id = op("OP-1");
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let t = h.users.sign_in(&id, PIN, None).expect("sign in");
        assert!(matches!(
            h.users.sign_in(&id, "999111", None),
            Err(AuthError::Locked { .. })
        ));
        // A lockout does not end current sessions.
        h.users.authenticate(&t.token).expect("still signed in");
        let u = h.users.reset_pin(&admin(), &id, "730518").expect("reset");
        assert_eq!(u.locked_until, None);
        assert!(h.users.authenticate(&t.token).is_err());
        assert_eq!(
            sign_outs(&h, "OP-1"),
            vec![("ADM-1".to_string(), "PIN reset".to_string())]
        );
        h.users.sign_in(&id, "730518", None).expect("unlocked");
    }

    #[test]
    fn refused_changes_leave_the_store_unchanged() {
        let h = hall(AuthPolicy::default());
        let id = op("OP-1");
        h.users
            .add(&admin(), "OP-1", "Ayesha Khan", Role::Operator, PIN)
            .expect("add");
        let (svc, _) = h
            .users
            .add_service(&admin(), "MON-1", "Monitor")
            .expect("svc");
        let before = digest(&h);
        let a = admin();
        let refusals: Vec<(&str, Result<User, AuthError>)> = vec![
            (
                "duplicate",
                h.users.add(&a, "OP-1", "X", Role::Operator, "730518"),
            ),
            (
                "duplicate service",
                h.users.add_service(&a, "OP-1", "X").map(|(u, _)| u),
            ),
            (
                "weak PIN",
                h.users.add(&a, "OP-2", "X", Role::Operator, "123456"),
            ),
            (
                "bad id",
                h.users.add(&a, "op-2", "X", Role::Operator, "730518"),
            ),
            (
                "reserved id",
                h.users.add(&a, CONSOLE, "X", Role::Admin, "730518"),
            ),
            (
                "empty name",
                h.users.add(&a, "OP-2", "  ", Role::Operator, "730518"),
            ),
            (
                "monitor with PIN",
                h.users.add(&a, "OP-2", "X", Role::Monitor, "730518"),
            ),
            ("disable unknown", h.users.disable(&a, &op("OP-9"))),
            ("enable enabled", h.users.enable(&a, &id)),
            (
                "reset unknown",
                h.users.reset_pin(&a, &op("OP-9"), "730518"),
            ),
            ("weak reset", h.users.reset_pin(&a, &id, "000000")),
            (
                "PIN for a service",
                h.users.reset_pin(&a, &svc.id, "730518"),
            ),
            (
                "token for a person",
                h.users.reset_service_token(&a, &id).map(|_| svc.clone()),
            ),
        ];
        for (what, r) in refusals {
            let e = r.expect_err(what);
            assert_ne!(e.code(), "internal", "{what}: {e}");
            assert!(!e.to_string().contains("730518"), "{what}: {e}");
            assert_eq!(digest(&h), before, "{what} changed the store");
        }
        h.users.disable(&a, &id).expect("disable");
        let disabled = digest(&h);
        assert!(matches!(
            h.users.disable(&a, &id),
            Err(AuthError::NoChange(_))
        ));
        assert_eq!(digest(&h), disabled);
    }

    #[test]
    fn roles_are_denied_unless_named() {
        let p = |role| Principal {
            user: op("X1"),
            role,
            station: None,
            token_id: String::new(),
        };
        for role in Role::ALL {
            assert!(matches!(
                require(&p(role), &[]),
                Err(AuthError::Forbidden { .. })
            ));
            assert!(require(&p(role), &[role]).is_ok());
        }
        let e = require(&p(Role::Monitor), &[Role::Supervisor, Role::Admin]).expect_err("denied");
        assert_eq!(
            e.to_string(),
            "role monitor may not do this (allowed: supervisor, admin)"
        );
        // Account management: admins any account, supervisors operators only.
        for (who, target, ok) in [
            (Role::Admin, Role::Admin, true),
            (Role::Admin, Role::Monitor, true),
            (Role::Supervisor, Role::Operator, true),
            (Role::Supervisor, Role::Supervisor, false),
            (Role::Supervisor, Role::Admin, false),
            (Role::Operator, Role::Operator, false),
            (Role::Auditor, Role::Operator, false),
            (Role::Monitor, Role::Operator, false),
        ] {
            assert_eq!(
                require_manage(&p(who), target).is_ok(),
                ok,
                "{who} → {target}"
            );
        }
    }

    #[test]
    fn unusable_policies_are_refused() {
        let bad = [
            AuthPolicy {
                max_failures: 0,
                ..AuthPolicy::default()
            },
            AuthPolicy {
                lockout: Duration::ZERO,
                ..AuthPolicy::default()
            },
            AuthPolicy {
                token_ttl: Duration::from_secs(365 * 24 * 3600),
                ..AuthPolicy::default()
            },
        ];
        for p in bad {
            assert!(matches!(p.validate(), Err(AuthError::Policy(_))), "{p:?}");
        }
        AuthPolicy::default().validate().expect("default");
    }
}
