//! Exponential backoff with jitter, shared by the job queue and the API clients.

use std::time::Duration;

/// The wait before attempt `attempt + 1`: 2^(attempt-1) × base, at most 10 minutes, scaled
/// by `0.5 + random / 2` (`random` in [0, 1)) so that many waiters do not retry in lockstep.
pub fn backoff(base: Duration, attempt: u32, random: f64) -> Duration {
    let exponential = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exponential.min(Duration::from_secs(600));
    let jitter = 0.5 + random.clamp(0.0, 0.999_998) / 2.0;
    capped.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_grows_exponentially_within_its_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for attempt in 1..=5u32 {
            let full = base * (1 << (attempt - 1));
            for random in [0.0, 0.3, 0.999, 1.5] {
                let delay = backoff(base, attempt, random);
                assert!(delay >= full / 2 && delay < full, "{attempt}: {delay:?}");
            }
        }
        assert!(backoff(base, 40, 0.9) <= Duration::from_secs(600));
    }
}
