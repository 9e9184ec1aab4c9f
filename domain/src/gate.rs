//! Score gates: what each aggregate other than `Score` contributes to the
//! decision whether a score post is applied. A course lets scores through
//! while it exists and is not locked, a line item while it exists and is
//! not deleted, an enrollment while it makes the person an active learner.
//!
//! The store keeps each gate beside the log and changes it in the same
//! transaction as the event that changed it, and a score post is checked
//! against the gates in the statement that appends it: a lock, a drop or a
//! deletion that answered is then in force for every post still in flight.

use crate::course::Course;
use crate::enrollment::{takes_scores, Enrollment};
use crate::line_item::LineItem;
use crate::score::Score;

pub trait ScoreGate {
    /// Whether this kind of aggregate is a gate at all.
    const IS_GATE: bool = false;

    /// Whether the aggregate in this state lets score posts through.
    fn lets_scores_through(&self) -> bool {
        false
    }
}

impl ScoreGate for Course {
    const IS_GATE: bool = true;
    fn lets_scores_through(&self) -> bool {
        self.is_open() && !self.locked
    }
}

impl ScoreGate for LineItem {
    const IS_GATE: bool = true;
    fn lets_scores_through(&self) -> bool {
        self.spec.is_some() && !self.deleted
    }
}

impl ScoreGate for Enrollment {
    const IS_GATE: bool = true;
    fn lets_scores_through(&self) -> bool {
        self.person
            .as_ref()
            .is_some_and(|p| takes_scores(&p.role, p.status))
    }
}

impl ScoreGate for Score {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::{EnrollmentStatus, Person, Role};

    #[test]
    fn only_an_open_unlocked_course_an_undeleted_item_and_an_active_learner_let_scores_through() {
        let mut course = Course::default();
        assert!(!course.lets_scores_through(), "no such course");
        course.course_id = Some(crate::CourseId::parse("C").unwrap());
        assert!(course.lets_scores_through());
        course.locked = true;
        assert!(!course.lets_scores_through());

        let mut person = Person {
            role: Role::Learner,
            status: EnrollmentStatus::Active,
            name: None,
            email: None,
        };
        let mut e = Enrollment::default();
        assert!(!e.lets_scores_through(), "not enrolled");
        e.person = Some(person.clone());
        assert!(e.lets_scores_through());
        person.status = EnrollmentStatus::Dropped;
        e.person = Some(person.clone());
        assert!(!e.lets_scores_through());
        person.status = EnrollmentStatus::Active;
        person.role = Role::Instructor;
        e.person = Some(person);
        assert!(!e.lets_scores_through());

        let item = LineItem::default();
        assert!(!item.lets_scores_through(), "no such item");
    }
}
