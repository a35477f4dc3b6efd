//! Phase records: when each stop-the-world pause, mark phase and sweep phase began and how long
//! it took, kept by the heap for harnesses (pause histograms, MMU) and read with
//! [`Heap::take_phase_records`](crate::Heap::take_phase_records).
//!
//! Times are offsets from the heap's creation. A pause is measured from the moment the
//! collector asks the mutators to stop, so a mutator slow to reach a safepoint shows up in it.
//! The log keeps the most recent [`MAX_RECORDS`] records; taking them empties it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Records kept before the oldest are dropped.
pub const MAX_RECORDS: usize = 1 << 16;

/// The phases of a cycle, with Go's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// STW 1: sweep termination and mark setup (a pause).
    SweepTermination,
    /// Concurrent marking (mutators running), from the end of STW 1 to the start of the STW 2
    /// that completes it.
    Mark,
    /// A mark-termination attempt that found grey objects left (a pause; marking resumed).
    MarkTerminationRetry,
    /// STW 2: mark termination (a pause).
    MarkTermination,
    /// Sweeping (mutators running), from the end of STW 2 until every span is swept.
    Sweep,
    /// A whole cycle of the stop-the-world collector (`Config::concurrent(false)`): one pause.
    StopTheWorldCycle,
    /// A stop of the stop-the-world collector given up because a mutator was in a scope that
    /// contains a [`blocking`](crate::Mutation::blocking) region (a pause; the cycle waits for
    /// that scope to end and stops again).
    StopTheWorldRetry,
}

impl Phase {
    /// Whether the world is stopped during this phase.
    pub fn is_pause(self) -> bool {
        matches!(
            self,
            Phase::SweepTermination
                | Phase::MarkTerminationRetry
                | Phase::MarkTermination
                | Phase::StopTheWorldCycle
                | Phase::StopTheWorldRetry
        )
    }
}

/// One phase of one cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseRecord {
    /// The cycle (1 for the heap's first).
    pub cycle: u64,
    /// Which phase.
    pub phase: Phase,
    /// Start, as an offset from the heap's creation.
    pub start: Duration,
    /// How long it lasted. (A sweep's end is when the collector thread notices that nothing
    /// is left to sweep, at the latest when the next cycle starts.)
    pub duration: Duration,
}

impl PhaseRecord {
    /// End, as an offset from the heap's creation.
    pub fn end(&self) -> Duration {
        self.start + self.duration
    }
}

/// The heap's log of phase records.
pub(crate) struct PhaseLog {
    origin: Instant,
    records: Mutex<VecDeque<PhaseRecord>>,
}

impl PhaseLog {
    pub(crate) fn new() -> PhaseLog {
        PhaseLog {
            origin: Instant::now(),
            records: Mutex::new(VecDeque::new()),
        }
    }

    /// Time since the heap was created.
    pub(crate) fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    /// `t` as an offset from the heap's creation.
    pub(crate) fn offset(&self, t: Instant) -> Duration {
        t.saturating_duration_since(self.origin)
    }

    /// Record `phase` of `cycle`, which began at `start` and ends now.
    pub(crate) fn record(&self, cycle: u64, phase: Phase, start: Instant) {
        self.record_span(cycle, phase, start, Instant::now());
    }

    /// Record `phase` of `cycle`, from `start` to `end`.
    pub(crate) fn record_span(&self, cycle: u64, phase: Phase, start: Instant, end: Instant) {
        self.push(PhaseRecord {
            cycle,
            phase,
            start: start.saturating_duration_since(self.origin),
            duration: end.saturating_duration_since(start),
        });
    }

    fn push(&self, rec: PhaseRecord) {
        let mut r = self.records.lock();
        if r.len() == MAX_RECORDS {
            r.pop_front();
        }
        r.push_back(rec);
    }

    pub(crate) fn take(&self) -> Vec<PhaseRecord> {
        self.records.lock().drain(..).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record holds its cycle, phase, start (an offset from the log's origin; a time before
    /// the origin counts as the origin) and length; taking the records empties the log; the
    /// pauses are exactly the phases in which the world is stopped.
    #[test]
    fn records_are_offsets_from_the_origin_and_taking_them_empties_the_log() {
        let log = PhaseLog::new();
        let ms = Duration::from_millis;
        let (start, end) = (log.origin + ms(30), log.origin + ms(42));
        log.record_span(7, Phase::MarkTermination, start, end);
        assert_eq!(log.offset(end), ms(42));
        let before = log.origin.checked_sub(ms(5)).unwrap();
        assert_eq!(log.offset(before), Duration::ZERO);
        log.record_span(8, Phase::Sweep, before, end);
        let early = log.elapsed();
        log.record(9, Phase::Mark, Instant::now());
        let late = log.elapsed();
        let r = log.take();
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].cycle, r[0].phase), (7, Phase::MarkTermination));
        assert_eq!(
            (r[0].start, r[0].duration, r[0].end()),
            (ms(30), ms(12), ms(42))
        );
        assert_eq!(
            (r[1].cycle, r[1].start, r[1].duration),
            (8, Duration::ZERO, ms(47))
        );
        assert_eq!((r[2].cycle, r[2].phase), (9, Phase::Mark));
        assert!(
            early <= r[2].start && r[2].end() <= late,
            "{early:?} {r:?} {late:?}"
        );
        assert!(log.take().is_empty());
        let pauses: Vec<Phase> = [
            Phase::SweepTermination,
            Phase::Mark,
            Phase::MarkTerminationRetry,
            Phase::MarkTermination,
            Phase::Sweep,
            Phase::StopTheWorldCycle,
            Phase::StopTheWorldRetry,
        ]
        .into_iter()
        .filter(|p| p.is_pause())
        .collect();
        assert_eq!(pauses.len(), 5);
        assert!(!pauses.contains(&Phase::Mark) && !pauses.contains(&Phase::Sweep));
    }

    /// The log keeps the newest records: past its capacity, the oldest go.
    #[test]
    #[cfg_attr(miri, ignore = "65 546 records")]
    fn the_phase_log_drops_its_oldest_records() {
        let log = PhaseLog::new();
        let t = Instant::now();
        let n = MAX_RECORDS as u64;
        for cycle in 1..=n + 10 {
            log.record(cycle, Phase::Mark, t);
        }
        let kept = log.take();
        assert_eq!(kept.len(), MAX_RECORDS);
        assert_eq!(kept.first().unwrap().cycle, 11);
        assert_eq!(kept.last().unwrap().cycle, n + 10);
    }
}
