//! Which way bytes flow in a session: [`Direction`].

use std::fmt;

/// Which way bytes flow in a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the client (originator) to the server: ctos.
    Orig,
    /// From the server (responder) to the client: stoc.
    Resp,
}

impl Direction {
    /// The other direction.
    pub const fn reverse(self) -> Self {
        match self {
            Self::Orig => Self::Resp,
            Self::Resp => Self::Orig,
        }
    }
    /// 0 for `Orig`, 1 for `Resp`: an index into per-direction arrays.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Orig => "orig",
            Self::Resp => "resp",
        })
    }
}
