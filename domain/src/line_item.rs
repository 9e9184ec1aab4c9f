//! The LineItem aggregate: one gradebook column fed by a tool or set up by
//! the SIS. Its scores live in the [`crate::score`] aggregate, one stream per
//! learner, so a column with 10,000 scores costs a new score no more than a
//! column with 10 (see docs/decisions).

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{CourseId, LineItemId, ToolId};
use crate::policy::{weight_in_range, MAX_WEIGHT};
use crate::{clean_text, DomainError};

/// The largest maximum a line item, or a score post's `scoreMaximum`, may
/// have; far above any real gradebook column, low enough that the points
/// of a course stay far inside a Decimal.
pub const MAX_SCORE_MAXIMUM: i64 = 1_000_000_000;

/// Whether `m` is a maximum the gradebook accepts: above 0, at most
/// [`MAX_SCORE_MAXIMUM`].
pub fn maximum_in_range(m: Decimal) -> bool {
    m > Decimal::ZERO && m <= Decimal::from(MAX_SCORE_MAXIMUM)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItemSpec {
    pub label: String,
    pub score_maximum: Decimal,
    /// As the tool sent it: tools compare these loosely, so keep them exact.
    pub resource_link_id: Option<String>,
    /// As sent: Moodle sends a JSON number, others a string.
    pub resource_id: Option<serde_json::Value>,
    pub tag: Option<String>,
    pub start_date_time: Option<String>,
    pub end_date_time: Option<String>,
    pub category: Option<String>,
    /// The item's own weight in a weighted scheme, instead of a category.
    pub weight: Option<Decimal>,
    /// The item stands for a whole tool course (Moodle's course grade).
    pub course_total: bool,
    /// Only a Completed + FullyGraded score counts.
    pub completion_only: bool,
    /// The tool that owns the column; `None` for columns the SIS made.
    pub tool_id: Option<ToolId>,
}

impl LineItemSpec {
    pub fn new(label: impl Into<String>, score_maximum: Decimal) -> Self {
        Self {
            label: label.into(),
            score_maximum,
            resource_link_id: None,
            resource_id: None,
            tag: None,
            start_date_time: None,
            end_date_time: None,
            category: None,
            weight: None,
            course_total: false,
            completion_only: false,
            tool_id: None,
        }
    }

    /// Checks every field and returns the spec with text fields trimmed.
    pub fn validated(mut self) -> Result<Self, DomainError> {
        self.label = clean_text(&self.label, "label", 300)?;
        if self.label.is_empty() {
            return Err(DomainError::InvalidLineItem(
                "label must not be empty".into(),
            ));
        }
        if !maximum_in_range(self.score_maximum) {
            return Err(DomainError::InvalidScoreMaximum);
        }
        for (what, v) in [
            ("tag", &self.tag),
            ("resourceLinkId", &self.resource_link_id),
            ("category", &self.category),
            ("startDateTime", &self.start_date_time),
            ("endDateTime", &self.end_date_time),
        ] {
            if let Some(v) = v {
                if v.chars().count() > 256 || v.chars().any(char::is_control) {
                    return Err(DomainError::InvalidLineItem(format!(
                        "{what} must be at most 256 characters without control characters"
                    )));
                }
            }
        }
        match &self.resource_id {
            None | Some(serde_json::Value::Number(_)) => {}
            Some(serde_json::Value::String(s)) if s.chars().count() <= 256 => {}
            Some(_) => {
                return Err(DomainError::InvalidLineItem(
                    "resourceId must be a string of at most 256 characters or a number".into(),
                ))
            }
        }
        if let Some(w) = self.weight {
            if !weight_in_range(w) {
                return Err(DomainError::InvalidLineItem(format!(
                    "weight must be between 0 and {MAX_WEIGHT}"
                )));
            }
        }
        Ok(self)
    }
}

/// A partial change; `Some(None)` clears an optional field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineItemPatch {
    pub label: Option<String>,
    pub score_maximum: Option<Decimal>,
    pub resource_link_id: Option<Option<String>>,
    pub resource_id: Option<Option<serde_json::Value>>,
    pub tag: Option<Option<String>>,
    pub start_date_time: Option<Option<String>>,
    pub end_date_time: Option<Option<String>>,
    pub category: Option<Option<String>>,
    pub weight: Option<Option<Decimal>>,
    pub course_total: Option<bool>,
    pub completion_only: Option<bool>,
    /// Hands the column to a tool (binding it to the tool's link).
    pub tool_id: Option<Option<ToolId>>,
}

impl LineItemPatch {
    fn apply_to(self, mut s: LineItemSpec) -> LineItemSpec {
        if let Some(v) = self.label {
            s.label = v;
        }
        if let Some(v) = self.score_maximum {
            s.score_maximum = v;
        }
        if let Some(v) = self.resource_link_id {
            s.resource_link_id = v;
        }
        if let Some(v) = self.resource_id {
            s.resource_id = v;
        }
        if let Some(v) = self.tag {
            s.tag = v;
        }
        if let Some(v) = self.start_date_time {
            s.start_date_time = v;
        }
        if let Some(v) = self.end_date_time {
            s.end_date_time = v;
        }
        if let Some(v) = self.category {
            s.category = v;
        }
        if let Some(v) = self.weight {
            s.weight = v;
        }
        if let Some(v) = self.course_total {
            s.course_total = v;
        }
        if let Some(v) = self.completion_only {
            s.completion_only = v;
        }
        if let Some(v) = self.tool_id {
            s.tool_id = v;
        }
        s
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum LineItemCommand {
    Create {
        course_id: CourseId,
        line_item_id: LineItemId,
        spec: LineItemSpec,
    },
    Update {
        patch: LineItemPatch,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LineItemEvent {
    LineItemCreated {
        course_id: CourseId,
        line_item_id: LineItemId,
        spec: LineItemSpec,
    },
    /// Carries the whole new spec, so readers never merge partial changes.
    LineItemUpdated {
        spec: LineItemSpec,
    },
    LineItemDeleted,
}

impl DomainEvent for LineItemEvent {
    fn event_type(&self) -> String {
        match self {
            LineItemEvent::LineItemCreated { .. } => "LineItemCreated",
            LineItemEvent::LineItemUpdated { .. } => "LineItemUpdated",
            LineItemEvent::LineItemDeleted => "LineItemDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub course_id: Option<CourseId>,
    pub line_item_id: Option<LineItemId>,
    pub spec: Option<LineItemSpec>,
    pub deleted: bool,
}

fn create(
    state: &LineItem,
    course_id: CourseId,
    line_item_id: LineItemId,
    spec: LineItemSpec,
) -> Result<Vec<LineItemEvent>, DomainError> {
    if state.spec.is_some() {
        return Err(DomainError::DuplicateLineItem);
    }
    Ok(vec![LineItemEvent::LineItemCreated {
        course_id,
        line_item_id,
        spec: spec.validated()?,
    }])
}

fn live_spec(state: &LineItem) -> Result<&LineItemSpec, DomainError> {
    match (&state.spec, state.deleted) {
        (None, _) => Err(DomainError::LineItemNotFound),
        (Some(_), true) => Err(DomainError::LineItemDeleted),
        (Some(spec), false) => Ok(spec),
    }
}

fn update(state: &LineItem, patch: LineItemPatch) -> Result<Vec<LineItemEvent>, DomainError> {
    let current = live_spec(state)?;
    let spec = patch.apply_to(current.clone()).validated()?;
    if spec == *current {
        return Ok(vec![]);
    }
    Ok(vec![LineItemEvent::LineItemUpdated { spec }])
}

impl Aggregate for LineItem {
    const TYPE: &'static str = "line_item";
    type Command = LineItemCommand;
    type Event = LineItemEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: LineItemCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            LineItemCommand::Create {
                course_id,
                line_item_id,
                spec,
            } => create(self, course_id, line_item_id, spec)?,
            LineItemCommand::Update { patch } => update(self, patch)?,
            LineItemCommand::Delete => {
                live_spec(self)?;
                vec![LineItemEvent::LineItemDeleted]
            }
        };
        for e in events {
            sink.write(e, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: LineItemEvent) {
        match event {
            LineItemEvent::LineItemCreated {
                course_id,
                line_item_id,
                spec,
            } => {
                self.course_id = Some(course_id);
                self.line_item_id = Some(line_item_id);
                self.spec = Some(spec);
            }
            LineItemEvent::LineItemUpdated { spec } => self.spec = Some(spec),
            LineItemEvent::LineItemDeleted => self.deleted = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use rust_decimal_macros::dec;

    type F = TestFramework<LineItem>;

    fn created() -> LineItemEvent {
        LineItemEvent::LineItemCreated {
            course_id: CourseId::parse("HIST-101").unwrap(),
            line_item_id: LineItemId::parse("li-1").unwrap(),
            spec: LineItemSpec::new("Quiz 1", dec!(10)),
        }
    }

    fn create_cmd(spec: LineItemSpec) -> LineItemCommand {
        LineItemCommand::Create {
            course_id: CourseId::parse("HIST-101").unwrap(),
            line_item_id: LineItemId::parse("li-1").unwrap(),
            spec,
        }
    }

    #[test]
    fn a_line_item_is_created_with_a_trimmed_label() {
        F::with(())
            .given_no_previous_events()
            .when(create_cmd(LineItemSpec::new("  Quiz 1 ", dec!(10))))
            .then_expect_events(vec![created()]);
    }

    #[test]
    fn a_score_maximum_must_be_positive_and_at_most_the_bound() {
        for max in [dec!(0), dec!(-1), dec!(1000000000.01), Decimal::MAX] {
            F::with(())
                .given_no_previous_events()
                .when(create_cmd(LineItemSpec::new("Quiz", max)))
                .then_expect_error(DomainError::InvalidScoreMaximum);
        }
    }

    #[test]
    fn a_weight_must_be_between_0_and_1000() {
        for (weight, ok) in [
            (dec!(0), true),
            (dec!(1000), true),
            (dec!(1000.01), false),
            (Decimal::MAX, false),
            (dec!(-0.5), false),
        ] {
            let mut spec = LineItemSpec::new("Quiz", dec!(10));
            spec.weight = Some(weight);
            assert_eq!(spec.validated().is_ok(), ok, "weight {weight}");
        }
        let mut top = LineItemSpec::new("Quiz", dec!(1000000000));
        top.weight = Some(dec!(1000));
        assert!(
            top.validated().is_ok(),
            "the bounds themselves are accepted"
        );
    }

    #[test]
    fn a_line_item_id_is_used_once() {
        F::with(())
            .given(vec![created()])
            .when(create_cmd(LineItemSpec::new("Quiz", dec!(5))))
            .then_expect_error(DomainError::DuplicateLineItem);
    }

    #[test]
    fn a_resource_id_keeps_its_json_type() {
        let mut spec = LineItemSpec::new("Quiz", dec!(5));
        spec.resource_id = Some(serde_json::json!(42));
        spec.tag = Some("grade".into());
        let events = F::with(())
            .given_no_previous_events()
            .when(create_cmd(spec))
            .inspect_result()
            .unwrap();
        let json = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(
            json["LineItemCreated"]["spec"]["resource_id"],
            serde_json::json!(42)
        );
    }

    #[test]
    fn an_update_records_the_whole_new_spec_and_nothing_when_unchanged() {
        let mut spec = LineItemSpec::new("Quiz 1", dec!(20));
        spec.category = Some("Quizzes".into());
        F::with(())
            .given(vec![created()])
            .when(LineItemCommand::Update {
                patch: LineItemPatch {
                    score_maximum: Some(dec!(20)),
                    category: Some(Some("Quizzes".into())),
                    ..Default::default()
                },
            })
            .then_expect_events(vec![LineItemEvent::LineItemUpdated { spec }]);
        F::with(())
            .given(vec![created()])
            .when(LineItemCommand::Update {
                patch: LineItemPatch {
                    label: Some("Quiz 1".into()),
                    ..Default::default()
                },
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_deleted_line_item_takes_no_changes() {
        F::with(())
            .given(vec![created(), LineItemEvent::LineItemDeleted])
            .when(LineItemCommand::Delete)
            .then_expect_error(DomainError::LineItemDeleted);
        F::with(())
            .given_no_previous_events()
            .when(LineItemCommand::Delete)
            .then_expect_error(DomainError::LineItemNotFound);
    }
}
