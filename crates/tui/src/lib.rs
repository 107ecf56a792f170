//! pooldesk: the admin's terminal client of `pooldeskd`'s control socket.
//!
//! Map:
//! - [`client`]: the socket task (connect, hello, frames, reconnect with
//!   backoff). The only code that does socket I/O.
//! - [`app`]: state and [`app::Action`]s; requests queue in an outbox.
//! - [`ui`]: one module per screen (state, keys, draw), dialogs and help.
//! - [`run`]: the loop selecting over terminal input, socket messages and a
//!   tick; generic over the ratatui backend.
//! - [`terminal`]: raw mode / alternate screen, restored on exit and panic.
//! - [`keys`], [`format`]: the key table; money, hashrate and time text.
//!
//! Architecture invariant: this crate knows `pooldesk-proto` and nothing of
//! the daemon. Money is integer (msat/sat) from the wire to the screen.

pub mod app;
pub mod client;
#[doc(hidden)]
pub mod fixtures;
pub mod format;
pub mod keys;
pub mod run;
pub mod terminal;
pub mod ui;
