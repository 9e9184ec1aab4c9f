//! The Course aggregate: an SIS course section with its grading policy, its
//! lock, the tools deployed in it and the resource links tools launch.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{CourseId, LineItemId, ResourceLinkId, ToolId};
use crate::policy::{validate_scale, GradingPolicy, MissingPolicy, ScaleEntry, Scheme};
use crate::{clean_text, DomainError};

/// A launchable link in the course, made by deep linking or by the SIS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLink {
    pub resource_link_id: ResourceLinkId,
    pub tool_id: ToolId,
    pub title: String,
    /// The tool's launch URL for this link, when the tool named one.
    pub url: Option<String>,
    /// Sent back to the tool on every launch (Moodle needs its `custom.id`).
    pub custom: serde_json::Map<String, serde_json::Value>,
    /// The line item bound to this link, if the link carries a grade.
    pub line_item_id: Option<LineItemId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CourseCommand {
    Open {
        course_id: CourseId,
        title: String,
        term: String,
        tool_ids: Vec<ToolId>,
    },
    SetGrading {
        scheme: Scheme,
        /// `None` keeps the current scale.
        scale: Option<Vec<ScaleEntry>>,
        missing: MissingPolicy,
    },
    AllowTools {
        tool_ids: Vec<ToolId>,
    },
    AddResourceLink {
        link: ResourceLink,
    },
    Lock {
        reason: Option<String>,
    },
    Unlock {
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CourseEvent {
    CourseOpened {
        course_id: CourseId,
        title: String,
        term: String,
        tool_ids: Vec<ToolId>,
    },
    GradingSchemeSet {
        scheme: Scheme,
        missing: MissingPolicy,
    },
    GradeScaleSet {
        scale: Vec<ScaleEntry>,
    },
    ToolDeploymentsAllowed {
        tool_ids: Vec<ToolId>,
    },
    ResourceLinkAdded {
        link: ResourceLink,
    },
    CourseLocked {
        reason: Option<String>,
    },
    CourseUnlocked {
        reason: Option<String>,
    },
}

impl DomainEvent for CourseEvent {
    fn event_type(&self) -> String {
        match self {
            CourseEvent::CourseOpened { .. } => "CourseOpened",
            CourseEvent::GradingSchemeSet { .. } => "GradingSchemeSet",
            CourseEvent::GradeScaleSet { .. } => "GradeScaleSet",
            CourseEvent::ToolDeploymentsAllowed { .. } => "ToolDeploymentsAllowed",
            CourseEvent::ResourceLinkAdded { .. } => "ResourceLinkAdded",
            CourseEvent::CourseLocked { .. } => "CourseLocked",
            CourseEvent::CourseUnlocked { .. } => "CourseUnlocked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Course {
    pub course_id: Option<CourseId>,
    pub title: String,
    pub term: String,
    pub grading: GradingPolicy,
    pub locked: bool,
    pub tools: BTreeSet<ToolId>,
    pub resource_links: BTreeMap<ResourceLinkId, ResourceLink>,
}

impl Course {
    pub fn is_open(&self) -> bool {
        self.course_id.is_some()
    }
}

fn open(
    state: &Course,
    course_id: CourseId,
    title: String,
    term: String,
    tool_ids: Vec<ToolId>,
) -> Result<Vec<CourseEvent>, DomainError> {
    if state.is_open() {
        return Err(DomainError::CourseAlreadyExists);
    }
    let title = clean_text(&title, "title", 300)?;
    // A course nobody can tell apart in a list is a typo, not a course.
    if title.is_empty() {
        return Err(DomainError::InvalidInput("title must not be empty".into()));
    }
    let term = clean_text(&term, "term", 64)?;
    Ok(vec![CourseEvent::CourseOpened {
        course_id,
        title,
        term,
        tool_ids,
    }])
}

/// A lock or unlock reason is shown to registrars beside every refused
/// post, so it is kept short and printable.
fn lock_reason(reason: Option<String>) -> Result<Option<String>, DomainError> {
    reason.map(|r| clean_text(&r, "reason", 500)).transpose()
}

fn set_grading(
    state: &Course,
    scheme: Scheme,
    scale: Option<Vec<ScaleEntry>>,
    missing: MissingPolicy,
) -> Result<Vec<CourseEvent>, DomainError> {
    scheme.validate()?;
    let mut events = Vec::new();
    if scheme != state.grading.scheme || missing != state.grading.missing {
        events.push(CourseEvent::GradingSchemeSet { scheme, missing });
    }
    if let Some(scale) = scale {
        validate_scale(&scale)?;
        if scale != state.grading.scale {
            events.push(CourseEvent::GradeScaleSet { scale });
        }
    }
    Ok(events)
}

impl Aggregate for Course {
    const TYPE: &'static str = "course";
    type Command = CourseCommand;
    type Event = CourseEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CourseCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        if !self.is_open() && !matches!(command, CourseCommand::Open { .. }) {
            return Err(DomainError::CourseNotFound);
        }
        let events = match command {
            CourseCommand::Open {
                course_id,
                title,
                term,
                tool_ids,
            } => open(self, course_id, title, term, tool_ids)?,
            CourseCommand::SetGrading {
                scheme,
                scale,
                missing,
            } => set_grading(self, scheme, scale, missing)?,
            CourseCommand::AllowTools { tool_ids } => {
                let new: Vec<ToolId> = tool_ids
                    .into_iter()
                    .filter(|t| !self.tools.contains(t))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                if new.is_empty() {
                    vec![]
                } else {
                    vec![CourseEvent::ToolDeploymentsAllowed { tool_ids: new }]
                }
            }
            CourseCommand::AddResourceLink { link } => {
                match self.resource_links.get(&link.resource_link_id) {
                    Some(existing) if *existing == link => vec![],
                    Some(_) => return Err(DomainError::DuplicateResourceLink),
                    None => vec![CourseEvent::ResourceLinkAdded { link }],
                }
            }
            // Locking twice changes nothing and records nothing.
            CourseCommand::Lock { reason } => {
                let reason = lock_reason(reason)?;
                if self.locked {
                    vec![]
                } else {
                    vec![CourseEvent::CourseLocked { reason }]
                }
            }
            CourseCommand::Unlock { reason } => {
                let reason = lock_reason(reason)?;
                if self.locked {
                    vec![CourseEvent::CourseUnlocked { reason }]
                } else {
                    vec![]
                }
            }
        };
        for e in events {
            sink.write(e, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CourseEvent) {
        match event {
            CourseEvent::CourseOpened {
                course_id,
                title,
                term,
                tool_ids,
            } => {
                self.course_id = Some(course_id);
                self.title = title;
                self.term = term;
                self.tools.extend(tool_ids);
            }
            CourseEvent::GradingSchemeSet { scheme, missing } => {
                self.grading.scheme = scheme;
                self.grading.missing = missing;
            }
            CourseEvent::GradeScaleSet { scale } => self.grading.scale = scale,
            CourseEvent::ToolDeploymentsAllowed { tool_ids } => self.tools.extend(tool_ids),
            CourseEvent::ResourceLinkAdded { link } => {
                self.resource_links
                    .insert(link.resource_link_id.clone(), link);
            }
            CourseEvent::CourseLocked { .. } => self.locked = true,
            CourseEvent::CourseUnlocked { .. } => self.locked = false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Category;
    use cqrs_es::test::TestFramework;
    use rust_decimal_macros::dec;

    type F = TestFramework<Course>;

    fn opened() -> CourseEvent {
        CourseEvent::CourseOpened {
            course_id: CourseId::parse("HIST-101").unwrap(),
            title: "World History".into(),
            term: "2026FA".into(),
            tool_ids: vec![],
        }
    }

    #[test]
    fn a_course_opens_once() {
        F::with(())
            .given_no_previous_events()
            .when(CourseCommand::Open {
                course_id: CourseId::parse("HIST-101").unwrap(),
                title: " World History ".into(),
                term: "2026FA".into(),
                tool_ids: vec![],
            })
            .then_expect_events(vec![opened()]);
        F::with(())
            .given(vec![opened()])
            .when(CourseCommand::Open {
                course_id: CourseId::parse("HIST-101").unwrap(),
                title: "x".into(),
                term: "x".into(),
                tool_ids: vec![],
            })
            .then_expect_error(DomainError::CourseAlreadyExists);
    }

    #[test]
    fn a_course_needs_a_title_that_is_not_blank() {
        F::with(())
            .given_no_previous_events()
            .when(CourseCommand::Open {
                course_id: CourseId::parse("HIST-101").unwrap(),
                title: "   ".into(),
                term: "2026FA".into(),
                tool_ids: vec![],
            })
            .then_expect_error(DomainError::InvalidInput("title must not be empty".into()));
    }

    #[test]
    fn a_lock_reason_that_is_too_long_or_has_control_characters_is_refused() {
        let refused = DomainError::InvalidInput(
            "reason must be at most 500 characters without control characters".into(),
        );
        F::with(())
            .given(vec![opened()])
            .when(CourseCommand::Lock {
                reason: Some("x".repeat(501)),
            })
            .then_expect_error(refused.clone());
        // Refused even when the lock itself would change nothing.
        F::with(())
            .given(vec![opened(), CourseEvent::CourseLocked { reason: None }])
            .when(CourseCommand::Lock {
                reason: Some("term\u{0}end".into()),
            })
            .then_expect_error(refused.clone());
        F::with(())
            .given(vec![opened(), CourseEvent::CourseLocked { reason: None }])
            .when(CourseCommand::Unlock {
                reason: Some("x".repeat(100_000)),
            })
            .then_expect_error(refused);
    }

    #[test]
    fn an_unknown_course_takes_no_commands() {
        F::with(())
            .given_no_previous_events()
            .when(CourseCommand::Lock { reason: None })
            .then_expect_error(DomainError::CourseNotFound);
    }

    #[test]
    fn locking_a_locked_course_records_nothing() {
        F::with(())
            .given(vec![opened()])
            .when(CourseCommand::Lock {
                reason: Some("grades issued".into()),
            })
            .then_expect_events(vec![CourseEvent::CourseLocked {
                reason: Some("grades issued".into()),
            }]);
        F::with(())
            .given(vec![opened(), CourseEvent::CourseLocked { reason: None }])
            .when(CourseCommand::Lock { reason: None })
            .then_expect_events(vec![]);
        F::with(())
            .given(vec![opened(), CourseEvent::CourseLocked { reason: None }])
            .when(CourseCommand::Unlock { reason: None })
            .then_expect_events(vec![CourseEvent::CourseUnlocked { reason: None }]);
    }

    #[test]
    fn a_weighted_scheme_and_scale_are_recorded_and_validated() {
        let scheme = Scheme::Weighted {
            categories: vec![Category {
                name: "Exams".into(),
                weight: dec!(60),
            }],
        };
        let scale = vec![ScaleEntry {
            letter: "A".into(),
            min_percent: dec!(93),
        }];
        F::with(())
            .given(vec![opened()])
            .when(CourseCommand::SetGrading {
                scheme: scheme.clone(),
                scale: Some(scale.clone()),
                missing: MissingPolicy::Exclude,
            })
            .then_expect_events(vec![
                CourseEvent::GradingSchemeSet {
                    scheme,
                    missing: MissingPolicy::Exclude,
                },
                CourseEvent::GradeScaleSet { scale },
            ]);
        F::with(())
            .given(vec![opened()])
            .when(CourseCommand::SetGrading {
                scheme: Scheme::Points,
                scale: Some(vec![ScaleEntry {
                    letter: "A".into(),
                    min_percent: dec!(-5),
                }]),
                missing: MissingPolicy::Exclude,
            })
            .then_expect_error_message(
                "invalid grading: letter \"A\" needs a min_percent between 0 and 1000",
            );
    }

    #[test]
    fn a_resource_link_id_is_unique_in_its_course() {
        let link = ResourceLink {
            resource_link_id: ResourceLinkId::parse("rl-1").unwrap(),
            tool_id: ToolId::parse("moodle").unwrap(),
            title: "Quiz 1".into(),
            url: None,
            custom: Default::default(),
            line_item_id: None,
        };
        let mut other = link.clone();
        other.title = "Quiz 2".into();
        F::with(())
            .given(vec![
                opened(),
                CourseEvent::ResourceLinkAdded { link: link.clone() },
            ])
            .when(CourseCommand::AddResourceLink { link: other })
            .then_expect_error(DomainError::DuplicateResourceLink);
        F::with(())
            .given(vec![
                opened(),
                CourseEvent::ResourceLinkAdded { link: link.clone() },
            ])
            .when(CourseCommand::AddResourceLink { link })
            .then_expect_events(vec![]);
    }
}
