//! How far a push may move its durable checkpoint (pure).
//!
//! The change log's sequence numbers are handed out when a transaction writes, not when it
//! commits: on PostgreSQL a transaction can commit after one with a higher number, so while it
//! is open its number is a gap in what a reader sees. Passing a gap for good would lose that
//! change. So the checkpoint stops before a gap until the change just after the gap is older than
//! a grace period: a transaction open longer than that is taken to have rolled back (rolled back
//! transactions leave gaps for ever). Everything read past the checkpoint is read again by the
//! next run, which costs nothing at the target: what the identity map says is already there at
//! that version is not sent again.

use chrono::{DateTime, Duration, Utc};

/// The highest sequence number up to which nothing can still appear: walking up from
/// `checkpoint` over the numbers `seen` (ascending, each with the time of its change), a missing
/// number is passed only when the change after it is older than `grace` at `now`.
pub fn safe_checkpoint(
    checkpoint: i64,
    seen: &[(i64, DateTime<Utc>)],
    now: DateTime<Utc>,
    grace: Duration,
) -> i64 {
    let mut safe = checkpoint;
    for &(seq, changed_at) in seen {
        if seq <= safe {
            continue;
        }
        if seq != safe + 1 && now - changed_at < grace {
            break;
        }
        safe = seq;
    }
    safe
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds_ago: i64) -> DateTime<Utc> {
        Utc::now() - Duration::seconds(seconds_ago)
    }

    #[test]
    fn contiguous_numbers_move_the_checkpoint_to_the_last() {
        let seen = [(5, at(1)), (6, at(1)), (7, at(0))];
        assert_eq!(
            safe_checkpoint(4, &seen, Utc::now(), Duration::seconds(60)),
            7
        );
    }

    #[test]
    fn a_young_gap_holds_the_checkpoint_before_it() {
        // 6 is missing: perhaps a transaction that has not committed yet.
        let seen = [(5, at(1)), (7, at(1)), (8, at(0))];
        assert_eq!(
            safe_checkpoint(4, &seen, Utc::now(), Duration::seconds(60)),
            5
        );
    }

    #[test]
    fn an_old_gap_is_passed() {
        let seen = [(5, at(300)), (7, at(200)), (9, at(5))];
        // 6 is older than the grace (passed); 8 is young (held).
        assert_eq!(
            safe_checkpoint(4, &seen, Utc::now(), Duration::seconds(60)),
            7
        );
    }

    #[test]
    fn a_gap_right_after_the_checkpoint_counts_too() {
        let seen = [(10, at(0))];
        assert_eq!(
            safe_checkpoint(4, &seen, Utc::now(), Duration::seconds(60)),
            4
        );
        assert_eq!(
            safe_checkpoint(4, &[], Utc::now(), Duration::seconds(60)),
            4
        );
    }

    #[test]
    fn never_moves_back() {
        let seen = [(3, at(0)), (4, at(0))];
        assert_eq!(
            safe_checkpoint(9, &seen, Utc::now(), Duration::seconds(60)),
            9
        );
    }
}
