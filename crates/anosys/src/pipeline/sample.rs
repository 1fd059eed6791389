//! Sampling on the background thread: which traces reach the sinks.
//!
//! Head sampling keeps a share of traces (`ANOSYS_SAMPLE_RATE`, or
//! OpenTelemetry's `traceidratio` sampler), decided from the trace id alone
//! with OpenTelemetry's algorithm ([`keeps_trace_id`]), so every process
//! and every OpenTelemetry SDK sampling at the same rate keeps or drops the
//! same traces, whole.
//!
//! Keep rules win over the rate: a trace with an error, a record slower than
//! `ANOSYS_KEEP_SLOWER_THAN_MS`, or a total cost above
//! `ANOSYS_KEEP_COSTLIER_THAN_USD` is kept even when its trace id says
//! drop. So the records of a trace the rate would drop are held (in memory,
//! within the pipeline's bounds) until the trace's root record arrives,
//! which ends last, and the whole trace is then kept or dropped at once. A
//! trace whose root never comes here (its root is in another process) is
//! decided after [`Policy::max_wait`] on what arrived; so is everything
//! held when the pipeline flushes or shuts down. Records of a trace already
//! decided follow the decision, unless one of them breaks a keep rule
//! itself.
//!
//! Records sampled out are counted (`sampled_out`) and still measured by
//! the metrics (see `Sink::observe`).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::record::{Record, StatusCode, TraceId};

/// Whether a trace is in the share `rate` (0 to 1) that head sampling
/// keeps, exactly as OpenTelemetry's `TraceIdRatioBased` sampler decides:
/// the last 8 bytes of the trace id, as a big-endian number shifted right by
/// one, below `rate × 2⁶³`.
///
/// ```
/// use anosys::TraceId;
/// let id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
/// assert!(anosys::pipeline::keeps_trace_id(id, 1.0));
/// assert!(!anosys::pipeline::keeps_trace_id(id, 0.0));
/// // a3ce929d0e0e4736 >> 1 is 0.64 of 2^63: kept at 0.7, dropped at 0.6.
/// assert!(anosys::pipeline::keeps_trace_id(id, 0.7));
/// assert!(!anosys::pipeline::keeps_trace_id(id, 0.6));
/// ```
pub fn keeps_trace_id(trace_id: TraceId, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    let mut low = [0u8; 8];
    low.copy_from_slice(&trace_id.0[8..16]);
    let x = u64::from_be_bytes(low) >> 1;
    let bound = (rate * (1u64 << 63) as f64) as u64;
    x < bound
}

/// What decides which traces are kept.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Policy {
    /// Share of traces kept by trace id.
    pub rate: f64,
    /// Keep traces with an error.
    pub keep_errors: bool,
    /// Keep traces with a record slower than this.
    pub keep_slower_than: Option<Duration>,
    /// Keep traces costing more than this (USD, `gen_ai.usage.cost` summed).
    pub keep_costlier_than: Option<f64>,
    /// Longest a trace waits for its root before it is decided on what came.
    pub max_wait: Duration,
    /// Most traces held at once; past it the oldest is decided early.
    pub max_traces: usize,
}

impl Policy {
    /// Whether every record passes (no sampling at all).
    pub(crate) fn keeps_everything(&self) -> bool {
        self.rate >= 1.0
    }

    fn has_keep_rules(&self) -> bool {
        self.keep_errors || self.keep_slower_than.is_some() || self.keep_costlier_than.is_some()
    }

    /// The keep rule `record` breaks on its own, if any.
    fn keep_reason(&self, record: &Record) -> Option<&'static str> {
        if self.keep_errors && (record.status.code == StatusCode::Error || record.error.is_some()) {
            return Some("error");
        }
        if let Some(limit) = self.keep_slower_than
            && record.end_time.duration_since(record.start_time).is_ok_and(|d| d > limit)
        {
            return Some("slow");
        }
        None
    }
}

fn cost_of(record: &Record) -> f64 {
    record.attribute("gen_ai.usage.cost").and_then(Value::as_f64).filter(|c| c.is_finite() && *c > 0.0).unwrap_or(0.0)
}

/// A trace the rate drops, held until it is decided.
struct Held {
    records: Vec<(Record, usize)>,
    cost: f64,
    since: Instant,
}

/// What became of records offered to the sampler: kept ones go on to the
/// sinks, dropped ones are counted and let go.
#[derive(Default)]
pub(crate) struct Sorted {
    pub kept: Vec<(Record, usize)>,
    pub dropped: Vec<(Record, usize)>,
}

/// The sampler's state: traces held and recent decisions.
pub(crate) struct Sampler {
    policy: Policy,
    held: HashMap<TraceId, Held>,
    /// Held traces, oldest first (entries of traces decided since are skipped).
    order: VecDeque<(TraceId, Instant)>,
    /// Recent decisions (the keep rule that kept the trace, or `None` for
    /// dropped), for records that come after their trace's root.
    decided: HashMap<TraceId, Option<&'static str>>,
    decided_order: VecDeque<TraceId>,
}

const REMEMBERED: usize = 16_384;

impl Sampler {
    pub(crate) fn new(policy: Policy) -> Sampler {
        Sampler {
            policy,
            held: HashMap::new(),
            order: VecDeque::new(),
            decided: HashMap::new(),
            decided_order: VecDeque::new(),
        }
    }

    /// Records held, waiting for their trace to be decided.
    #[cfg(test)]
    pub(crate) fn held_records(&self) -> usize {
        self.held.values().map(|h| h.records.len()).sum()
    }

    /// Sorts one record (of `size` bytes, as the queue counted it).
    pub(crate) fn offer(&mut self, mut record: Record, size: usize, now: Instant, out: &mut Sorted) {
        if keeps_trace_id(record.trace_id, self.policy.rate) {
            if !self.policy.keeps_everything() {
                record.set_attribute("anosys.sampling.rate", self.policy.rate);
            }
            out.kept.push((record, size));
            return;
        }
        if !self.policy.has_keep_rules() {
            out.dropped.push((record, size));
            return;
        }
        let trace = record.trace_id;
        let reason = self.policy.keep_reason(&record);
        if let Some(&kept_by) = self.decided.get(&trace) {
            if let Some(reason) = reason.or(kept_by) {
                mark(&mut record, self.policy.rate, reason);
                out.kept.push((record, size));
            } else {
                out.dropped.push((record, size));
            }
            return;
        }
        let is_root = record.parent_span_id.is_none();
        let held = self.held.entry(trace).or_insert_with(|| {
            self.order.push_back((trace, now));
            Held { records: Vec::new(), cost: 0.0, since: now }
        });
        held.cost += cost_of(&record);
        held.records.push((record, size));
        let costly = self.policy.keep_costlier_than.is_some_and(|limit| held.cost > limit);
        let reason = reason.or(costly.then_some("cost"));
        if let Some(reason) = reason {
            self.decide(trace, Some(reason), out);
        } else if is_root {
            self.decide(trace, None, out);
        } else if self.held.len() > self.policy.max_traces {
            self.decide_oldest(out);
        }
    }

    /// Decides the traces that waited longer than the policy allows.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Sorted) {
        while let Some(&(trace, since)) = self.order.front() {
            let Some(held) = self.held.get(&trace) else {
                self.order.pop_front();
                continue;
            };
            if held.since != since {
                // Decided and held again since: that entry is further back.
                self.order.pop_front();
                continue;
            }
            if now.saturating_duration_since(since) < self.policy.max_wait {
                return;
            }
            self.order.pop_front();
            self.decide(trace, None, out);
        }
    }

    /// Decides every trace held (at a flush or shutdown).
    pub(crate) fn decide_all(&mut self, out: &mut Sorted) {
        let traces: Vec<TraceId> = self.order.drain(..).map(|(t, _)| t).collect();
        for trace in traces {
            self.decide(trace, None, out);
        }
    }

    fn decide_oldest(&mut self, out: &mut Sorted) {
        while let Some((trace, since)) = self.order.pop_front() {
            if self.held.get(&trace).is_some_and(|h| h.since == since) {
                self.decide(trace, None, out);
                return;
            }
        }
    }

    /// Keeps a held trace (for `reason`) or drops it, and remembers which.
    fn decide(&mut self, trace: TraceId, reason: Option<&'static str>, out: &mut Sorted) {
        let Some(held) = self.held.remove(&trace) else {
            return;
        };
        match reason {
            Some(reason) => {
                for (mut record, size) in held.records {
                    mark(&mut record, self.policy.rate, reason);
                    out.kept.push((record, size));
                }
            }
            None => out.dropped.extend(held.records),
        }
        if self.decided.insert(trace, reason).is_none() {
            self.decided_order.push_back(trace);
            if self.decided_order.len() > REMEMBERED
                && let Some(old) = self.decided_order.pop_front()
            {
                self.decided.remove(&old);
            }
        }
    }
}

/// Says on a kept record that a keep rule, not the rate, kept it.
fn mark(record: &mut Record, rate: f64, reason: &'static str) {
    record.set_attribute("anosys.sampling.rate", rate);
    record.set_attribute("anosys.sampling.kept_by", reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{RecordKind, SpanId, Status};
    use std::time::SystemTime;

    fn policy(rate: f64) -> Policy {
        Policy {
            rate,
            keep_errors: true,
            keep_slower_than: Some(Duration::from_secs(2)),
            keep_costlier_than: Some(0.5),
            max_wait: Duration::from_secs(30),
            max_traces: 4,
        }
    }

    /// A trace id the rate `0.5` drops (its low half is above 2^63 × 0.5).
    fn dropped_trace() -> TraceId {
        let mut id = [0x11u8; 16];
        id[8] = 0xf0;
        TraceId(id)
    }

    fn record(trace: TraceId, parent: Option<SpanId>) -> Record {
        let mut r = Record::new(RecordKind::LlmCall, "chat");
        r.trace_id = trace;
        r.parent_span_id = parent;
        r.start_time = SystemTime::UNIX_EPOCH;
        r.end_time = SystemTime::UNIX_EPOCH + Duration::from_millis(100);
        r
    }

    #[test]
    fn the_ratio_follows_opentelemetry() {
        // Low half 0x8000…0 >> 1 = 2^62: exactly half of 2^63.
        let mut id = [0u8; 16];
        id[8] = 0x80;
        id[15] = 1;
        assert!(!keeps_trace_id(TraceId(id), 0.5));
        assert!(keeps_trace_id(TraceId(id), 0.5000001));
        // The share kept over many random ids is about the rate.
        let kept = (0..20_000).filter(|_| keeps_trace_id(TraceId::random(), 0.25)).count();
        assert!((4_500..5_500).contains(&kept), "{kept}");
    }

    #[test]
    fn a_dropped_trace_is_held_until_its_root_and_dropped_whole() {
        let mut s = Sampler::new(policy(0.5));
        let t = dropped_trace();
        let now = Instant::now();
        let mut out = Sorted::default();
        s.offer(record(t, Some(SpanId::random())), 10, now, &mut out);
        s.offer(record(t, Some(SpanId::random())), 10, now, &mut out);
        assert_eq!((out.kept.len(), out.dropped.len(), s.held_records()), (0, 0, 2));
        s.offer(record(t, None), 10, now, &mut out);
        assert_eq!((out.kept.len(), out.dropped.len(), s.held_records()), (0, 3, 0));
        // A late child of the dropped trace is dropped too.
        s.offer(record(t, Some(SpanId::random())), 10, now, &mut out);
        assert_eq!(out.dropped.len(), 4);
    }

    #[test]
    fn an_error_anywhere_keeps_the_whole_trace() {
        let mut s = Sampler::new(policy(0.5));
        let t = dropped_trace();
        let now = Instant::now();
        let mut out = Sorted::default();
        s.offer(record(t, Some(SpanId::random())), 10, now, &mut out);
        let mut failed = record(t, Some(SpanId::random()));
        failed.status = Status::error("boom");
        s.offer(failed, 10, now, &mut out);
        assert_eq!(out.kept.len(), 2);
        // The root comes later and follows the decision.
        s.offer(record(t, None), 10, now, &mut out);
        assert_eq!(out.kept.len(), 3);
        assert!(out.kept.iter().all(|(r, _)| r.attribute("anosys.sampling.kept_by").is_some()));
    }

    #[test]
    fn slow_and_costly_traces_are_kept() {
        let mut s = Sampler::new(policy(0.5));
        let now = Instant::now();
        let mut out = Sorted::default();
        let mut slow = record(dropped_trace(), None);
        slow.end_time = slow.start_time + Duration::from_secs(3);
        s.offer(slow, 10, now, &mut out);
        assert_eq!(out.kept[0].0.attribute("anosys.sampling.kept_by"), Some(&Value::from("slow")));

        let mut t = dropped_trace();
        t.0[0] = 0x22;
        for _ in 0..2 {
            let mut child = record(t, Some(SpanId::random()));
            child.set_attribute("gen_ai.usage.cost", 0.3);
            s.offer(child, 10, now, &mut out);
        }
        // 0.6 USD in all passes 0.5: kept before the root even ends.
        assert_eq!(out.kept.len(), 3);
        assert_eq!(out.kept[2].0.attribute("anosys.sampling.kept_by"), Some(&Value::from("cost")));
    }

    #[test]
    fn kept_traces_pass_at_once_and_rootless_ones_wait_bounded() {
        let mut s = Sampler::new(policy(0.5));
        let now = Instant::now();
        let mut out = Sorted::default();
        let mut kept = [0u8; 16];
        kept[15] = 1;
        s.offer(record(TraceId(kept), Some(SpanId::random())), 10, now, &mut out);
        assert_eq!(out.kept.len(), 1);
        assert_eq!(out.kept[0].0.attribute("anosys.sampling.rate"), Some(&Value::from(0.5)));

        let t = dropped_trace();
        s.offer(record(t, Some(SpanId::random())), 10, now, &mut out);
        s.expire(now + Duration::from_secs(29), &mut out);
        assert_eq!(s.held_records(), 1);
        s.expire(now + Duration::from_secs(31), &mut out);
        assert_eq!((s.held_records(), out.dropped.len()), (0, 1));

        // Past max_traces the oldest is decided early.
        for i in 0..6u8 {
            let mut id = dropped_trace().0;
            id[0] = i;
            s.offer(record(TraceId(id), Some(SpanId::random())), 10, now, &mut out);
        }
        assert!(s.held.len() <= 4 + 1);
        s.decide_all(&mut out);
        assert_eq!((s.held_records(), out.dropped.len()), (0, 7));
    }

    #[test]
    fn without_keep_rules_dropped_traces_go_at_once() {
        let mut p = policy(0.0);
        p.keep_errors = false;
        p.keep_slower_than = None;
        p.keep_costlier_than = None;
        let mut s = Sampler::new(p);
        let mut out = Sorted::default();
        let mut failed = record(TraceId::random(), Some(SpanId::random()));
        failed.status = Status::error("boom");
        s.offer(failed, 10, Instant::now(), &mut out);
        assert_eq!((out.kept.len(), out.dropped.len(), s.held_records()), (0, 1, 0));
    }
}
