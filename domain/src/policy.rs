//! How a course computes its grade: the scheme, the letter scale and what a
//! missing score means. The arithmetic itself lives in the projections
//! crate; here are the shapes and the rules for a valid policy.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use crate::DomainError;

/// The largest weight a category or a line item may carry. Far above any
/// real syllabus (weights are usually percents), low enough that the grade
/// arithmetic's weighted sums stay far inside a decimal.
pub const MAX_WEIGHT: i64 = 1000;

/// Whether `w` is a weight the gradebook accepts: 0 to [`MAX_WEIGHT`].
pub fn weight_in_range(w: Decimal) -> bool {
    w >= Decimal::ZERO && w <= Decimal::from(MAX_WEIGHT)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "scheme", rename_all = "snake_case")]
pub enum Scheme {
    /// Course percent = earned points / possible points.
    #[default]
    Points,
    /// Course percent = weight-average of category percents.
    Weighted { categories: Vec<Category> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    pub weight: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MissingPolicy {
    /// Missing and not-counted items are left out of earned and possible.
    #[default]
    Exclude,
    /// Every item counts; anything not counted is 0 of its maximum.
    Zero,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleEntry {
    pub letter: String,
    pub min_percent: Decimal,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GradingPolicy {
    #[serde(flatten)]
    pub scheme: Scheme,
    #[serde(default)]
    pub scale: Vec<ScaleEntry>,
    #[serde(default)]
    pub missing: MissingPolicy,
}

impl Scheme {
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Points => "points",
            Scheme::Weighted { .. } => "weighted",
        }
    }

    /// Categories with unique, non-empty names and weights from 0 to
    /// [`MAX_WEIGHT`].
    pub fn validate(&self) -> Result<(), DomainError> {
        if let Scheme::Weighted { categories } = self {
            let mut seen = HashSet::new();
            for c in categories {
                let name = c.name.trim();
                if name.is_empty() || name.len() > 200 {
                    return Err(DomainError::InvalidGrading(
                        "every category needs a name of 1 to 200 characters".into(),
                    ));
                }
                if !seen.insert(name.to_lowercase()) {
                    return Err(DomainError::InvalidGrading(format!(
                        "category {name:?} appears twice"
                    )));
                }
                if !weight_in_range(c.weight) {
                    return Err(DomainError::InvalidGrading(format!(
                        "category {name:?} needs a weight between 0 and {MAX_WEIGHT}"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A letter scale: non-empty unique letters, cut-offs between 0 and 1000.
pub fn validate_scale(scale: &[ScaleEntry]) -> Result<(), DomainError> {
    let mut seen = HashSet::new();
    for e in scale {
        let letter = e.letter.trim();
        if letter.is_empty() || letter.len() > 16 {
            return Err(DomainError::InvalidGrading(
                "every letter needs 1 to 16 characters".into(),
            ));
        }
        if !seen.insert(letter.to_string()) {
            return Err(DomainError::InvalidGrading(format!(
                "letter {letter:?} appears twice"
            )));
        }
        if e.min_percent < Decimal::ZERO || e.min_percent > Decimal::from(1000) {
            return Err(DomainError::InvalidGrading(format!(
                "letter {letter:?} needs a min_percent between 0 and 1000"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros::dec;

    #[test]
    fn a_policy_reads_the_api_shape() {
        let p: GradingPolicy = serde_json::from_value(serde_json::json!({
            "scheme": "weighted",
            "categories": [{"name": "Exams", "weight": "60"}, {"name": "Homework", "weight": 40}],
            "scale": [{"letter": "A", "min_percent": "93"}]
        }))
        .unwrap();
        assert_eq!(
            p.scheme,
            Scheme::Weighted {
                categories: vec![
                    Category {
                        name: "Exams".into(),
                        weight: dec!(60)
                    },
                    Category {
                        name: "Homework".into(),
                        weight: dec!(40)
                    }
                ]
            }
        );
        assert_eq!(p.missing, MissingPolicy::Exclude);
    }

    #[test]
    fn weights_above_the_bound_are_refused() {
        let weighted = |weight| Scheme::Weighted {
            categories: vec![Category {
                name: "Exams".into(),
                weight,
            }],
        };
        assert!(weighted(dec!(1000)).validate().is_ok());
        assert!(weighted(dec!(0)).validate().is_ok());
        assert!(weighted(dec!(0.0000000000000000000000000001))
            .validate()
            .is_ok());
        for too_big in [dec!(1000.0000000001), Decimal::MAX] {
            assert_eq!(
                weighted(too_big).validate(),
                Err(DomainError::InvalidGrading(
                    "category \"Exams\" needs a weight between 0 and 1000".into()
                ))
            );
        }
    }

    #[test]
    fn duplicate_categories_and_negative_weights_are_refused() {
        let dup = Scheme::Weighted {
            categories: vec![
                Category {
                    name: "Exams".into(),
                    weight: dec!(50),
                },
                Category {
                    name: "exams".into(),
                    weight: dec!(50),
                },
            ],
        };
        assert!(dup.validate().is_err());
        let neg = Scheme::Weighted {
            categories: vec![Category {
                name: "Exams".into(),
                weight: dec!(-1),
            }],
        };
        assert!(neg.validate().is_err());
    }
}
