//! AEP v1 (aep-v1.md): the envelope, every event, error codes and close codes.
//! This module is the only place wire strings are spelled. It does no I/O and
//! knows nothing about sessions or sockets.

pub mod codes;
pub mod decode;
pub mod envelope;
pub mod events;
pub mod strict_json;

pub use codes::{ErrorCode, SessionState, close};
pub use decode::{
    ClientEvent, ClientFrame, ControlAction, DecodeError, DecodeLimits, InitConfig, InitRequest, Mode, decode,
};
pub use envelope::{VERSION, encode, encode_into, new_event_id, now_ms};
pub use events::{Event, Priority, ServerCaps, Stats, ThrottleSuggestion};
