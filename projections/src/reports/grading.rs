//! Grade arithmetic of the gradebook: pure functions over [`Decimal`] that turn
//! the scores a tool has sent (LTI Assignment and Grade Services results) into a
//! student's course grade under a [`GradingPolicy`]. Nothing here does IO, reads
//! a clock or touches a float; the same inputs always give the same grade.
//!
//! # Grade rules
//!
//! * **Scaling.** A tool scores on its own scale, so a score is rescaled onto the
//!   line item: `points = score_given / score_maximum × item.maximum`. Points are
//!   never rounded here (28 significant digits are plenty); a `score_maximum` of
//!   0 gives 0 points.
//! * **Item state.** No score → `Missing`. A completion-only item is `Counted`
//!   only when the activity is `Completed` *and* grading is `FullyGraded`;
//!   `PendingManual` grading → `PendingManual`; anything else → `Provisional`.
//!   Any other item: `FullyGraded` → `Counted`, `PendingManual` →
//!   `PendingManual`, anything else → `Provisional`.
//! * **Included items.** Counted items are included with their points. Under
//!   [`MissingPolicy::Zero`] every item that is not counted (missing,
//!   provisional or pending manual) is also included, as 0 out of its maximum;
//!   its reported state is unchanged and it is still not `counted`.
//! * **Points scheme.** `percent = Σ earned / Σ possible × 100` over included
//!   items; none when nothing possible.
//! * **Weighted scheme.** Included items fall into buckets: an item with its own
//!   weight is a bucket of that weight; otherwise it joins its category's bucket
//!   (weight from the scheme). An item with neither is, if it is a course total,
//!   a bucket of weight 100, and otherwise in no bucket: it is still listed and
//!   still adds to the point totals, but never moves the percent. A bucket's
//!   percent is its earned / possible × 100; the course percent is
//!   `Σ(bucket% × weight) / Σ weight` over buckets with an included item, a
//!   positive weight and something possible, so the weights are renormalised
//!   over what has been graded. No such bucket → no percent.
//! * **Point totals.** `points_earned` / `points_possible` are the sums over
//!   included items in both schemes, for display, and are not rounded.
//! * **Rounding.** [`round_percent`] is the one rounding rule: 2 decimal places,
//!   half away from zero. The reported percent is rounded with it, and the
//!   letter is read from the rounded percent: the scale entry with the highest
//!   `min_percent` not above it, whatever the order of the scale.
//! * **Status.** `Final` when there is at least one item and every item is
//!   counted; otherwise `Provisional`.
//! * **Overflow.** Every sum, product and ratio is checked; none saturates,
//!   wraps or panics. A decimal holds about ±7.9 × 10^28, which the input
//!   bounds (weights up to 1000, maxima up to 10^9, scores up to 10^12) keep
//!   sums far from, but a ratio of a large score to a tiny `score_maximum`,
//!   or a log written before the bounds, can leave that range. An item whose
//!   points do not fit has no `score` and is marked `overflow`. When anything
//!   the grade needs does not fit (an included item's points, a point total,
//!   a bucket's or the course's percent, the weighted sum), the grade is *not
//!   computable*: no points, percent or letter, and
//!   [`StudentGrade::not_computable`] says which number it was. Its items and
//!   status are still reported.
//! * Items in the result keep the input order; scores for line items that are
//!   not in the item list are ignored. A course-total item in the points scheme
//!   is just another item.

use std::collections::{BTreeMap, HashMap};

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

// The policy shapes and progress values are the domain's own; the arithmetic
// only reads them.
pub use gradebook_domain::policy::{Category, GradingPolicy, MissingPolicy, ScaleEntry, Scheme};
pub use gradebook_domain::score::{ActivityProgress, GradingProgress};

/// A line item as the gradebook knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemSpec {
    pub line_item_id: String,
    pub label: String,
    pub maximum: Decimal,
    #[serde(default)]
    pub category: Option<String>,
    /// An own weight makes the item a weighted bucket of its own.
    #[serde(default)]
    pub weight: Option<Decimal>,
    /// The tool's own course total (e.g. Moodle's), not a regular assignment.
    #[serde(default)]
    pub course_total: bool,
    /// Counts only once the activity is completed and fully graded.
    #[serde(default)]
    pub completion_only: bool,
}

/// The latest score a tool has sent for one student and line item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellScore {
    pub score_given: Decimal,
    pub score_maximum: Decimal,
    pub activity_progress: ActivityProgress,
    pub grading_progress: GradingProgress,
}

/// Whether an item's score counts toward the grade.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Counted,
    Provisional,
    PendingManual,
    Missing,
}

/// Whether a grade can still change without a new score being counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GradeStatus {
    Final,
    Provisional,
}

/// One item of a student's grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemResult {
    pub line_item_id: String,
    pub label: String,
    /// Points on the item's own maximum, unrounded; present whenever a score
    /// exists, counted or not, and its points fit a decimal.
    pub score: Option<Decimal>,
    pub maximum: Decimal,
    pub state: ItemState,
    pub counted: bool,
    /// A score exists but its points do not fit a decimal, so `score` is none.
    #[serde(default)]
    pub overflow: bool,
}

/// The number of a grade that did not fit a decimal (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The points of the included item with this id.
    ItemPoints(String),
    /// The sum of earned or of possible points.
    PointTotals,
    /// A points ratio (a bucket's or the course's percent) or the weighted
    /// sum of the percents.
    Percent,
}

impl Overflow {
    /// What did not fit, in a registrar's words.
    pub fn message(&self) -> String {
        let what = match self {
            Overflow::ItemPoints(id) => {
                format!("the points of {id} (scoreGiven / scoreMaximum × the item's maximum)")
            }
            Overflow::PointTotals => "the sum of the earned or possible points".into(),
            Overflow::Percent => "the percent (a points ratio or the weighted average)".into(),
        };
        format!(
            "no grade can be computed: {what} is beyond the 28 digits a decimal holds; check the item maxima, weights and scores"
        )
    }
}

/// A student's course grade.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StudentGrade {
    /// Unrounded; callers format it. None when not computable.
    pub points_earned: Option<Decimal>,
    /// Unrounded; callers format it. None when not computable.
    pub points_possible: Option<Decimal>,
    /// Already rounded with [`round_percent`].
    pub percent: Option<Decimal>,
    pub letter: Option<String>,
    pub status: GradeStatus,
    pub items: Vec<ItemResult>,
    /// Why the grade has no numbers, when something it needs did not fit a
    /// decimal; none for a computable grade.
    pub not_computable: Option<Overflow>,
}

const HUNDRED: Decimal = Decimal::ONE_HUNDRED;

/// Rescales a tool's score onto a line item's maximum.
///
/// Returns 0 when `score_maximum` is 0, and none when the points do not fit
/// a decimal.
pub fn scale_points(
    score_given: Decimal,
    score_maximum: Decimal,
    item_maximum: Decimal,
) -> Option<Decimal> {
    if score_maximum.is_zero() {
        return Some(Decimal::ZERO);
    }
    // Same scale: no arithmetic, so no rounding can creep in.
    if score_maximum == item_maximum {
        return Some(score_given);
    }
    mul_div(score_given, item_maximum, score_maximum)
}

/// Classifies an item's score under the item-state rule of the module doc.
pub fn item_state(item: &ItemSpec, score: Option<&CellScore>) -> ItemState {
    let Some(score) = score else {
        return ItemState::Missing;
    };
    match score.grading_progress {
        GradingProgress::PendingManual => ItemState::PendingManual,
        GradingProgress::FullyGraded
            if !item.completion_only || score.activity_progress == ActivityProgress::Completed =>
        {
            ItemState::Counted
        }
        _ => ItemState::Provisional,
    }
}

/// One item's line of a grade: its state and its points on its own maximum.
pub fn item_result(item: &ItemSpec, score: Option<&CellScore>) -> ItemResult {
    let state = item_state(item, score);
    let points = score.map(|s| scale_points(s.score_given, s.score_maximum, item.maximum));
    ItemResult {
        line_item_id: item.line_item_id.clone(),
        label: item.label.clone(),
        score: points.flatten(),
        maximum: item.maximum,
        state,
        counted: state == ItemState::Counted,
        overflow: matches!(points, Some(None)),
    }
}

/// The one rounding rule for percents: 2 decimal places, half away from zero.
pub fn round_percent(p: Decimal) -> Decimal {
    p.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

/// Unrounded `earned / possible × 100`: `Ok(None)` when nothing is
/// possible, an error when the ratio does not fit a decimal.
pub fn percent_of(earned: Decimal, possible: Decimal) -> Result<Option<Decimal>, Overflow> {
    if possible.is_zero() {
        Ok(None)
    } else {
        mul_div(earned, HUNDRED, possible)
            .map(Some)
            .ok_or(Overflow::Percent)
    }
}

/// The letter of the scale entry with the highest `min_percent` not above
/// `percent` (pass the rounded percent). The scale's order does not matter.
pub fn letter_for(percent: Decimal, scale: &[ScaleEntry]) -> Option<String> {
    scale
        .iter()
        .filter(|entry| entry.min_percent <= percent)
        // Equal cut-offs are broken by letter so the input order never shows.
        .max_by(|a, b| {
            a.min_percent
                .cmp(&b.min_percent)
                .then_with(|| b.letter.cmp(&a.letter))
        })
        .map(|entry| entry.letter.clone())
}

/// A student's course grade from the policy, the course's items and the
/// student's scores keyed by line item id.
pub fn student_grade(
    policy: &GradingPolicy,
    items: &[ItemSpec],
    scores: &HashMap<String, CellScore>,
) -> StudentGrade {
    let results: Vec<ItemResult> = items
        .iter()
        .map(|item| item_result(item, scores.get(&item.line_item_id)))
        .collect();
    let status = if !results.is_empty() && results.iter().all(|r| r.counted) {
        GradeStatus::Final
    } else {
        GradeStatus::Provisional
    };
    match numbers(policy, items, &results) {
        Ok((total, percent)) => {
            let percent = percent.map(round_percent);
            StudentGrade {
                points_earned: Some(total.earned),
                points_possible: Some(total.possible),
                percent,
                letter: percent.and_then(|p| letter_for(p, &policy.scale)),
                status,
                items: results,
                not_computable: None,
            }
        }
        Err(overflow) => StudentGrade {
            points_earned: None,
            points_possible: None,
            percent: None,
            letter: None,
            status,
            items: results,
            not_computable: Some(overflow),
        },
    }
}

/// The point totals and the unrounded percent of a grade, or the first
/// number (in line item id order) that does not fit a decimal.
fn numbers(
    policy: &GradingPolicy,
    items: &[ItemSpec],
    results: &[ItemResult],
) -> Result<(Tally, Option<Decimal>), Overflow> {
    // Decimal addition rounds past 28 digits, so sums are taken in line item
    // id order to keep the grade independent of the order of `items`.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| items[a].line_item_id.cmp(&items[b].line_item_id));

    let mut total = Tally::default();
    let mut buckets: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
    for &i in &order {
        let result = &results[i];
        let Some(earned) = included_points(policy.missing, result) else {
            continue;
        };
        let earned = earned?;
        total.add(earned, result.maximum)?;
        if let Scheme::Weighted { categories } = &policy.scheme {
            if let Some((key, weight)) = bucket_of(&items[i], categories) {
                buckets
                    .entry(key)
                    .or_insert(Bucket {
                        weight,
                        tally: Tally::default(),
                    })
                    .tally
                    .add(earned, result.maximum)?;
            }
        }
    }

    let percent = match policy.scheme {
        Scheme::Points => percent_of(total.earned, total.possible)?,
        Scheme::Weighted { .. } => weighted_percent(buckets.values())?,
    };
    Ok((total, percent))
}

/// Points an item adds to the grade, or none when it is left out; an error
/// when it is included but its points do not fit a decimal.
fn included_points(
    missing: MissingPolicy,
    result: &ItemResult,
) -> Option<Result<Decimal, Overflow>> {
    if result.counted {
        // A counted item has a score, so no points means they overflowed.
        Some(
            result
                .score
                .ok_or_else(|| Overflow::ItemPoints(result.line_item_id.clone())),
        )
    } else {
        match missing {
            MissingPolicy::Zero => Some(Ok(Decimal::ZERO)),
            MissingPolicy::Exclude => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    earned: Decimal,
    possible: Decimal,
}

impl Tally {
    fn add(&mut self, earned: Decimal, possible: Decimal) -> Result<(), Overflow> {
        self.earned = self
            .earned
            .checked_add(earned)
            .ok_or(Overflow::PointTotals)?;
        self.possible = self
            .possible
            .checked_add(possible)
            .ok_or(Overflow::PointTotals)?;
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum BucketKey {
    Category(String),
    Item(String),
}

#[derive(Debug, Clone)]
struct Bucket {
    weight: Decimal,
    tally: Tally,
}

/// The weighted bucket an item belongs to, if any, with its weight.
fn bucket_of(item: &ItemSpec, categories: &[Category]) -> Option<(BucketKey, Decimal)> {
    if let Some(weight) = item.weight {
        return Some((BucketKey::Item(item.line_item_id.clone()), weight));
    }
    let category = item
        .category
        .as_deref()
        .and_then(|name| categories.iter().find(|c| c.name == name));
    match category {
        Some(c) => Some((BucketKey::Category(c.name.clone()), c.weight)),
        // A tool's course total with nowhere to go is the whole grade.
        None if item.course_total => Some((BucketKey::Item(item.line_item_id.clone()), HUNDRED)),
        None => None,
    }
}

/// `Σ(bucket% × weight) / Σ weight` over the buckets that can contribute.
fn weighted_percent<'a>(
    buckets: impl Iterator<Item = &'a Bucket>,
) -> Result<Option<Decimal>, Overflow> {
    let mut contributing: Vec<(Decimal, Decimal)> = Vec::new();
    for b in buckets.filter(|b| b.weight > Decimal::ZERO) {
        if let Some(percent) = percent_of(b.tally.earned, b.tally.possible)? {
            contributing.push((percent, b.weight));
        }
    }
    match contributing.as_slice() {
        [] => Ok(None),
        // Renormalising a single bucket is the identity; skipping the
        // multiply and divide keeps it exactly equal to the points scheme.
        [(percent, _)] => Ok(Some(*percent)),
        many => {
            // Weights all below 1 are shifted up by a power of ten, which
            // is exact and leaves the average alone, so that a product with
            // a weight near 10^-28 keeps its digits.
            let largest = many.iter().map(|(_, w)| *w).max().unwrap_or(Decimal::ONE);
            let mut shift = Decimal::ONE;
            while largest * shift < Decimal::ONE {
                shift *= Decimal::TEN;
            }
            let mut weighted = Decimal::ZERO;
            let mut weights = Decimal::ZERO;
            for (percent, weight) in many {
                let weight = weight.checked_mul(shift).ok_or(Overflow::Percent)?;
                weighted = percent
                    .checked_mul(weight)
                    .and_then(|p| weighted.checked_add(p))
                    .ok_or(Overflow::Percent)?;
                weights = weights.checked_add(weight).ok_or(Overflow::Percent)?;
            }
            // Positive weights never sum to 0.
            weighted
                .checked_div(weights)
                .map(Some)
                .ok_or(Overflow::Percent)
        }
    }
}

/// `a × b / c`, or none when the result does not fit a decimal or `c` is 0.
/// Multiplies first for exactness; when only the product is too large, the
/// larger factor is divided first (the smaller one would lose its digits).
fn mul_div(a: Decimal, b: Decimal, c: Decimal) -> Option<Decimal> {
    if c.is_zero() {
        return None;
    }
    if a.is_zero() || b.is_zero() {
        return Some(Decimal::ZERO);
    }
    match a.checked_mul(b) {
        Some(product) => product.checked_div(c),
        None => {
            let (large, small) = if a.abs() >= b.abs() { (a, b) } else { (b, a) };
            large.checked_div(c)?.checked_mul(small)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal_macros::dec;
    use serde::de::value::{Error as DeError, MapDeserializer};
    use serde::de::{DeserializeOwned, IntoDeserializer};

    // ---- builders ----------------------------------------------------------

    fn item(id: &str, maximum: Decimal) -> ItemSpec {
        ItemSpec {
            line_item_id: id.to_string(),
            label: id.replace('-', " "),
            maximum,
            category: None,
            weight: None,
            course_total: false,
            completion_only: false,
        }
    }

    fn in_category(id: &str, maximum: Decimal, category: &str) -> ItemSpec {
        ItemSpec {
            category: Some(category.to_string()),
            ..item(id, maximum)
        }
    }

    fn cell(
        given: Decimal,
        maximum: Decimal,
        activity: ActivityProgress,
        grading: GradingProgress,
    ) -> CellScore {
        CellScore {
            score_given: given,
            score_maximum: maximum,
            activity_progress: activity,
            grading_progress: grading,
        }
    }

    fn graded(given: Decimal, maximum: Decimal) -> CellScore {
        cell(
            given,
            maximum,
            ActivityProgress::Completed,
            GradingProgress::FullyGraded,
        )
    }

    fn scores(cells: &[(&str, CellScore)]) -> HashMap<String, CellScore> {
        cells
            .iter()
            .map(|(id, c)| (id.to_string(), c.clone()))
            .collect()
    }

    fn weighted(categories: &[(&str, Decimal)]) -> Scheme {
        Scheme::Weighted {
            categories: categories
                .iter()
                .map(|(name, weight)| Category {
                    name: name.to_string(),
                    weight: *weight,
                })
                .collect(),
        }
    }

    fn standard_scale() -> Vec<ScaleEntry> {
        [
            ("A", dec!(93)),
            ("A-", dec!(90)),
            ("B+", dec!(87)),
            ("B", dec!(83)),
            ("B-", dec!(80)),
            ("C+", dec!(77)),
            ("C", dec!(73)),
            ("C-", dec!(70)),
            ("D", dec!(60)),
            ("F", dec!(0)),
        ]
        .iter()
        .map(|(letter, min)| ScaleEntry {
            letter: letter.to_string(),
            min_percent: *min,
        })
        .collect()
    }

    fn points_policy() -> GradingPolicy {
        GradingPolicy {
            scale: standard_scale(),
            ..GradingPolicy::default()
        }
    }

    /// HIST 101 syllabus: Exams 50% (midterm 100, final 100), Homework 30%
    /// (five sets of 10), Participation 20% (one item of 20).
    fn hist101_policy() -> GradingPolicy {
        GradingPolicy {
            scheme: weighted(&[
                ("Exams", dec!(50)),
                ("Homework", dec!(30)),
                ("Participation", dec!(20)),
            ]),
            scale: standard_scale(),
            missing: MissingPolicy::Exclude,
        }
    }

    fn hist101_items() -> Vec<ItemSpec> {
        let mut items = vec![
            in_category("midterm", dec!(100), "Exams"),
            in_category("final", dec!(100), "Exams"),
        ];
        for n in 1..=5 {
            items.push(in_category(&format!("hw-{n}"), dec!(10), "Homework"));
        }
        items.push(in_category("participation", dec!(20), "Participation"));
        items
    }

    fn state_of(grade: &StudentGrade, id: &str) -> ItemState {
        grade
            .items
            .iter()
            .find(|r| r.line_item_id == id)
            .map(|r| r.state)
            .unwrap()
    }

    fn from_name<T: DeserializeOwned>(name: &str) -> T {
        T::deserialize(IntoDeserializer::<DeError>::into_deserializer(name)).unwrap()
    }

    // ---- worked examples ---------------------------------------------------

    #[test]
    fn a_hist101_student_with_every_item_graded_gets_the_weighted_average() {
        // Exams 84 + 91 = 175/200 = 87.5%; Homework 9+10+8+7+10 = 44/50 = 88%;
        // Participation 18/20 = 90%.
        // (87.5×50 + 88×30 + 90×20) / 100 = (4375 + 2640 + 1800) / 100 = 88.15
        let grade = student_grade(
            &hist101_policy(),
            &hist101_items(),
            &scores(&[
                ("midterm", graded(dec!(84), dec!(100))),
                ("final", graded(dec!(91), dec!(100))),
                ("hw-1", graded(dec!(9), dec!(10))),
                ("hw-2", graded(dec!(10), dec!(10))),
                ("hw-3", graded(dec!(8), dec!(10))),
                ("hw-4", graded(dec!(7), dec!(10))),
                ("hw-5", graded(dec!(10), dec!(10))),
                ("participation", graded(dec!(18), dec!(20))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(88.15)));
        assert_eq!(grade.letter.as_deref(), Some("B+"));
        assert_eq!(grade.status, GradeStatus::Final);
        // 175 + 44 + 18 = 237 of 270, shown but not what the percent is made of.
        assert_eq!(grade.points_earned, Some(dec!(237)));
        assert_eq!(grade.points_possible, Some(dec!(270)));
    }

    #[test]
    fn a_hist101_student_with_missing_items_is_graded_on_what_is_counted() {
        // Final, hw-4 and hw-5 missing.
        // Exams 78/100 = 78%; Homework 10+9+8 = 27/30 = 90%; Participation 20/20.
        // (78×50 + 90×30 + 100×20) / 100 = (3900 + 2700 + 2000) / 100 = 86.00
        let grade = student_grade(
            &hist101_policy(),
            &hist101_items(),
            &scores(&[
                ("midterm", graded(dec!(78), dec!(100))),
                ("hw-1", graded(dec!(10), dec!(10))),
                ("hw-2", graded(dec!(9), dec!(10))),
                ("hw-3", graded(dec!(8), dec!(10))),
                ("participation", graded(dec!(20), dec!(20))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(86.00)));
        assert_eq!(grade.letter.as_deref(), Some("B"));
        assert_eq!(grade.status, GradeStatus::Provisional);
        assert_eq!(grade.points_earned, Some(dec!(125)));
        assert_eq!(grade.points_possible, Some(dec!(150)));
        assert_eq!(state_of(&grade, "final"), ItemState::Missing);
        let final_exam = &grade.items[1];
        assert_eq!(final_exam.score, None);
        assert!(!final_exam.counted);
    }

    #[test]
    fn a_missing_zero_policy_counts_every_uncounted_item_as_zero() {
        // Same student as above, missing = zero.
        // Exams 78/200 = 39%; Homework 27/50 = 54%; Participation 20/20 = 100%.
        // (39×50 + 54×30 + 100×20) / 100 = (1950 + 1620 + 2000) / 100 = 55.70
        let policy = GradingPolicy {
            missing: MissingPolicy::Zero,
            ..hist101_policy()
        };
        let grade = student_grade(
            &policy,
            &hist101_items(),
            &scores(&[
                ("midterm", graded(dec!(78), dec!(100))),
                ("hw-1", graded(dec!(10), dec!(10))),
                ("hw-2", graded(dec!(9), dec!(10))),
                ("hw-3", graded(dec!(8), dec!(10))),
                ("participation", graded(dec!(20), dec!(20))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(55.70)));
        assert_eq!(grade.letter.as_deref(), Some("F"));
        assert_eq!(grade.points_earned, Some(dec!(125)));
        assert_eq!(grade.points_possible, Some(dec!(270)));
        // Zeroed items keep their real state and are not marked counted.
        assert_eq!(state_of(&grade, "hw-4"), ItemState::Missing);
        assert!(!grade.items[5].counted);
    }

    #[test]
    fn a_missing_zero_policy_zeroes_provisional_and_pending_scores_too() {
        // Quiz 8/10 counted, essay 9/10 pending manual, lab 10/10 still pending.
        // Zero policy: 8 / (10 + 10 + 10) = 26.666…% → 26.67
        let items = [
            item("quiz", dec!(10)),
            item("essay", dec!(10)),
            item("lab", dec!(10)),
        ];
        let policy = GradingPolicy {
            missing: MissingPolicy::Zero,
            ..points_policy()
        };
        let grade = student_grade(
            &policy,
            &items,
            &scores(&[
                ("quiz", graded(dec!(8), dec!(10))),
                (
                    "essay",
                    cell(
                        dec!(9),
                        dec!(10),
                        ActivityProgress::Submitted,
                        GradingProgress::PendingManual,
                    ),
                ),
                (
                    "lab",
                    cell(
                        dec!(10),
                        dec!(10),
                        ActivityProgress::Completed,
                        GradingProgress::Pending,
                    ),
                ),
            ]),
        );
        assert_eq!(grade.points_earned, Some(dec!(8)));
        assert_eq!(grade.points_possible, Some(dec!(30)));
        assert_eq!(grade.percent, Some(dec!(26.67)));
        assert_eq!(grade.items[1].state, ItemState::PendingManual);
        assert_eq!(grade.items[1].score, Some(dec!(9)));
        assert_eq!(grade.items[2].state, ItemState::Provisional);
    }

    #[test]
    fn weights_are_renormalised_when_a_category_has_nothing_counted() {
        // Midterm 80/100 (Exams 80%, weight 50), hw-1 and hw-2 10/10
        // (Homework 100%, weight 30), participation missing (weight 20 dropped).
        // (80×50 + 100×30) / (50 + 30) = (4000 + 3000) / 80 = 87.50
        let grade = student_grade(
            &hist101_policy(),
            &hist101_items(),
            &scores(&[
                ("midterm", graded(dec!(80), dec!(100))),
                ("hw-1", graded(dec!(10), dec!(10))),
                ("hw-2", graded(dec!(10), dec!(10))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(87.50)));
        assert_eq!(grade.letter.as_deref(), Some("B+"));
        assert_eq!(grade.status, GradeStatus::Provisional);
    }

    #[test]
    fn an_item_with_its_own_weight_is_a_bucket_of_its_own() {
        // Exams 50: midterm 70/100 = 70%; project (own weight 25): 45/50 = 90%;
        // Homework category has nothing counted.
        // (70×50 + 90×25) / 75 = (3500 + 2250) / 75 = 76.666… → 76.67
        let mut items = hist101_items();
        items.push(ItemSpec {
            weight: Some(dec!(25)),
            ..in_category("project", dec!(50), "Homework")
        });
        let grade = student_grade(
            &hist101_policy(),
            &items,
            &scores(&[
                ("midterm", graded(dec!(70), dec!(100))),
                ("project", graded(dec!(45), dec!(50))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(76.67)));
    }

    #[test]
    fn an_uncategorised_item_shows_in_points_but_not_in_the_weighted_percent() {
        // Midterm 90/100 → Exams 90%, the only bucket → 90.00.
        // "extra-credit" 5/5 is in no category: listed and in the point totals.
        let mut items = hist101_items();
        items.push(item("extra-credit", dec!(5)));
        let grade = student_grade(
            &hist101_policy(),
            &items,
            &scores(&[
                ("midterm", graded(dec!(90), dec!(100))),
                ("extra-credit", graded(dec!(5), dec!(5))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(90.00)));
        assert_eq!(grade.points_earned, Some(dec!(95)));
        assert_eq!(grade.points_possible, Some(dec!(105)));
        assert_eq!(grade.items.last().unwrap().state, ItemState::Counted);
    }

    #[test]
    fn a_category_with_zero_weight_does_not_move_the_percent() {
        // Exams 0 weight, Homework 100: hw-1 8/10 → 80.00 whatever the midterm.
        let policy = GradingPolicy {
            scheme: weighted(&[("Exams", dec!(0)), ("Homework", dec!(100))]),
            ..points_policy()
        };
        let grade = student_grade(
            &policy,
            &hist101_items(),
            &scores(&[
                ("midterm", graded(dec!(20), dec!(100))),
                ("hw-1", graded(dec!(8), dec!(10))),
            ]),
        );
        assert_eq!(grade.percent, Some(dec!(80.00)));
    }

    #[test]
    fn a_points_scheme_course_divides_total_earned_by_total_possible() {
        // CHEM 110 lab: lab 1 is 25 pts but the tool scores out of 10 (8/10 →
        // 20 pts); lab 2 23/25; quiz 33/40.
        // (20 + 23 + 33) / (25 + 25 + 40) = 76 / 90 = 84.444… → 84.44
        let items = [
            item("lab-1", dec!(25)),
            item("lab-2", dec!(25)),
            item("quiz", dec!(40)),
        ];
        let grade = student_grade(
            &points_policy(),
            &items,
            &scores(&[
                ("lab-1", graded(dec!(8), dec!(10))),
                ("lab-2", graded(dec!(23), dec!(25))),
                ("quiz", graded(dec!(33), dec!(40))),
            ]),
        );
        assert_eq!(grade.items[0].score, Some(dec!(20)));
        assert_eq!(grade.points_earned, Some(dec!(76)));
        assert_eq!(grade.points_possible, Some(dec!(90)));
        assert_eq!(grade.percent, Some(dec!(84.44)));
        assert_eq!(grade.letter.as_deref(), Some("B"));
        assert_eq!(grade.status, GradeStatus::Final);
    }

    #[test]
    fn a_moodle_course_total_scored_87_of_100_as_the_only_item_is_87_percent() {
        // 87 / 100 × 100 = 87.00 in either scheme; in the weighted scheme the
        // uncategorised course total is a bucket of weight 100.
        let items = [ItemSpec {
            course_total: true,
            ..item("moodle-course-total", dec!(100))
        }];
        let cells = scores(&[("moodle-course-total", graded(dec!(87), dec!(100)))]);
        let by_points = student_grade(&points_policy(), &items, &cells);
        let by_weight = student_grade(&hist101_policy(), &items, &cells);
        for grade in [by_points, by_weight] {
            assert_eq!(grade.percent, Some(dec!(87.00)));
            assert_eq!(grade.letter.as_deref(), Some("B+"));
            assert_eq!(grade.status, GradeStatus::Final);
        }
    }

    #[test]
    fn a_score_of_36_out_of_40_on_a_50_point_item_is_45_points() {
        // 36 / 40 × 50 = 45
        assert_eq!(scale_points(dec!(36), dec!(40), dec!(50)), Some(dec!(45)));
        let grade = student_grade(
            &points_policy(),
            &[item("essay", dec!(50))],
            &scores(&[("essay", graded(dec!(36), dec!(40)))]),
        );
        assert_eq!(grade.items[0].score, Some(dec!(45)));
        assert_eq!(grade.percent, Some(dec!(90.00)));
    }

    #[test]
    fn scaling_keeps_thirds_unrounded_and_a_zero_maximum_gives_zero_points() {
        // 1/3 of 10 pts is 3.333… to 28 digits, not 3.33.
        let third = scale_points(dec!(1), dec!(3), dec!(10)).unwrap();
        assert!(third > dec!(3.3333333333) && third < dec!(3.3333333334));
        assert_eq!(
            scale_points(dec!(5), dec!(0), dec!(10)),
            Some(Decimal::ZERO)
        );
    }

    #[test]
    fn scaling_that_does_not_fit_a_decimal_gives_no_points_not_a_saturated_number() {
        assert_eq!(scale_points(Decimal::MAX, dec!(0.0001), Decimal::MAX), None);
        assert_eq!(scale_points(Decimal::MIN, dec!(0.5), Decimal::MAX), None);
        assert_eq!(
            scale_points(
                dec!(1000000000000),
                dec!(0.0000000000000000000000000001),
                dec!(1000000000)
            ),
            None
        );
        // Only the product is too large: the larger factor is divided first.
        assert_eq!(
            scale_points(Decimal::MAX, Decimal::MAX, dec!(2)),
            Some(dec!(2))
        );
        assert_eq!(
            scale_points(dec!(3), dec!(4), Decimal::MAX),
            Some(Decimal::MAX / dec!(4) * dec!(3))
        );
    }

    #[test]
    fn a_counted_item_whose_points_do_not_fit_makes_the_grade_not_computable() {
        let items = [item("quiz", dec!(1000000000)), item("essay", dec!(10))];
        let grade = student_grade(
            &points_policy(),
            &items,
            &scores(&[
                (
                    "quiz",
                    graded(dec!(1000000000000), dec!(0.0000000000000000000000000001)),
                ),
                ("essay", graded(dec!(5), dec!(10))),
            ]),
        );
        assert_eq!(
            grade.not_computable,
            Some(Overflow::ItemPoints("quiz".into()))
        );
        assert_eq!(
            (grade.points_earned, grade.points_possible, grade.percent),
            (None, None, None)
        );
        assert_eq!(grade.letter, None);
        assert_eq!(grade.status, GradeStatus::Final, "the status is still told");
        assert!(grade.items[0].overflow && grade.items[0].score.is_none());
        assert_eq!(grade.items[1].score, Some(dec!(5)));
        assert!(grade.not_computable.unwrap().message().contains("quiz"));
    }

    #[test]
    fn an_item_left_out_of_the_grade_does_not_stop_it_even_if_its_points_do_not_fit() {
        let mut pending = graded(Decimal::MAX, dec!(0.5));
        pending.grading_progress = GradingProgress::Pending;
        let grade = student_grade(
            &points_policy(),
            &[item("quiz", dec!(100)), item("essay", dec!(10))],
            &scores(&[("quiz", pending), ("essay", graded(dec!(5), dec!(10)))]),
        );
        assert_eq!(grade.not_computable, None);
        assert_eq!(grade.percent, Some(dec!(50.00)));
        assert!(grade.items[0].overflow && grade.items[0].score.is_none());
    }

    #[test]
    fn point_totals_and_weighted_sums_that_do_not_fit_are_named() {
        let items = [item("a", Decimal::MAX), item("b", Decimal::MAX)];
        let grade = student_grade(
            &points_policy(),
            &items,
            &scores(&[
                ("a", graded(dec!(1), dec!(2))),
                ("b", graded(dec!(1), dec!(2))),
            ]),
        );
        assert_eq!(grade.not_computable, Some(Overflow::PointTotals));

        // The tester's course: two categories of weight Decimal::MAX.
        let policy = GradingPolicy {
            scheme: weighted(&[("exams", Decimal::MAX), ("homework", Decimal::MAX)]),
            ..points_policy()
        };
        let items = [
            in_category("midterm", dec!(100), "exams"),
            in_category("hw", dec!(10), "homework"),
        ];
        let grade = student_grade(
            &policy,
            &items,
            &scores(&[
                ("midterm", graded(dec!(80), dec!(100))),
                ("hw", graded(dec!(9), dec!(10))),
            ]),
        );
        assert_eq!(grade.not_computable, Some(Overflow::Percent));
        assert_eq!(grade.percent, None);
    }

    #[test]
    fn tiny_weights_keep_their_digits() {
        // 87.5% and 50% at equal weights of 10^-28 is 68.75%, as at 1 and 1.
        let tiny = dec!(0.0000000000000000000000000001);
        for w in [tiny, dec!(1)] {
            let policy = GradingPolicy {
                scheme: weighted(&[("exams", w), ("homework", w)]),
                ..points_policy()
            };
            let grade = student_grade(
                &policy,
                &[
                    in_category("midterm", dec!(8), "exams"),
                    in_category("hw", dec!(10), "homework"),
                ],
                &scores(&[
                    ("midterm", graded(dec!(7), dec!(8))),
                    ("hw", graded(dec!(5), dec!(10))),
                ]),
            );
            assert_eq!(grade.percent, Some(dec!(68.75)), "weights {w}");
        }
    }

    #[test]
    fn a_completion_only_final_counts_only_when_completed_and_fully_graded() {
        let final_exam = ItemSpec {
            completion_only: true,
            ..item("final", dec!(100))
        };
        let with = |activity, grading| cell(dec!(100), dec!(100), activity, grading);
        assert_eq!(
            item_state(
                &final_exam,
                Some(&with(
                    ActivityProgress::Submitted,
                    GradingProgress::FullyGraded
                ))
            ),
            ItemState::Provisional
        );
        assert_eq!(
            item_state(
                &final_exam,
                Some(&with(
                    ActivityProgress::Completed,
                    GradingProgress::FullyGraded
                ))
            ),
            ItemState::Counted
        );
        assert_eq!(
            item_state(
                &final_exam,
                Some(&with(
                    ActivityProgress::Completed,
                    GradingProgress::PendingManual
                ))
            ),
            ItemState::PendingManual
        );
        assert_eq!(
            item_state(
                &final_exam,
                Some(&with(ActivityProgress::Completed, GradingProgress::Pending))
            ),
            ItemState::Provisional
        );
        assert_eq!(item_state(&final_exam, None), ItemState::Missing);
    }

    #[test]
    fn a_regular_item_counts_when_fully_graded_whatever_the_activity() {
        let quiz = item("quiz", dec!(10));
        let submitted = cell(
            dec!(7),
            dec!(10),
            ActivityProgress::Submitted,
            GradingProgress::FullyGraded,
        );
        assert_eq!(item_state(&quiz, Some(&submitted)), ItemState::Counted);
        for grading in [
            GradingProgress::Pending,
            GradingProgress::Failed,
            GradingProgress::NotReady,
        ] {
            let c = cell(dec!(7), dec!(10), ActivityProgress::Completed, grading);
            assert_eq!(item_state(&quiz, Some(&c)), ItemState::Provisional);
        }
    }

    #[test]
    fn a_pending_manual_essay_is_flagged_and_left_out_of_the_percent() {
        // Quiz 9/10 counted; essay 40/50 awaiting manual grading.
        // Percent = 9 / 10 = 90.00, provisional.
        let items = [item("quiz", dec!(10)), item("essay", dec!(50))];
        let grade = student_grade(
            &points_policy(),
            &items,
            &scores(&[
                ("quiz", graded(dec!(9), dec!(10))),
                (
                    "essay",
                    cell(
                        dec!(40),
                        dec!(50),
                        ActivityProgress::Completed,
                        GradingProgress::PendingManual,
                    ),
                ),
            ]),
        );
        let essay = &grade.items[1];
        assert_eq!(essay.state, ItemState::PendingManual);
        assert!(!essay.counted);
        assert_eq!(essay.score, Some(dec!(40)));
        assert_eq!(grade.percent, Some(dec!(90.00)));
        assert_eq!(grade.status, GradeStatus::Provisional);
    }

    #[test]
    fn a_score_of_zero_is_counted_not_missing() {
        let grade = student_grade(
            &points_policy(),
            &[item("quiz", dec!(10))],
            &scores(&[("quiz", graded(dec!(0), dec!(10)))]),
        );
        assert_eq!(grade.items[0].state, ItemState::Counted);
        assert_eq!(grade.items[0].score, Some(Decimal::ZERO));
        assert_eq!(grade.points_possible, Some(dec!(10)));
        assert_eq!(grade.percent, Some(dec!(0.00)));
        assert_eq!(grade.letter.as_deref(), Some("F"));
        assert_eq!(grade.status, GradeStatus::Final);
    }

    #[test]
    fn nothing_counted_gives_no_percent_and_no_letter() {
        let grade = student_grade(&hist101_policy(), &hist101_items(), &HashMap::new());
        assert_eq!(grade.percent, None);
        assert_eq!(grade.letter, None);
        assert_eq!(grade.status, GradeStatus::Provisional);
        assert_eq!(grade.points_possible, Some(Decimal::ZERO));

        let empty = student_grade(&points_policy(), &[], &HashMap::new());
        assert_eq!(empty.percent, None);
        assert_eq!(empty.status, GradeStatus::Provisional);
        assert!(empty.items.is_empty());
    }

    #[test]
    fn scores_for_unknown_line_items_are_ignored_and_item_order_is_kept() {
        let items = [item("b", dec!(10)), item("a", dec!(10))];
        let grade = student_grade(
            &points_policy(),
            &items,
            &scores(&[
                ("a", graded(dec!(5), dec!(10))),
                ("b", graded(dec!(10), dec!(10))),
                ("deleted-item", graded(dec!(0), dec!(100))),
            ]),
        );
        let ids: Vec<&str> = grade
            .items
            .iter()
            .map(|r| r.line_item_id.as_str())
            .collect();
        assert_eq!(ids, ["b", "a"]);
        assert_eq!(grade.points_possible, Some(dec!(20)));
        assert_eq!(grade.percent, Some(dec!(75.00)));
    }

    #[test]
    fn rounding_is_to_two_places_half_away_from_zero() {
        assert_eq!(round_percent(dec!(89.995)), dec!(90.00));
        assert_eq!(round_percent(dec!(89.994999)), dec!(89.99));
        // A float would make this 2.67.
        assert_eq!(round_percent(dec!(2.675)), dec!(2.68));
        // Banker's rounding would give 0.12; half away from zero gives 0.13.
        assert_eq!(round_percent(dec!(0.125)), dec!(0.13));
        assert_eq!(round_percent(dec!(-89.995)), dec!(-90.00));
        assert_eq!(round_percent(dec!(-89.994999)), dec!(-89.99));
        assert_eq!(round_percent(dec!(87)), dec!(87));
    }

    #[test]
    fn letter_cut_offs_are_inclusive_at_the_boundary() {
        let scale = standard_scale();
        assert_eq!(letter_for(dec!(93), &scale).as_deref(), Some("A"));
        assert_eq!(letter_for(dec!(93.00), &scale).as_deref(), Some("A"));
        assert_eq!(letter_for(dec!(92.99), &scale).as_deref(), Some("A-"));
        assert_eq!(letter_for(dec!(100), &scale).as_deref(), Some("A"));
        assert_eq!(letter_for(dec!(0), &scale).as_deref(), Some("F"));
    }

    #[test]
    fn the_letter_does_not_depend_on_the_order_of_the_scale() {
        let mut scale = standard_scale();
        scale.reverse();
        scale.swap(2, 7);
        assert_eq!(letter_for(dec!(93), &scale).as_deref(), Some("A"));
        assert_eq!(letter_for(dec!(88.5), &scale).as_deref(), Some("B+"));
        assert_eq!(letter_for(dec!(61), &scale).as_deref(), Some("D"));
    }

    #[test]
    fn no_letter_comes_from_an_empty_scale_or_below_the_lowest_cut_off() {
        assert_eq!(letter_for(dec!(95), &[]), None);
        let pass_only = [ScaleEntry {
            letter: "P".into(),
            min_percent: dec!(60),
        }];
        assert_eq!(letter_for(dec!(59.99), &pass_only), None);
        assert_eq!(letter_for(dec!(60), &pass_only).as_deref(), Some("P"));
    }

    #[test]
    fn the_letter_is_read_from_the_rounded_percent() {
        // 929.96 / 1000 = 92.996% → rounds to 93.00 → A (92.996 alone is A-).
        let grade = student_grade(
            &points_policy(),
            &[item("portfolio", dec!(1000))],
            &scores(&[("portfolio", graded(dec!(929.96), dec!(1000)))]),
        );
        assert_eq!(grade.percent, Some(dec!(93.00)));
        assert_eq!(grade.letter.as_deref(), Some("A"));
        assert_eq!(
            letter_for(dec!(92.996), &standard_scale()).as_deref(),
            Some("A-")
        );
    }

    #[test]
    fn serde_names_follow_lti_ags_and_snake_case() {
        assert_eq!(
            from_name::<ActivityProgress>("InProgress"),
            ActivityProgress::InProgress
        );
        assert_eq!(
            from_name::<ActivityProgress>("Initialized"),
            ActivityProgress::Initialized
        );
        assert_eq!(
            from_name::<GradingProgress>("FullyGraded"),
            GradingProgress::FullyGraded
        );
        assert_eq!(
            from_name::<GradingProgress>("PendingManual"),
            GradingProgress::PendingManual
        );
        assert_eq!(
            from_name::<GradingProgress>("NotReady"),
            GradingProgress::NotReady
        );
        assert_eq!(
            from_name::<ItemState>("pending_manual"),
            ItemState::PendingManual
        );
        assert_eq!(from_name::<GradeStatus>("final"), GradeStatus::Final);
        assert_eq!(from_name::<MissingPolicy>("zero"), MissingPolicy::Zero);

        let tagged = MapDeserializer::<_, DeError>::new([("scheme", "points")].into_iter());
        assert_eq!(Scheme::deserialize(tagged).unwrap(), Scheme::Points);
    }

    #[test]
    fn the_default_policy_is_points_with_no_scale_excluding_missing() {
        let policy = GradingPolicy::default();
        assert_eq!(policy.scheme, Scheme::Points);
        assert!(policy.scale.is_empty());
        assert_eq!(policy.missing, MissingPolicy::Exclude);
    }

    // ---- properties --------------------------------------------------------

    const CATEGORIES: [&str; 4] = ["exams", "homework", "labs", "not-in-scheme"];

    fn progress() -> impl Strategy<Value = (ActivityProgress, GradingProgress)> {
        let activity = prop_oneof![
            Just(ActivityProgress::Initialized),
            Just(ActivityProgress::Started),
            Just(ActivityProgress::InProgress),
            Just(ActivityProgress::Submitted),
            Just(ActivityProgress::Completed),
        ];
        let grading = prop_oneof![
            Just(GradingProgress::FullyGraded),
            Just(GradingProgress::Pending),
            Just(GradingProgress::PendingManual),
            Just(GradingProgress::Failed),
            Just(GradingProgress::NotReady),
        ];
        (activity, grading)
    }

    /// A score within `0..=score_maximum`, as tools send them.
    fn sane_cell() -> impl Strategy<Value = CellScore> {
        (1i64..=200)
            .prop_flat_map(|max| (Just(max), 0..=max * 100, progress()))
            .prop_map(|(max, cents, (activity, grading))| {
                cell(
                    Decimal::new(cents, 2),
                    Decimal::from(max),
                    activity,
                    grading,
                )
            })
    }

    fn sane_item() -> impl Strategy<Value = ItemSpec> {
        (
            0i64..=20_000,
            prop::option::of(0usize..CATEGORIES.len()),
            prop::option::weighted(0.2, 0i64..=100),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.2),
        )
            .prop_map(|(cents, category, weight, course_total, completion_only)| {
                ItemSpec {
                    line_item_id: String::new(),
                    label: String::new(),
                    maximum: Decimal::new(cents, 2),
                    category: category.map(|c| CATEGORIES[c].to_string()),
                    weight: weight.map(Decimal::from),
                    course_total,
                    completion_only,
                }
            })
    }

    /// Items with unique ids, each with or without a score.
    fn sane_course() -> impl Strategy<Value = (Vec<ItemSpec>, Vec<(String, CellScore)>)> {
        prop::collection::vec((sane_item(), prop::option::of(sane_cell())), 0..8).prop_map(|rows| {
            let mut items = Vec::new();
            let mut cells = Vec::new();
            for (n, (mut spec, score)) in rows.into_iter().enumerate() {
                spec.line_item_id = format!("item-{n}");
                spec.label = format!("Item {n}");
                if let Some(score) = score {
                    cells.push((spec.line_item_id.clone(), score));
                }
                items.push(spec);
            }
            (items, cells)
        })
    }

    fn sane_policy() -> impl Strategy<Value = GradingPolicy> {
        let scheme = prop_oneof![
            Just(Scheme::Points),
            (0i64..=100, 0i64..=100, 0i64..=100).prop_map(|(e, h, l)| weighted(&[
                ("exams", Decimal::from(e)),
                ("homework", Decimal::from(h)),
                ("labs", Decimal::from(l)),
            ])),
        ];
        let missing = prop_oneof![Just(MissingPolicy::Exclude), Just(MissingPolicy::Zero)];
        (scheme, missing).prop_map(|(scheme, missing)| GradingPolicy {
            scheme,
            scale: standard_scale(),
            missing,
        })
    }

    fn any_decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::ZERO),
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            (-100_000i64..=100_000, 0u32..=4).prop_map(|(n, scale)| Decimal::new(n, scale)),
            (
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any::<bool>(),
                0u32..=28
            )
                .prop_map(|(lo, mid, hi, negative, scale)| Decimal::from_parts(
                    lo, mid, hi, negative, scale
                )),
        ]
    }

    fn to_map(cells: &[(String, CellScore)]) -> HashMap<String, CellScore> {
        cells.iter().cloned().collect()
    }

    proptest! {
        #[test]
        fn the_percent_stays_within_0_and_100_for_in_range_scores(
            policy in sane_policy(),
            (items, cells) in sane_course(),
        ) {
            let grade = student_grade(&policy, &items, &to_map(&cells));
            if let Some(p) = grade.percent {
                prop_assert!(p >= Decimal::ZERO && p <= HUNDRED, "percent {}", p);
            }
        }

        #[test]
        fn a_zero_weight_category_with_items_changes_no_percent(
            (e, h, l) in (0i64..=100, 0i64..=100, 0i64..=100),
            missing in prop_oneof![Just(MissingPolicy::Exclude), Just(MissingPolicy::Zero)],
            (items, cells) in sane_course(),
            extra in prop::collection::vec(
                (0i64..=20_000, prop::option::of(sane_cell())), 1..4),
        ) {
            let categories = [
                ("exams", Decimal::from(e)),
                ("homework", Decimal::from(h)),
                ("labs", Decimal::from(l)),
            ];
            let before_policy = GradingPolicy {
                scheme: weighted(&categories),
                scale: standard_scale(),
                missing,
            };
            let mut with_zero = categories.to_vec();
            with_zero.push(("optional", Decimal::ZERO));
            let after_policy = GradingPolicy {
                scheme: weighted(&with_zero),
                ..before_policy.clone()
            };
            let mut more_items = items.clone();
            let mut more_cells = cells.clone();
            for (n, (cents, score)) in extra.into_iter().enumerate() {
                let id = format!("optional-{n}");
                more_items.push(in_category(&id, Decimal::new(cents, 2), "optional"));
                if let Some(score) = score {
                    more_cells.push((id, score));
                }
            }
            let before = student_grade(&before_policy, &items, &to_map(&cells));
            let after = student_grade(&after_policy, &more_items, &to_map(&more_cells));
            prop_assert_eq!(before.percent, after.percent);
            prop_assert_eq!(before.letter, after.letter);
        }

        #[test]
        fn the_grade_does_not_depend_on_input_order(
            policy in sane_policy(),
            ((items, cells), shuffled) in sane_course().prop_flat_map(|(items, cells)| {
                let shuffled = Just(items.clone()).prop_shuffle();
                (Just((items, cells)), shuffled)
            }),
            ghost in sane_cell(),
        ) {
            let mut forward = HashMap::new();
            forward.insert("ghost".to_string(), ghost.clone());
            for (id, c) in &cells {
                forward.insert(id.clone(), c.clone());
            }
            let mut backward = HashMap::new();
            for (id, c) in cells.iter().rev() {
                backward.insert(id.clone(), c.clone());
            }
            backward.insert("ghost".to_string(), ghost);

            let a = student_grade(&policy, &items, &forward);
            let b = student_grade(&policy, &shuffled, &backward);
            prop_assert_eq!(a.points_earned, b.points_earned);
            prop_assert_eq!(a.points_possible, b.points_possible);
            prop_assert_eq!(a.percent, b.percent);
            prop_assert_eq!(&a.letter, &b.letter);
            prop_assert_eq!(a.status, b.status);
            let by_id = |mut rows: Vec<ItemResult>| {
                rows.sort_by(|x, y| x.line_item_id.cmp(&y.line_item_id));
                rows
            };
            prop_assert_eq!(by_id(a.items), by_id(b.items.clone()));
            let order: Vec<&str> = b.items.iter().map(|r| r.line_item_id.as_str()).collect();
            let expected: Vec<&str> = shuffled.iter().map(|i| i.line_item_id.as_str()).collect();
            prop_assert_eq!(order, expected);
        }

        #[test]
        fn scaling_onto_the_same_maximum_is_the_identity(
            given in any_decimal(),
            maximum in any_decimal().prop_filter("non-zero maximum", |m| !m.is_zero()),
        ) {
            prop_assert_eq!(scale_points(given, maximum, maximum), Some(given));
        }

        #[test]
        fn one_category_holding_every_item_matches_the_points_scheme(
            (items, cells) in sane_course(),
            weight in 1i64..=100,
            missing in prop_oneof![Just(MissingPolicy::Exclude), Just(MissingPolicy::Zero)],
        ) {
            let items: Vec<ItemSpec> = items
                .into_iter()
                .map(|i| ItemSpec { category: Some("all".into()), weight: None, ..i })
                .collect();
            let map = to_map(&cells);
            let points = GradingPolicy { missing, ..points_policy() };
            let one_bucket = GradingPolicy {
                scheme: weighted(&[("all", Decimal::from(weight))]),
                ..points.clone()
            };
            let by_points = student_grade(&points, &items, &map);
            let by_weight = student_grade(&one_bucket, &items, &map);
            prop_assert_eq!(by_points, by_weight);
        }

        #[test]
        fn arbitrary_decimals_never_panic(
            rows in prop::collection::vec(
                (
                    any_decimal(),
                    prop::option::of(0usize..CATEGORIES.len()),
                    prop::option::of(any_decimal()),
                    any::<bool>(),
                    any::<bool>(),
                    prop::option::of((any_decimal(), any_decimal(), progress())),
                ),
                0..8,
            ),
            weights in prop::collection::vec(any_decimal(), 3),
            use_weights in any::<bool>(),
            zero_missing in any::<bool>(),
            cut_offs in prop::collection::vec(any_decimal(), 0..4),
            loose in any_decimal(),
        ) {
            let mut items = Vec::new();
            let mut map = HashMap::new();
            for (n, (maximum, category, weight, course_total, completion_only, score))
                in rows.into_iter().enumerate()
            {
                let id = format!("item-{n}");
                if let Some((given, score_max, (activity, grading))) = score {
                    map.insert(id.clone(), cell(given, score_max, activity, grading));
                }
                items.push(ItemSpec {
                    line_item_id: id.clone(),
                    label: id,
                    maximum,
                    category: category.map(|c| CATEGORIES[c].to_string()),
                    weight,
                    course_total,
                    completion_only,
                });
            }
            let scale: Vec<ScaleEntry> = cut_offs
                .into_iter()
                .enumerate()
                .map(|(n, min_percent)| ScaleEntry { letter: format!("L{n}"), min_percent })
                .collect();
            let scheme = if use_weights {
                weighted(&[("exams", weights[0]), ("homework", weights[1]), ("labs", weights[2])])
            } else {
                Scheme::Points
            };
            let missing = if zero_missing { MissingPolicy::Zero } else { MissingPolicy::Exclude };
            let policy = GradingPolicy { scheme, scale: scale.clone(), missing };
            let grade = student_grade(&policy, &items, &map);
            prop_assert_eq!(grade.items.len(), items.len());
            // Either every number or none, and then a reason.
            match &grade.not_computable {
                Some(_) => {
                    prop_assert_eq!(grade.points_earned, None);
                    prop_assert_eq!(grade.points_possible, None);
                    prop_assert_eq!(grade.percent, None);
                    prop_assert_eq!(&grade.letter, &None);
                }
                None => {
                    prop_assert!(grade.points_earned.is_some() && grade.points_possible.is_some());
                    // A counted item always has its points in a computable grade.
                    for r in grade.items.iter().filter(|r| r.counted) {
                        prop_assert!(r.score.is_some() && !r.overflow, "{:?}", r);
                    }
                }
            }
            for r in &grade.items {
                prop_assert!(!(r.overflow && r.score.is_some()));
            }
            let _ = round_percent(loose);
            let _ = letter_for(loose, &scale);
            let _ = scale_points(loose, weights[0], weights[1]);
        }
    }
}
