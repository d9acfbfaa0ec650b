//! Argon2 parameters and difficulty, validated when they are built.

use core::fmt;
use core::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a parameter was refused. Every variant names the allowed range so the
/// message can be shown to an operator as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("time cost {0} is out of range: allowed {min}..={max}", min = Argon2Params::MIN_TIME_COST, max = Argon2Params::MAX_TIME_COST)]
    TimeCost(u32),
    #[error("memory {0} KiB is out of range: allowed {min}..={max} KiB and at least 8 x parallelism", min = Argon2Params::MIN_MEMORY_KIB, max = Argon2Params::MAX_MEMORY_KIB)]
    Memory(u32),
    #[error("parallelism {0} is out of range: allowed {min}..={max}", min = Argon2Params::MIN_PARALLELISM, max = Argon2Params::MAX_PARALLELISM)]
    Parallelism(u32),
    #[error("hash length {0} is out of range: allowed {min}..={max} bytes", min = Argon2Params::MIN_HASH_LENGTH, max = Argon2Params::MAX_HASH_LENGTH)]
    HashLength(u32),
    #[error("difficulty {0} is out of range: allowed {min}..={max} expected hashes", min = Difficulty::MIN.get(), max = Difficulty::MAX.get())]
    Difficulty(u64),
    #[error("unknown difficulty {0:?}: use low, medium, high, extreme or an integer")]
    DifficultyName(UnknownName),
}

/// A difficulty name that is neither a preset nor a number, kept short and
/// `Copy` so [`ParamsError`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct UnknownName {
    bytes: [u8; 16],
    len: u8,
}

impl UnknownName {
    fn new(s: &str) -> Self {
        let mut bytes = [0u8; 16];
        let mut len = 0usize;
        for (i, ch) in s.char_indices() {
            let end = i + ch.len_utf8();
            if end > bytes.len() {
                break;
            }
            bytes[i..end].copy_from_slice(&s.as_bytes()[i..end]);
            len = end;
        }
        Self {
            bytes,
            len: u8::try_from(len).unwrap_or(16),
        }
    }

    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("?")
    }
}

impl fmt::Debug for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// The four argon2id cost parameters. The variant (argon2id) and version
/// (0x13) are fixed by the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawArgon2Params", into = "RawArgon2Params")]
pub struct Argon2Params {
    t_cost: u32,
    m_cost_kib: u32,
    parallelism: u32,
    hash_length: u32,
}

/// Wire form of [`Argon2Params`]; deserialising goes through
/// [`Argon2Params::new`] so nothing unvalidated gets in.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct RawArgon2Params {
    t_cost: u32,
    m_cost: u32,
    parallelism: u32,
    hash_length: u32,
}

impl TryFrom<RawArgon2Params> for Argon2Params {
    type Error = ParamsError;
    fn try_from(raw: RawArgon2Params) -> Result<Self, ParamsError> {
        Self::new(raw.t_cost, raw.m_cost, raw.parallelism, raw.hash_length)
    }
}

impl From<Argon2Params> for RawArgon2Params {
    fn from(p: Argon2Params) -> Self {
        Self {
            t_cost: p.t_cost,
            m_cost: p.m_cost_kib,
            parallelism: p.parallelism,
            hash_length: p.hash_length,
        }
    }
}

impl Argon2Params {
    pub const MIN_TIME_COST: u32 = 1;
    pub const MAX_TIME_COST: u32 = 64;
    /// argon2 itself needs 8 KiB per lane.
    pub const MIN_MEMORY_KIB: u32 = 8;
    /// 4 GiB: what a wasm32 worker could address at most.
    pub const MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
    pub const MIN_PARALLELISM: u32 = 1;
    pub const MAX_PARALLELISM: u32 = 16;
    /// The target compares the leading 256 bits, so the hash needs at least 32 bytes.
    pub const MIN_HASH_LENGTH: u32 = 32;
    pub const MAX_HASH_LENGTH: u32 = 64;

    pub const DEFAULT_TIME_COST: u32 = 8;
    pub const DEFAULT_MEMORY_KIB: u32 = 65536;
    pub const DEFAULT_PARALLELISM: u32 = 1;
    pub const DEFAULT_HASH_LENGTH: u32 = 32;

    pub const DEFAULT: Self = Self {
        t_cost: Self::DEFAULT_TIME_COST,
        m_cost_kib: Self::DEFAULT_MEMORY_KIB,
        parallelism: Self::DEFAULT_PARALLELISM,
        hash_length: Self::DEFAULT_HASH_LENGTH,
    };

    /// Builds validated parameters.
    ///
    /// # Errors
    /// Returns the [`ParamsError`] variant of the first parameter out of range.
    pub fn new(
        t_cost: u32,
        m_cost_kib: u32,
        parallelism: u32,
        hash_length: u32,
    ) -> Result<Self, ParamsError> {
        if !(Self::MIN_TIME_COST..=Self::MAX_TIME_COST).contains(&t_cost) {
            return Err(ParamsError::TimeCost(t_cost));
        }
        if !(Self::MIN_PARALLELISM..=Self::MAX_PARALLELISM).contains(&parallelism) {
            return Err(ParamsError::Parallelism(parallelism));
        }
        if !(Self::MIN_MEMORY_KIB..=Self::MAX_MEMORY_KIB).contains(&m_cost_kib)
            || m_cost_kib < 8 * parallelism
        {
            return Err(ParamsError::Memory(m_cost_kib));
        }
        if !(Self::MIN_HASH_LENGTH..=Self::MAX_HASH_LENGTH).contains(&hash_length) {
            return Err(ParamsError::HashLength(hash_length));
        }
        Ok(Self {
            t_cost,
            m_cost_kib,
            parallelism,
            hash_length,
        })
    }

    pub const fn t_cost(&self) -> u32 {
        self.t_cost
    }
    pub const fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }
    pub const fn parallelism(&self) -> u32 {
        self.parallelism
    }
    pub const fn hash_length(&self) -> u32 {
        self.hash_length
    }

    /// Number of 1 KiB argon2 blocks one hash needs, as argon2 rounds it
    /// (down to a multiple of 4 x parallelism).
    pub fn block_count(&self) -> usize {
        self.to_argon2().map_or(0, |p| p.block_count())
    }

    /// The `argon2` crate's form of these parameters.
    ///
    /// # Errors
    /// Cannot fail for values that passed [`Argon2Params::new`]; the `Result`
    /// is kept so no `unwrap` is needed.
    pub fn to_argon2(&self) -> Result<argon2::Params, argon2::Error> {
        argon2::Params::new(
            self.m_cost_kib,
            self.t_cost,
            self.parallelism,
            Some(self.hash_length as usize),
        )
    }
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The expected number of hashes a client must try: a nonce wins with
/// probability 1/D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct Difficulty(u64);

impl Difficulty {
    pub const MIN: Self = Self(1);
    /// Far beyond anything a browser could pay; stops typos like an extra zero
    /// block from turning into a denial of service on the operator's own users.
    pub const MAX: Self = Self(1_000_000_000);
    pub const LOW: Self = Self(200);
    pub const MEDIUM: Self = Self(900);
    pub const HIGH: Self = Self(1900);
    pub const EXTREME: Self = Self(4000);
    /// `low`: a slow device at the default argon2 parameters (a two-worker
    /// browser at about 4 H/s) needs under a minute; `medium` would keep
    /// such a visitor waiting about four.
    pub const DEFAULT: Self = Self::LOW;

    /// The named presets, in increasing order.
    pub const PRESETS: [(&'static str, Self); 4] = [
        ("low", Self::LOW),
        ("medium", Self::MEDIUM),
        ("high", Self::HIGH),
        ("extreme", Self::EXTREME),
    ];

    /// # Errors
    /// [`ParamsError::Difficulty`] when `d` is outside `MIN..=MAX`.
    pub const fn new(d: u64) -> Result<Self, ParamsError> {
        if d < Self::MIN.0 || d > Self::MAX.0 {
            return Err(ParamsError::Difficulty(d));
        }
        Ok(Self(d))
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The preset name when this difficulty is one of the presets.
    pub fn preset_name(self) -> Option<&'static str> {
        Self::PRESETS
            .iter()
            .find(|(_, d)| *d == self)
            .map(|(name, _)| *name)
    }

    /// Half the difficulty, rounded down but never below 1: the price of
    /// refreshing an expired token.
    pub const fn halved(self) -> Self {
        if self.0 / 2 == 0 {
            Self(1)
        } else {
            Self(self.0 / 2)
        }
    }

    /// floor((2^256 - 1) / D) as 32 big-endian bytes. A hash whose leading
    /// 32 bytes, read big-endian, are at most this value is a solution.
    pub fn target(self) -> [u8; 32] {
        // Schoolbook long division of the all-ones 256-bit number by a u64,
        // one 32-bit digit at a time so every intermediate fits in a u64.
        let divisor = self.0;
        let mut out = [0u8; 32];
        let mut rem: u128 = 0;
        for chunk in out.chunks_exact_mut(4) {
            let cur = (rem << 32) | 0xFFFF_FFFF;
            let q = cur / u128::from(divisor);
            rem = cur % u128::from(divisor);
            // q < 2^32 because rem < divisor, so the digit fits.
            let digit = u32::try_from(q).unwrap_or(u32::MAX);
            chunk.copy_from_slice(&digit.to_be_bytes());
        }
        out
    }
}

impl Default for Difficulty {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u64> for Difficulty {
    type Error = ParamsError;
    fn try_from(d: u64) -> Result<Self, ParamsError> {
        Self::new(d)
    }
}

impl From<Difficulty> for u64 {
    fn from(d: Difficulty) -> u64 {
        d.0
    }
}

impl FromStr for Difficulty {
    type Err = ParamsError;

    /// Accepts a preset name (any case) or a decimal integer.
    fn from_str(s: &str) -> Result<Self, ParamsError> {
        let s = s.trim();
        if let Some((_, d)) = Self::PRESETS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
        {
            return Ok(*d);
        }
        match s.parse::<u64>() {
            Ok(n) => Self::new(n),
            Err(_) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Err(ParamsError::Difficulty(u64::MAX))
            }
            Err(_) => Err(ParamsError::DifficultyName(UnknownName::new(s))),
        }
    }
}

impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.preset_name() {
            Some(name) => write!(f, "{} ({name})", self.0),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let p = Argon2Params::default();
        assert_eq!(
            (p.t_cost(), p.m_cost_kib(), p.parallelism(), p.hash_length()),
            (8, 65536, 1, 32)
        );
        assert_eq!(p.block_count(), 65536);
    }

    #[test]
    fn each_limit_is_enforced() {
        assert_eq!(
            Argon2Params::new(0, 64, 1, 32),
            Err(ParamsError::TimeCost(0))
        );
        assert_eq!(Argon2Params::new(1, 7, 1, 32), Err(ParamsError::Memory(7)));
        assert_eq!(
            Argon2Params::new(1, 16, 4, 32),
            Err(ParamsError::Memory(16))
        );
        assert_eq!(
            Argon2Params::new(1, 64, 0, 32),
            Err(ParamsError::Parallelism(0))
        );
        assert_eq!(
            Argon2Params::new(1, 64, 1, 16),
            Err(ParamsError::HashLength(16))
        );
        assert!(Argon2Params::new(1, 8, 1, 32).is_ok());
    }

    #[test]
    fn errors_name_the_range() {
        let msg = ParamsError::Memory(1).to_string();
        assert!(msg.contains("8..=4194304"), "{msg}");
    }

    #[test]
    fn difficulty_parses_presets_and_integers() {
        assert_eq!("low".parse::<Difficulty>(), Ok(Difficulty::LOW));
        assert_eq!("Extreme".parse::<Difficulty>(), Ok(Difficulty(4000)));
        assert_eq!(" 17 ".parse::<Difficulty>(), Ok(Difficulty(17)));
        assert_eq!("0".parse::<Difficulty>(), Err(ParamsError::Difficulty(0)));
        assert!(matches!(
            "huge".parse::<Difficulty>(),
            Err(ParamsError::DifficultyName(_))
        ));
        assert!(matches!(
            "99999999999999999999999".parse::<Difficulty>(),
            Err(ParamsError::Difficulty(_))
        ));
    }

    #[test]
    fn target_is_floor_of_max_over_d() {
        assert_eq!(Difficulty(1).target(), [0xFF; 32]);
        let mut half = [0xFF; 32];
        half[0] = 0x7F;
        assert_eq!(Difficulty(2).target(), half);
        // (2^256-1)/3 = 0x5555...5555
        assert_eq!(Difficulty(3).target(), [0x55; 32]);
        // (2^256-1)/256 = 0x00FF...FF
        let mut t = [0xFF; 32];
        t[0] = 0;
        assert_eq!(Difficulty(256).target(), t);
    }

    #[test]
    fn halved_never_reaches_zero() {
        assert_eq!(Difficulty(900).halved(), Difficulty(450));
        assert_eq!(Difficulty(3).halved(), Difficulty(1));
        assert_eq!(Difficulty(1).halved(), Difficulty(1));
    }
}
