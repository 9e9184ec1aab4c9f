//! The Enrollment aggregate: one person in one course, with their role,
//! status, LTI launches and the tool accounts linked to them.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::ids::{CourseId, ResourceLinkId, ToolId, UserId};
use crate::{clean_text, DomainError};

const MEMBERSHIP: &str = "http://purl.imsglobal.org/vocab/lis/v2/membership#";

/// A course role. Known LIS roles have short names; any other role is kept
/// as its full LTI role URI.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Learner,
    Instructor,
    TeachingAssistant,
    ContentDeveloper,
    Mentor,
    Administrator,
    Other(String),
}

impl Role {
    /// Reads a short name (`Learner`) or a full LTI role URI.
    pub fn parse(s: &str) -> Result<Self, DomainError> {
        let short = s.strip_prefix(MEMBERSHIP).unwrap_or(s);
        Ok(match short {
            "Learner" => Role::Learner,
            "Instructor" => Role::Instructor,
            "TeachingAssistant" | "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant" => {
                Role::TeachingAssistant
            }
            "ContentDeveloper" => Role::ContentDeveloper,
            "Mentor" => Role::Mentor,
            "Administrator" => Role::Administrator,
            _ if s.starts_with("http://") || s.starts_with("https://") => {
                if s.len() > 256 || s.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(DomainError::InvalidEnrollment("role URI is not valid".into()));
                }
                Role::Other(s.to_string())
            }
            _ => {
                return Err(DomainError::InvalidEnrollment(format!(
                    "unknown role {s:?}: use Learner, Instructor, TeachingAssistant, ContentDeveloper, Mentor, Administrator or a full LTI role URI"
                )))
            }
        })
    }

    /// The short name for known roles, the URI otherwise.
    pub fn name(&self) -> &str {
        match self {
            Role::Learner => "Learner",
            Role::Instructor => "Instructor",
            Role::TeachingAssistant => "TeachingAssistant",
            Role::ContentDeveloper => "ContentDeveloper",
            Role::Mentor => "Mentor",
            Role::Administrator => "Administrator",
            Role::Other(uri) => uri,
        }
    }

    /// The full LTI role URIs a launch or roster lists for this role.
    pub fn lti_uris(&self) -> Vec<String> {
        match self {
            Role::TeachingAssistant => vec![
                "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
                    .into(),
                format!("{MEMBERSHIP}Instructor"),
            ],
            Role::Other(uri) => vec![uri.clone()],
            known => vec![format!("{MEMBERSHIP}{}", known.name())],
        }
    }

    /// Whether deep linking (choosing content) is offered to this role.
    pub fn may_author(&self) -> bool {
        matches!(
            self,
            Role::Instructor
                | Role::TeachingAssistant
                | Role::ContentDeveloper
                | Role::Administrator
        )
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Role::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnrollmentStatus {
    Active,
    Inactive,
    Dropped,
}

impl EnrollmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollmentStatus::Active => "active",
            EnrollmentStatus::Inactive => "inactive",
            EnrollmentStatus::Dropped => "dropped",
        }
    }
}

/// Whether someone with this role and status takes scores: an active
/// learner, and no one else.
pub fn takes_scores(role: &Role, status: EnrollmentStatus) -> bool {
    *role == Role::Learner && status == EnrollmentStatus::Active
}

/// Who the person is, as the SIS knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub role: Role,
    pub status: EnrollmentStatus,
    pub name: Option<String>,
    pub email: Option<String>,
}

impl Person {
    fn validated(mut self) -> Result<Self, DomainError> {
        if let Some(n) = self.name.take() {
            let n = clean_text(&n, "name", 200)?;
            self.name = (!n.is_empty()).then_some(n);
        }
        if let Some(e) = self.email.take() {
            let e = clean_text(&e, "email", 254)?;
            if !e.is_empty() && (!e.contains('@') || e.contains(char::is_whitespace)) {
                return Err(DomainError::InvalidEnrollment(format!(
                    "{e:?} is not an email address"
                )));
            }
            self.email = (!e.is_empty()).then_some(e);
        }
        Ok(self)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaunchKind {
    ResourceLink,
    DeepLinking,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EnrollmentCommand {
    Enroll {
        course_id: CourseId,
        user_id: UserId,
        person: Person,
    },
    /// Replaces role, status, name and email (the API's PUT).
    Update { person: Person },
    /// Drops the person; kept in history.
    Drop,
    RecordLaunch {
        tool_id: ToolId,
        kind: LaunchKind,
        resource_link_id: Option<ResourceLinkId>,
        at: DateTime<Utc>,
    },
    /// The tool's own account id for this person, when a tool reports one.
    LinkToolAccount { tool_id: ToolId, account: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EnrollmentEvent {
    Enrolled {
        course_id: CourseId,
        user_id: UserId,
        person: Person,
    },
    EnrollmentUpdated {
        person: Person,
    },
    EnrollmentStatusChanged {
        from: EnrollmentStatus,
        to: EnrollmentStatus,
    },
    LaunchRecorded {
        tool_id: ToolId,
        kind: LaunchKind,
        resource_link_id: Option<ResourceLinkId>,
        at: DateTime<Utc>,
        first: bool,
    },
    ToolAccountLinked {
        tool_id: ToolId,
        account: String,
    },
}

impl DomainEvent for EnrollmentEvent {
    fn event_type(&self) -> String {
        match self {
            EnrollmentEvent::Enrolled { .. } => "Enrolled",
            EnrollmentEvent::EnrollmentUpdated { .. } => "EnrollmentUpdated",
            EnrollmentEvent::EnrollmentStatusChanged { .. } => "EnrollmentStatusChanged",
            EnrollmentEvent::LaunchRecorded { .. } => "LaunchRecorded",
            EnrollmentEvent::ToolAccountLinked { .. } => "ToolAccountLinked",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        "1".to_string()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    pub person: Option<Person>,
    pub first_launch: Option<DateTime<Utc>>,
    pub latest_launch: Option<DateTime<Utc>>,
    pub tool_accounts: BTreeMap<ToolId, String>,
}

fn current(state: &Enrollment) -> Result<&Person, DomainError> {
    state.person.as_ref().ok_or(DomainError::NotEnrolled)
}

/// A PUT that changes only the status says so as a status change, so the
/// audit log reads "dropped" rather than "updated".
fn update(state: &Enrollment, person: Person) -> Result<Vec<EnrollmentEvent>, DomainError> {
    let now = current(state)?;
    let person = person.validated()?;
    if *now == person {
        return Ok(vec![]);
    }
    let only_status = Person {
        status: now.status,
        ..person.clone()
    } == *now;
    Ok(vec![if only_status {
        EnrollmentEvent::EnrollmentStatusChanged {
            from: now.status,
            to: person.status,
        }
    } else {
        EnrollmentEvent::EnrollmentUpdated { person }
    }])
}

impl Aggregate for Enrollment {
    const TYPE: &'static str = "enrollment";
    type Command = EnrollmentCommand;
    type Event = EnrollmentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: EnrollmentCommand,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        let events = match command {
            EnrollmentCommand::Enroll {
                course_id,
                user_id,
                person,
            } => {
                if self.person.is_some() {
                    return Err(DomainError::AlreadyEnrolled);
                }
                vec![EnrollmentEvent::Enrolled {
                    course_id,
                    user_id,
                    person: person.validated()?,
                }]
            }
            EnrollmentCommand::Update { person } => update(self, person)?,
            EnrollmentCommand::Drop => {
                let now = current(self)?;
                if now.status == EnrollmentStatus::Dropped {
                    vec![]
                } else {
                    vec![EnrollmentEvent::EnrollmentStatusChanged {
                        from: now.status,
                        to: EnrollmentStatus::Dropped,
                    }]
                }
            }
            EnrollmentCommand::RecordLaunch {
                tool_id,
                kind,
                resource_link_id,
                at,
            } => {
                current(self)?;
                vec![EnrollmentEvent::LaunchRecorded {
                    tool_id,
                    kind,
                    resource_link_id,
                    at,
                    first: self.first_launch.is_none(),
                }]
            }
            EnrollmentCommand::LinkToolAccount { tool_id, account } => {
                current(self)?;
                let account = clean_text(&account, "account", 256)?;
                if self.tool_accounts.get(&tool_id) == Some(&account) {
                    vec![]
                } else {
                    vec![EnrollmentEvent::ToolAccountLinked { tool_id, account }]
                }
            }
        };
        for e in events {
            sink.write(e, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: EnrollmentEvent) {
        match event {
            EnrollmentEvent::Enrolled { person, .. }
            | EnrollmentEvent::EnrollmentUpdated { person } => self.person = Some(person),
            EnrollmentEvent::EnrollmentStatusChanged { to, .. } => {
                if let Some(p) = &mut self.person {
                    p.status = to;
                }
            }
            EnrollmentEvent::LaunchRecorded { at, .. } => {
                self.first_launch.get_or_insert(at);
                self.latest_launch = Some(at);
            }
            EnrollmentEvent::ToolAccountLinked { tool_id, account } => {
                self.tool_accounts.insert(tool_id, account);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type F = TestFramework<Enrollment>;

    fn learner() -> Person {
        Person {
            role: Role::Learner,
            status: EnrollmentStatus::Active,
            name: Some("Ada Lovelace".into()),
            email: Some("ada@college.edu".into()),
        }
    }

    fn enrolled() -> EnrollmentEvent {
        EnrollmentEvent::Enrolled {
            course_id: CourseId::parse("HIST-101").unwrap(),
            user_id: UserId::parse("u1").unwrap(),
            person: learner(),
        }
    }

    #[test]
    fn a_person_is_enrolled_once() {
        F::with(())
            .given(vec![enrolled()])
            .when(EnrollmentCommand::Enroll {
                course_id: CourseId::parse("HIST-101").unwrap(),
                user_id: UserId::parse("u1").unwrap(),
                person: learner(),
            })
            .then_expect_error(DomainError::AlreadyEnrolled);
    }

    #[test]
    fn a_status_only_change_is_recorded_as_a_status_change() {
        F::with(())
            .given(vec![enrolled()])
            .when(EnrollmentCommand::Update {
                person: Person {
                    status: EnrollmentStatus::Inactive,
                    ..learner()
                },
            })
            .then_expect_events(vec![EnrollmentEvent::EnrollmentStatusChanged {
                from: EnrollmentStatus::Active,
                to: EnrollmentStatus::Inactive,
            }]);
        F::with(())
            .given(vec![enrolled()])
            .when(EnrollmentCommand::Update { person: learner() })
            .then_expect_events(vec![]);
    }

    #[test]
    fn dropping_keeps_the_person_in_history() {
        F::with(())
            .given(vec![enrolled()])
            .when(EnrollmentCommand::Drop)
            .then_expect_events(vec![EnrollmentEvent::EnrollmentStatusChanged {
                from: EnrollmentStatus::Active,
                to: EnrollmentStatus::Dropped,
            }]);
    }

    #[test]
    fn the_first_launch_is_marked_first() {
        let at: DateTime<Utc> = "2026-09-01T10:00:00Z".parse().unwrap();
        let tool = ToolId::parse("moodle").unwrap();
        let launch = |first| EnrollmentEvent::LaunchRecorded {
            tool_id: tool.clone(),
            kind: LaunchKind::ResourceLink,
            resource_link_id: None,
            at,
            first,
        };
        let cmd = EnrollmentCommand::RecordLaunch {
            tool_id: tool.clone(),
            kind: LaunchKind::ResourceLink,
            resource_link_id: None,
            at,
        };
        F::with(())
            .given(vec![enrolled()])
            .when(cmd.clone())
            .then_expect_events(vec![launch(true)]);
        F::with(())
            .given(vec![enrolled(), launch(true)])
            .when(cmd)
            .then_expect_events(vec![launch(false)]);
    }

    #[test]
    fn roles_read_short_names_and_lti_uris() {
        assert_eq!(Role::parse("Learner").unwrap(), Role::Learner);
        assert_eq!(
            Role::parse("http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor").unwrap(),
            Role::Instructor
        );
        assert_eq!(
            Role::parse(
                "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant"
            )
            .unwrap(),
            Role::TeachingAssistant
        );
        assert!(Role::parse("Wizard").is_err());
        assert_eq!(
            Role::Learner.lti_uris(),
            vec!["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner".to_string()]
        );
    }

    #[test]
    fn a_bad_email_is_refused() {
        F::with(())
            .given_no_previous_events()
            .when(EnrollmentCommand::Enroll {
                course_id: CourseId::parse("HIST-101").unwrap(),
                user_id: UserId::parse("u1").unwrap(),
                person: Person {
                    email: Some("not an email".into()),
                    ..learner()
                },
            })
            .then_expect_error_message("\"not an email\" is not an email address");
    }
}
