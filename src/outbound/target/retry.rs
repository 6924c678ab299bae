//! When to try again: exponential backoff with full jitter, `Retry-After`, and the circuit
//! breaker of one target.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// The longest `Retry-After` honoured: a target asking for more is waited on this long (and
/// the request then gives up or goes on as its attempts allow), so that one odd header cannot
/// stall a sync run for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// The wait before attempt `attempt + 1` (`attempt` counts from 1): a random time between zero
/// and `base * 2^(attempt-1)`, capped at `max` ("full jitter").
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
    let ceiling = base.saturating_mul(factor).min(max);
    let ceiling_ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::random_range(0..=ceiling_ms))
}

/// A `Retry-After` value: delta-seconds or an HTTP-date (compared with `now`), capped at
/// [`MAX_RETRY_AFTER`]. None when it is neither.
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when = httpdate::parse_http_date(value).ok()?;
            when.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// How a request was let through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Normal,
    /// The one request let through after the cooldown: its outcome closes or reopens the circuit.
    Trial,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial is under way; everything else fails fast.
    HalfOpen,
}

/// Consecutive failed requests open the circuit for a cooldown; then one trial request decides.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold,
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Lets a request through, or says until when the circuit stays open.
    pub fn admit(&self) -> Result<Admit, Instant> {
        let mut state = self.state();
        match *state {
            State::Closed { .. } => Ok(Admit::Normal),
            State::Open { until } if Instant::now() < until => Err(until),
            State::Open { .. } => {
                *state = State::HalfOpen;
                Ok(Admit::Trial)
            }
            // The trial's answer is awaited: about now, so callers wait briefly.
            State::HalfOpen => Err(Instant::now() + Duration::from_secs(1)),
        }
    }

    /// Records a request's end. True when this failure opened the circuit.
    pub fn record(&self, admit: Admit, failed: bool) -> bool {
        let mut state = self.state();
        if !failed {
            *state = State::Closed { failures: 0 };
            return false;
        }
        match (*state, admit) {
            (State::HalfOpen, Admit::Trial) => {
                *state = State::Open {
                    until: Instant::now() + self.cooldown,
                };
                true
            }
            (State::Closed { failures }, _) => {
                let failures = failures.saturating_add(1);
                if failures >= self.threshold {
                    *state = State::Open {
                        until: Instant::now() + self.cooldown,
                    };
                    true
                } else {
                    *state = State::Closed { failures };
                    false
                }
            }
            // A request let in before the circuit opened (or during a trial) failed too: no change.
            _ => false,
        }
    }

    /// A trial ended without an outcome (its caller went away): let the next request try.
    pub fn abandon_trial(&self) {
        let mut state = self.state();
        if matches!(*state, State::HalfOpen) {
            *state = State::Open {
                until: Instant::now(),
            };
        }
    }
}

/// Records a request's outcome with the breaker exactly once; an abandoned trial is released.
pub struct Admission<'a> {
    breaker: &'a Breaker,
    admit: Admit,
    done: bool,
}

impl<'a> Admission<'a> {
    pub fn new(breaker: &'a Breaker, admit: Admit) -> Self {
        Self {
            breaker,
            admit,
            done: false,
        }
    }

    /// True when this failure opened the circuit.
    pub fn finish(mut self, failed: bool) -> bool {
        self.done = true;
        self.breaker.record(self.admit, failed)
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if !self.done && self.admit == Admit::Trial {
            self.breaker.abandon_trial();
        }
    }
}

/// An instant as Unix seconds (rounded up).
pub fn unix_seconds(at: Instant) -> u64 {
    let ahead = at.saturating_duration_since(Instant::now());
    let when = SystemTime::now() + ahead;
    let since = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_its_ceiling() {
        let base = Duration::from_millis(200);
        let max = Duration::from_secs(10);
        for _ in 0..200 {
            assert!(backoff(1, base, max) <= base);
            assert!(backoff(3, base, max) <= base * 4);
            assert!(backoff(40, base, max) <= max);
        }
    }

    #[test]
    fn retry_after_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:27 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("86400", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[tokio::test]
    async fn breaker_opens_trials_and_closes() {
        let breaker = Breaker::new(2, Duration::from_millis(30));
        assert_eq!(breaker.admit(), Ok(Admit::Normal));
        assert!(!breaker.record(Admit::Normal, true));
        assert!(breaker.record(Admit::Normal, true));
        assert!(breaker.admit().is_err());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(breaker.admit(), Ok(Admit::Trial));
        assert!(breaker.admit().is_err(), "one trial at a time");
        assert!(breaker.record(Admit::Trial, true), "a failed trial reopens");
        assert!(breaker.admit().is_err());
        tokio::time::sleep(Duration::from_millis(40)).await;
        {
            let admission = Admission::new(&breaker, breaker.admit().unwrap());
            drop(admission);
        }
        assert_eq!(
            breaker.admit(),
            Ok(Admit::Trial),
            "an abandoned trial is retried"
        );
        assert!(!breaker.record(Admit::Trial, false));
        assert_eq!(breaker.admit(), Ok(Admit::Normal));
    }
}
