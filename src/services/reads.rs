//! The read side's answers that more than one face gives (the JSON API and
//! the pages): each face asks the engine here and shapes the answer its own
//! way, so no face calls another's handlers.

use gradebook_domain::{CourseId, DomainError};
use gradebook_projections::reports::audit::{
    self, read_locks_and_refusals, AuditFilter, AuditPage, Cursor,
};
use gradebook_projections::reports::grades::{course_grades, CourseGrades};
use gradebook_projections::reports::reconciliation::{reconcile, Reconciliation};
use gradebook_projections::tables::kept::{self, ChangeScope, GradeChange, StudentCourseGrade};
use gradebook_projections::tables::management::{self, CourseDetail, CourseSummary};
use gradebook_projections::tables::queries::{self, People};
use gradebook_projections::tables::view::CourseView;
use rust_decimal::Decimal;

use crate::engine::{Engine, EngineError};

/// Points of difference between a tool's course total and the computed
/// grade that reconciliation lets pass unless asked otherwise.
pub const DEFAULT_THRESHOLD: Decimal = Decimal::ONE;

impl Engine {
    /// One course: policy, tools, lock state and counts.
    pub async fn course_detail(&self, course_id: &CourseId) -> Result<CourseDetail, EngineError> {
        management::course_detail(&self.db, course_id.as_str())
            .await?
            .ok_or(EngineError::Domain(DomainError::CourseNotFound))
    }

    /// Courses with their term, lock state and counts; one term's, or all.
    pub async fn courses(&self, term: Option<&str>) -> Result<Vec<CourseSummary>, EngineError> {
        Ok(management::list_courses(&self.db, term).await?)
    }

    /// A course's items, people and scores as the grade reports read them.
    pub async fn report_view(
        &self,
        course_id: &CourseId,
        people: People<'_>,
    ) -> Result<CourseView, EngineError> {
        queries::load_report_view(&self.db, course_id.as_str(), people)
            .await?
            .ok_or(EngineError::Domain(DomainError::CourseNotFound))
    }

    /// The grade report: the kept rows now, or as the engine held the
    /// course at `as_of` (from the history tables). `None` if the course
    /// did not exist (then).
    pub async fn grades(
        &self,
        course_id: &CourseId,
        as_of: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Option<CourseGrades>, EngineError> {
        match as_of {
            // A moment not yet past is the current state.
            Some(t) if t < chrono::Utc::now() => {
                Ok(kept::course_view_as_of(&self.db, course_id.as_str(), t)
                    .await?
                    .map(|view| course_grades(&view, Some(t))))
            }
            _ => Ok(kept::course_grades(&self.db, course_id.as_str())
                .await?
                .map(|g| CourseGrades { as_of, ..g })),
        }
    }

    /// The learners whose course grade changed between two moments, with
    /// the events that changed it; a course's, or a whole term's.
    pub async fn grade_changes(
        &self,
        scope: ChangeScope<'_>,
        since: chrono::DateTime<chrono::Utc>,
        until: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<GradeChange>, EngineError> {
        if let ChangeScope::Course(c) = scope {
            if !queries::course_exists(&self.db, c).await? {
                return Err(EngineError::Domain(DomainError::CourseNotFound));
            }
        }
        Ok(kept::grade_changes(&self.db, scope, since, until).await?)
    }

    /// Every course of one person with the kept grade and lock state;
    /// empty for someone the engine does not know.
    pub async fn student_grades(
        &self,
        user_id: &str,
    ) -> Result<Vec<StudentCourseGrade>, EngineError> {
        Ok(kept::student_grades(&self.db, user_id).await?)
    }

    /// Where the tool's course total and the computed grade part by more
    /// than `threshold` points, and what else needs a registrar's eye.
    pub async fn reconciliation(
        &self,
        course_id: &CourseId,
        threshold: Decimal,
    ) -> Result<Reconciliation, EngineError> {
        let view = self.report_view(course_id, People::All).await?;
        let refusals = read_locks_and_refusals(&self.db, course_id.as_str()).await?;
        Ok(reconcile(&view, &refusals, threshold))
    }

    /// One page of the event log, oldest first, after `after`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<Cursor>,
        limit: i64,
    ) -> Result<AuditPage, EngineError> {
        Ok(audit::page(&self.db, filter, after, limit).await?)
    }
}
