//! A sequential specification of the key-value store, checked key by key.
//!
//! Each key is an independent register holding `Option<Vec<u8>>` (absent or a value), starting
//! absent. [`KvModel`] partitions a history by key, so the checker's cost grows with the
//! concurrency per key rather than with the size of the whole history.

use std::collections::HashMap;
use std::fmt;

use crate::{History, Model, Operation};

/// A request to the key-value store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvInput {
    /// Read a key. Answered by [`KvOutput::Value`].
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// Set a key to a value. Answered by [`KvOutput::Ok`].
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Append bytes to a key's value; a missing key is created with `value`. Answered by
    /// [`KvOutput::Ok`].
    Append {
        /// The key.
        key: Vec<u8>,
        /// The bytes to append.
        value: Vec<u8>,
    },
    /// Compare-and-swap: set the key to `new` iff its current value equals `expected`
    /// (`None` = the key is absent). Answered by [`KvOutput::Cas`].
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The value the key must hold, or `None` if it must be absent.
        expected: Option<Vec<u8>>,
        /// The value to store if it does.
        new: Vec<u8>,
    },
    /// Remove a key. Answered by [`KvOutput::Deleted`].
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl KvInput {
    /// `Get { key }`.
    pub fn get(key: impl AsRef<[u8]>) -> Self {
        KvInput::Get {
            key: key.as_ref().to_vec(),
        }
    }

    /// `Put { key, value }`.
    pub fn put(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        KvInput::Put {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
        }
    }

    /// `Append { key, value }`.
    pub fn append(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        KvInput::Append {
            key: key.as_ref().to_vec(),
            value: value.as_ref().to_vec(),
        }
    }

    /// `Cas { key, expected, new }`.
    pub fn cas(key: impl AsRef<[u8]>, expected: Option<&[u8]>, new: impl AsRef<[u8]>) -> Self {
        KvInput::Cas {
            key: key.as_ref().to_vec(),
            expected: expected.map(<[u8]>::to_vec),
            new: new.as_ref().to_vec(),
        }
    }

    /// `Delete { key }`.
    pub fn delete(key: impl AsRef<[u8]>) -> Self {
        KvInput::Delete {
            key: key.as_ref().to_vec(),
        }
    }

    /// The key the request touches.
    pub fn key(&self) -> &[u8] {
        match self {
            KvInput::Get { key }
            | KvInput::Put { key, .. }
            | KvInput::Append { key, .. }
            | KvInput::Cas { key, .. }
            | KvInput::Delete { key } => key,
        }
    }
}

/// A response from the key-value store.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum KvOutput {
    /// The value read by a Get (`None` = absent).
    Value(Option<Vec<u8>>),
    /// A Put or Append took effect.
    Ok,
    /// Whether a Cas swapped.
    Cas(bool),
    /// Whether the key existed when a Delete took effect.
    Deleted(bool),
}

impl KvOutput {
    /// `Value(Some(value))`: a Get found `value`.
    pub fn found(value: impl AsRef<[u8]>) -> Self {
        KvOutput::Value(Some(value.as_ref().to_vec()))
    }

    /// `Value(None)`: a Get found the key absent.
    pub fn not_found() -> Self {
        KvOutput::Value(None)
    }
}

/// Shows bytes as a quoted string when they are printable UTF-8, else as `0x` hex.
struct Bytes<'a>(&'a [u8]);

impl fmt::Debug for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if !s.chars().any(char::is_control) => write!(f, "{s:?}"),
            _ => {
                f.write_str("0x")?;
                for b in self.0 {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

struct OptBytes<'a>(Option<&'a [u8]>);

impl fmt::Debug for OptBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(b) => write!(f, "Some({:?})", Bytes(b)),
            None => f.write_str("None"),
        }
    }
}

impl fmt::Debug for KvInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvInput::Get { key } => f.debug_struct("Get").field("key", &Bytes(key)).finish(),
            KvInput::Put { key, value } => f
                .debug_struct("Put")
                .field("key", &Bytes(key))
                .field("value", &Bytes(value))
                .finish(),
            KvInput::Append { key, value } => f
                .debug_struct("Append")
                .field("key", &Bytes(key))
                .field("value", &Bytes(value))
                .finish(),
            KvInput::Cas { key, expected, new } => f
                .debug_struct("Cas")
                .field("key", &Bytes(key))
                .field("expected", &OptBytes(expected.as_deref()))
                .field("new", &Bytes(new))
                .finish(),
            KvInput::Delete { key } => f.debug_struct("Delete").field("key", &Bytes(key)).finish(),
        }
    }
}

impl fmt::Debug for KvOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOutput::Value(v) => write!(f, "Value({:?})", OptBytes(v.as_deref())),
            KvOutput::Ok => f.write_str("Ok"),
            KvOutput::Cas(b) => write!(f, "Cas({b})"),
            KvOutput::Deleted(b) => write!(f, "Deleted({b})"),
        }
    }
}

/// The state of one key: absent, or its value.
pub type KvState = Option<Vec<u8>>;

/// A recorder for key-value histories; see [`History`].
pub type KvHistory = History<KvInput, KvOutput>;

/// The key-value store's specification: every key is an independent register, starting absent.
///
/// * `Get` must return the current value (`Value(None)` if absent).
/// * `Put` sets the value; `Append` concatenates (creating a missing key); both return `Ok`.
/// * `Cas` swaps iff the current value equals `expected` (`None` = absent) and returns whether
///   it did.
/// * `Delete` removes the key and returns whether it existed.
///
/// An output of the wrong kind for the request (e.g. `Ok` for a `Get`) is never legal.
/// Histories are partitioned by key, in order of each key's first appearance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvModel;

impl Model for KvModel {
    type State = KvState;
    type Input = KvInput;
    type Output = KvOutput;

    fn init(&self) -> KvState {
        None
    }

    fn step(&self, state: &KvState, input: &KvInput, output: Option<&KvOutput>) -> Option<KvState> {
        match input {
            KvInput::Get { .. } => match output {
                None => Some(state.clone()),
                Some(KvOutput::Value(v)) if v == state => Some(state.clone()),
                Some(_) => None,
            },
            KvInput::Put { value, .. } => match output {
                None | Some(KvOutput::Ok) => Some(Some(value.clone())),
                Some(_) => None,
            },
            KvInput::Append { value, .. } => match output {
                None | Some(KvOutput::Ok) => {
                    let mut next = state.clone().unwrap_or_default();
                    next.extend_from_slice(value);
                    Some(Some(next))
                }
                Some(_) => None,
            },
            KvInput::Cas { expected, new, .. } => {
                let swapped = state == expected;
                match output {
                    None => {}
                    Some(KvOutput::Cas(claimed)) if *claimed == swapped => {}
                    Some(_) => return None,
                }
                Some(if swapped {
                    Some(new.clone())
                } else {
                    state.clone()
                })
            }
            KvInput::Delete { .. } => match output {
                None => Some(None),
                Some(KvOutput::Deleted(existed)) if *existed == state.is_some() => Some(None),
                Some(_) => None,
            },
        }
    }

    /// Gets, compare-and-swaps that report `Cas(false)` and deletes that report
    /// `Deleted(false)`.
    fn is_read_only(&self, input: &KvInput, output: Option<&KvOutput>) -> bool {
        matches!(
            (input, output),
            (KvInput::Get { .. }, _)
                | (KvInput::Cas { .. }, Some(KvOutput::Cas(false)))
                | (KvInput::Delete { .. }, Some(KvOutput::Deleted(false)))
        )
    }

    fn partition(&self, ops: &[Operation<KvInput, KvOutput>]) -> Vec<Vec<usize>> {
        let mut index: HashMap<&[u8], usize> = HashMap::new();
        let mut parts: Vec<Vec<usize>> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let part = *index.entry(op.input.key()).or_insert_with(|| {
                parts.push(Vec::new());
                parts.len() - 1
            });
            parts[part].push(i);
        }
        parts
    }

    /// `key "<utf-8, lossy>" (0x<hex>)`.
    fn describe_partition(&self, ops: &[Operation<KvInput, KvOutput>], part: &[usize]) -> String {
        match part.first().and_then(|&i| ops.get(i)) {
            Some(op) => describe_key(op.input.key()),
            None => "(empty)".to_string(),
        }
    }

    fn describe_state(&self, state: &KvState) -> String {
        format!("{:?}", OptBytes(state.as_deref()))
    }
}

/// A key as shown in reports: `key "<utf-8, lossy>" (0x<hex>)`.
pub fn describe_key(key: &[u8]) -> String {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    format!("key {:?} (0x{hex})", String::from_utf8_lossy(key))
}
