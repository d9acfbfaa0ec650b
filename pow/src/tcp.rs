//! The TCP gate's line protocol, `POWGATE/1`: the lines a client and
//! powgate exchange before a raw TCP connection is passed to the service
//! behind it. Only formatting and parsing; the exchange is told in the
//! crate docs ("The TCP gate").
//!
//! Every line is ASCII words separated by one space and ends with `\n`
//! (a client may end its line with `\r\n`). No line is longer than
//! [`MAX_LINE`] bytes, newline included.

use std::fmt::Write as _;

use crate::{Argon2Params, Difficulty};

/// The protocol name and version, the first word of the greeting.
pub const VERSION: &str = "POWGATE/1";

/// The longest line either side sends, newline included: a token line is
/// under 60 bytes and a greeting about 300, so 1 KiB leaves room without
/// letting a client make powgate buffer much.
pub const MAX_LINE: usize = 1024;

/// A line that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a POWGATE/1 line: {0}")]
pub struct LineError(&'static str);

/// The server's first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// A challenge to solve, or to ignore by answering with a token.
    Challenge(Offer),
    /// No challenge for now (`code` says why, such as `rate_limited`):
    /// only a token can pass; solving needs a new connection after
    /// `retry_after` seconds.
    NoChallenge { code: String, retry_after: u64 },
}

/// A challenge as the greeting carries it: the signed challenge string to
/// send back, and what the solver needs (the same values as the HTTP API's
/// challenge response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// The signed challenge, opaque to the client.
    pub challenge: String,
    /// The argon2id salt: the challenge id.
    pub salt: [u8; 16],
    pub params: Argon2Params,
    pub difficulty: Difficulty,
    /// Leading zero bits of the admission ticket ([`crate::ticket`]).
    pub ticket_bits: u8,
}

/// The client's one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A solution and its admission ticket (0 when `ticket_bits` is 0) of
    /// `challenge`: the greeting's, or one from an earlier connection of
    /// the same address that is still valid and unspent (so a slow solver
    /// need not hold a connection open while it works).
    Nonce {
        challenge: String,
        nonce: u64,
        ticket: u64,
    },
    /// A powgate token, from the HTTP API or an earlier handshake.
    Token(String),
}

/// The server's answer: then either the bytes of the service, or the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Passed; carries the token, new for a nonce, to reuse next time.
    Ok(String),
    /// Refused, then closed. `code` is one of the HTTP API's error codes
    /// (`wrong_answer`, `already_spent`, `rate_limited`, …) or `timeout`,
    /// `line_too_long`, `bad_line`, `busy`, `upstream_unavailable`.
    Err { code: String, message: String },
}

/// Replaces anything that would break the line (newlines, control bytes)
/// with a space, so a message can never inject a second line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The line without its `\n` or `\r\n`.
fn strip(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// One word: non-empty, without spaces or control characters.
fn word(s: &str) -> Result<&str, LineError> {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(LineError("a field is empty or not one word"))
    } else {
        Ok(s)
    }
}

/// The value of the next word, `name=value`.
fn named<'a>(words: &mut impl Iterator<Item = &'a str>, name: &str) -> Result<&'a str, LineError> {
    words
        .next()
        .and_then(|w| w.strip_prefix(name))
        .and_then(|v| v.strip_prefix('='))
        .ok_or(LineError("a field is missing or misnamed"))
}

/// The number of the next word, `name=number`.
fn number<'a>(words: &mut impl Iterator<Item = &'a str>, name: &str) -> Result<u64, LineError> {
    named(words, name)?
        .parse()
        .map_err(|_| LineError("a field is not a number"))
}

impl Greeting {
    /// The line, `\n` included.
    #[must_use]
    pub fn to_line(&self) -> String {
        match self {
            Self::Challenge(o) => {
                let mut salt = String::with_capacity(32);
                for b in o.salt {
                    let _ = write!(salt, "{b:02x}");
                }
                format!(
                    "{VERSION} CHALLENGE {} salt={salt} t={} m={} p={} len={} difficulty={} ticket_bits={}\n",
                    one_line(&o.challenge),
                    o.params.t_cost(),
                    o.params.m_cost_kib(),
                    o.params.parallelism(),
                    o.params.hash_length(),
                    o.difficulty.get(),
                    o.ticket_bits,
                )
            }
            Self::NoChallenge { code, retry_after } => {
                format!(
                    "{VERSION} NOCHALLENGE {} retry_after={retry_after}\n",
                    one_line(code)
                )
            }
        }
    }

    /// Reads a greeting line.
    ///
    /// # Errors
    /// Another protocol or version, a missing field, or parameters out of
    /// range.
    pub fn parse(line: &str) -> Result<Self, LineError> {
        let mut words = strip(line).split(' ');
        if words.next() != Some(VERSION) {
            return Err(LineError("the greeting does not start with POWGATE/1"));
        }
        let kind = words.next();
        let first = word(words.next().unwrap_or_default())?;
        match kind {
            Some("NOCHALLENGE") => Ok(Self::NoChallenge {
                code: first.to_owned(),
                retry_after: number(&mut words, "retry_after")?,
            }),
            Some("CHALLENGE") => {
                let hex = named(&mut words, "salt")?;
                let salt = (hex.len() == 32 && hex.is_ascii())
                    .then(|| {
                        let mut salt = [0u8; 16];
                        for (i, b) in salt.iter_mut().enumerate() {
                            *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
                        }
                        Some(salt)
                    })
                    .flatten()
                    .ok_or(LineError("salt is not 16 hex bytes"))?;
                let mut small = |name: &str| {
                    u32::try_from(number(&mut words, name)?)
                        .map_err(|_| LineError("a parameter is out of range"))
                };
                let params =
                    Argon2Params::new(small("t")?, small("m")?, small("p")?, small("len")?)
                        .map_err(|_| LineError("the argon2 parameters are out of range"))?;
                let difficulty = Difficulty::new(number(&mut words, "difficulty")?)
                    .map_err(|_| LineError("the difficulty is out of range"))?;
                let ticket_bits = u8::try_from(number(&mut words, "ticket_bits")?)
                    .map_err(|_| LineError("ticket_bits is out of range"))?;
                Ok(Self::Challenge(Offer {
                    challenge: first.to_owned(),
                    salt,
                    params,
                    difficulty,
                    ticket_bits,
                }))
            }
            _ => Err(LineError(
                "the greeting is neither CHALLENGE nor NOCHALLENGE",
            )),
        }
    }
}

impl Answer {
    /// The line, `\n` included.
    #[must_use]
    pub fn to_line(&self) -> String {
        match self {
            Self::Nonce {
                challenge,
                nonce,
                ticket,
            } => format!("NONCE {} {nonce} {ticket}\n", one_line(challenge)),
            Self::Token(t) => format!("TOKEN {}\n", one_line(t)),
        }
    }

    /// Reads the client's line.
    ///
    /// # Errors
    /// Anything but `NONCE <challenge> <n> <k>` or `TOKEN <token>`.
    pub fn parse(line: &str) -> Result<Self, LineError> {
        let mut words = strip(line).split(' ');
        let answer = match (words.next(), words.next()) {
            (Some("NONCE"), Some(c)) => {
                let mut number = |what| {
                    words
                        .next()
                        .and_then(|w| w.parse().ok())
                        .ok_or(LineError(what))
                };
                Self::Nonce {
                    challenge: word(c)?.to_owned(),
                    nonce: number("the nonce is missing or not a number")?,
                    ticket: number("the ticket is missing or not a number")?,
                }
            }
            (Some("TOKEN"), Some(t)) => Self::Token(word(t)?.to_owned()),
            _ => {
                return Err(LineError(
                    "expected NONCE <challenge> <nonce> <ticket> or TOKEN <token>",
                ));
            }
        };
        match words.next() {
            None => Ok(answer),
            Some(_) => Err(LineError("the line has extra words")),
        }
    }
}

impl Reply {
    /// The line, `\n` included.
    #[must_use]
    pub fn to_line(&self) -> String {
        match self {
            Self::Ok(token) => format!("OK {}\n", one_line(token)),
            Self::Err { code, message } => {
                format!("ERR {} {}\n", one_line(code), one_line(message))
            }
        }
    }

    /// Reads the server's answer.
    ///
    /// # Errors
    /// Anything but `OK <token>` or `ERR <code> <message>`.
    pub fn parse(line: &str) -> Result<Self, LineError> {
        let line = strip(line);
        if let Some(token) = line.strip_prefix("OK ") {
            return Ok(Self::Ok(word(token)?.to_owned()));
        }
        let rest = line
            .strip_prefix("ERR ")
            .ok_or(LineError("expected OK or ERR"))?;
        let (code, message) = rest.split_once(' ').unwrap_or((rest, ""));
        Ok(Self::Err {
            code: word(code)?.to_owned(),
            message: message.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer() -> Offer {
        Offer {
            challenge: "eyJhIjoxfQ.c2ln".into(),
            salt: [0xab; 16],
            params: Argon2Params::new(1, 256, 1, 32).unwrap(),
            difficulty: Difficulty::new(20).unwrap(),
            ticket_bits: 3,
        }
    }

    /// The README's example line, so the spec and the code cannot drift.
    #[test]
    fn the_greeting_is_the_documented_line_and_reads_back() {
        let g = Greeting::Challenge(offer());
        assert_eq!(
            g.to_line(),
            "POWGATE/1 CHALLENGE eyJhIjoxfQ.c2ln salt=abababababababababababababababab t=1 m=256 p=1 len=32 difficulty=20 ticket_bits=3\n"
        );
        assert_eq!(Greeting::parse(&g.to_line()), Ok(g));
        let busy = Greeting::NoChallenge {
            code: "rate_limited".into(),
            retry_after: 7,
        };
        assert_eq!(
            busy.to_line(),
            "POWGATE/1 NOCHALLENGE rate_limited retry_after=7\n"
        );
        assert_eq!(Greeting::parse(&busy.to_line()), Ok(busy));
    }

    #[test]
    fn another_version_or_a_bad_field_is_refused() {
        let line = Greeting::Challenge(offer()).to_line();
        assert!(Greeting::parse(&line.replace("POWGATE/1", "POWGATE/2")).is_err());
        assert!(Greeting::parse(&line.replace("t=1", "t=x")).is_err());
        assert!(Greeting::parse(&line.replace("salt=ab", "salt=")).is_err());
        assert!(Greeting::parse(&line.replace("difficulty=20", "difficulty=0")).is_err());
    }

    #[test]
    fn answers_read_back_with_either_line_ending() {
        for a in [
            Answer::Nonce {
                challenge: "eyJhIjoxfQ.c2ln".into(),
                nonce: u64::MAX,
                ticket: 0,
            },
            Answer::Token("pg_abc".into()),
        ] {
            assert_eq!(Answer::parse(&a.to_line()), Ok(a.clone()));
            assert_eq!(Answer::parse(&a.to_line().replace('\n', "\r\n")), Ok(a));
        }
    }

    #[test]
    fn garbage_answers_are_refused() {
        for line in [
            "",
            "HELLO\n",
            "NONCE c 1\n",
            "NONCE c -1 0\n",
            "NONCE c 1 2 3\n",
            "NONCE  1 2\n",
            "TOKEN\n",
            "TOKEN a b\n",
            "GET / HTTP/1.1\r\n",
        ] {
            assert!(Answer::parse(line).is_err(), "{line:?}");
        }
    }

    /// A message with a newline in it (say, from an upstream's error) must
    /// not become a second line the client would read as the service's.
    #[test]
    fn an_error_message_cannot_inject_a_second_line() {
        let r = Reply::Err {
            code: "bad_line".into(),
            message: "one\ntwo\r".into(),
        };
        assert_eq!(r.to_line(), "ERR bad_line one two \n");
        assert_eq!(
            Reply::parse(&r.to_line()),
            Ok(Reply::Err {
                code: "bad_line".into(),
                message: "one two ".into()
            })
        );
        assert_eq!(Reply::parse("OK pg_x\n"), Ok(Reply::Ok("pg_x".into())));
    }
}
