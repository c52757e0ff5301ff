//! Condition bookkeeping: one entry per type, `lastTransitionTime` moves only on a status change.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// A condition as a reconcile decides it, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    /// Condition type.
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// PascalCase reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

impl Desired {
    fn new(type_: &str, status: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            type_: type_.to_string(),
            status,
            reason: reason.to_string(),
            message: message.into(),
        }
    }

    /// A condition with status True.
    pub fn yes(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, "True", reason, message)
    }

    /// A condition with status False.
    pub fn no(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, "False", reason, message)
    }

    /// A condition whose state is not known yet.
    pub fn unknown(type_: &str, reason: &str, message: impl Into<String>) -> Self {
        Self::new(type_, "Unknown", reason, message)
    }

    /// The same decision an existing condition records.
    pub fn from_condition(c: &Condition) -> Self {
        let status = match c.status.as_str() {
            "True" => "True",
            "False" => "False",
            _ => "Unknown",
        };
        Self {
            type_: c.type_.clone(),
            status,
            reason: c.reason.clone(),
            message: c.message.clone(),
        }
    }

    /// Whether the status is True.
    pub fn is_true(&self) -> bool {
        self.status == "True"
    }
}

/// Merges `desired` into `current`, keeping `lastTransitionTime` where the status did not change.
///
/// The result holds exactly one condition per type, in the order of `desired`.
pub fn merge(
    current: &[Condition],
    desired: &[Desired],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|d| {
            let status = d.status;
            let last_transition_time = current
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: d.type_.clone(),
                status: status.to_string(),
                reason: d.reason.clone(),
                message: d.message.clone(),
                observed_generation: generation,
                last_transition_time,
            }
        })
        .collect()
}

/// Status of a condition type, if present.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid timestamp"))
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let first = merge(
            &[],
            &[Desired::no("Ready", "Progressing", "starting")],
            Some(1),
            &at(100),
        );
        assert_eq!(first[0].last_transition_time, at(100));

        let same = merge(
            &first,
            &[Desired::no("Ready", "PartsNotReady", "still starting")],
            Some(2),
            &at(200),
        );
        assert_eq!(
            same[0].last_transition_time,
            at(100),
            "same status keeps its time"
        );
        assert_eq!(same[0].reason, "PartsNotReady");
        assert_eq!(same[0].observed_generation, Some(2));

        let flipped = merge(
            &same,
            &[Desired::yes("Ready", "Reconciled", "done")],
            Some(2),
            &at(300),
        );
        assert_eq!(flipped[0].last_transition_time, at(300));
        assert_eq!(flipped[0].status, "True");
    }

    #[test]
    fn one_condition_per_type_and_stale_types_dropped() {
        let current = merge(
            &[],
            &[Desired::yes("A", "R", ""), Desired::yes("B", "R", "")],
            None,
            &at(1),
        );
        let next = merge(&current, &[Desired::no("A", "R", "")], None, &at(2));
        assert_eq!(next.len(), 1);
        assert!(!is_true(&next, "A"));
        assert!(!is_true(&next, "B"));
    }
}
