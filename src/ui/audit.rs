//! `/ui/audit`: the event log filtered by course, student, line item and
//! dates, a page at a time: the page the REST audit endpoint answers.

use axum::extract::{Query, State};
use chrono::{Datelike, Days, NaiveDate};
use maud::{html, Markup};
use serde::Deserialize;

use super::session::Viewer;
use super::{layout, when, Nav, UiError, UiResult};
use crate::http::SharedState;
use gradebook_domain::{CourseId, LineItemId, UserId};
use gradebook_projections::reports::audit::{AuditFilter, Cursor};

/// Events per page.
const PAGE: i64 = 50;

#[derive(Deserialize, Default, Clone)]
pub struct AuditParams {
    course_id: Option<String>,
    user_id: Option<String>,
    line_item_id: Option<String>,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    from: Option<String>,
    /// `YYYY-MM-DD`, up to the end of that day (UTC).
    to: Option<String>,
    cursor: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The start of the day (or of the next day, for `next`) as an RFC 3339
/// bound; `to` on 9999-12-31 runs to the end of time, so it is no bound.
fn day(
    name: &str,
    s: Option<String>,
    next: bool,
) -> UiResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(s) = s else { return Ok(None) };
    let bad = || {
        UiError::bad_input(format!(
            "{name} must be a date from 0001-01-01 to 9999-12-31, such as 2026-05-01."
        ))
    };
    let d = NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad())?;
    if !gradebook_domain::time::YEARS.contains(&d.year()) {
        return Err(bad());
    }
    let d = if next {
        match d.checked_add_days(Days::new(1)) {
            Some(n) if gradebook_domain::time::YEARS.contains(&n.year()) => n,
            _ => return Ok(None),
        }
    } else {
        d
    };
    Ok(Some(d.and_time(chrono::NaiveTime::MIN).and_utc()))
}

pub async fn page(
    State(state): State<SharedState>,
    viewer: Viewer,
    Query(p): Query<AuditParams>,
) -> UiResult<Markup> {
    let filter = AuditFilter {
        course_id: nonempty(&p.course_id)
            .map(CourseId::parse)
            .transpose()?
            .map(String::from),
        user_id: nonempty(&p.user_id)
            .map(UserId::parse)
            .transpose()?
            .map(String::from),
        line_item_id: nonempty(&p.line_item_id)
            .map(LineItemId::parse)
            .transpose()?
            .map(String::from),
        from: day("From", nonempty(&p.from), false)?,
        to: day("To", nonempty(&p.to), true)?,
    };
    let after = nonempty(&p.cursor)
        .map(|c| {
            Cursor::decode(&c).ok_or_else(|| {
                UiError::bad_input(
                    "That page link is not one this server made; start again from the first page.",
                )
            })
        })
        .transpose()?;
    let page = state.engine.audit_page(&filter, after, PAGE).await?;
    let filters: Vec<(&str, String)> = [
        ("course_id", nonempty(&p.course_id)),
        ("user_id", nonempty(&p.user_id)),
        ("line_item_id", nonempty(&p.line_item_id)),
        ("from", nonempty(&p.from)),
        ("to", nonempty(&p.to)),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k, v?)))
    .collect();
    let link = |cursor: Option<&str>| {
        let mut pairs = filters.clone();
        if let Some(c) = cursor {
            pairs.push(("cursor", c.to_string()));
        }
        format!(
            "/ui/audit?{}",
            serde_urlencoded::to_string(pairs).unwrap_or_default()
        )
    };
    let text = |s: &Option<String>| s.clone().unwrap_or_default();
    Ok(layout(
        "Audit log",
        Some(&viewer),
        Nav::Audit,
        html! {
            h1 { "Audit log" }
            p.hint { "Every event the engine recorded, oldest first. Dates are in UTC and include the whole day." }
            form.filters method="get" action="/ui/audit" role="search" {
                div.field { label for="course_id" { "Course" } input #course_id name="course_id" value=(text(&p.course_id)); }
                div.field { label for="user_id" { "Student (user id)" } input #user_id name="user_id" value=(text(&p.user_id)); }
                div.field { label for="line_item_id" { "Line item" } input #line_item_id name="line_item_id" value=(text(&p.line_item_id)); }
                div.field { label for="from" { "From" } input #from type="date" name="from" value=(text(&p.from)); }
                div.field { label for="to" { "To" } input #to type="date" name="to" value=(text(&p.to)); }
                div.field.actions { button type="submit" { "Filter" } a href="/ui/audit" { "Clear" } }
            }
            @if page.events.is_empty() {
                p.empty { "No events match these filters." }
            } @else {
                div.table-wrap {
                    table.data #audit {
                        caption { (page.events.len()) " events on this page" }
                        thead { tr {
                            th scope="col" { "#" } th scope="col" { "Recorded" } th scope="col" { "Course" } th scope="col" { "Record" }
                            th scope="col" { "Event" } th scope="col" { "Who" } th scope="col" { "From" } th scope="col" { "Details" }
                        } }
                        tbody { @for e in &page.events {
                            tr {
                                td.num { (e.position) }
                                td.nowrap { (when(&e.recorded_at)) }
                                td { (e.course_id) }
                                td { code { (e.aggregate_id) } }
                                td { (e.event_type) }
                                td { code { (e.metadata["actor"].as_str().unwrap_or_default()) } }
                                td { (e.metadata["source"].as_str().unwrap_or_default()) }
                                td { details { summary { "Payload" } pre { (serde_json::to_string_pretty(&e.payload).unwrap_or_default()) } } }
                            }
                        } }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if p.cursor.is_some() { a href=(link(None)) { "« First page" } }
                @if let Some(next) = &page.next_cursor { a #next-page rel="next" href=(link(Some(next))) { "Next page »" } }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(s: &str, next: bool) -> Option<Option<String>> {
        day("From", Some(s.to_string()), next)
            .ok()
            .map(|b| b.map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
    }

    #[test]
    fn days_become_bounds_within_the_years_the_engine_holds() {
        assert_eq!(
            bound("2026-05-01", false),
            Some(Some("2026-05-01T00:00:00Z".into()))
        );
        assert_eq!(
            bound("2026-05-01", true),
            Some(Some("2026-05-02T00:00:00Z".into()))
        );
        assert_eq!(
            bound("0001-01-01", false),
            Some(Some("0001-01-01T00:00:00Z".into()))
        );
        // Up to the end of 9999 is no bound at all.
        assert_eq!(bound("9999-12-31", true), Some(None));
        for bad in [
            "0000-01-01",
            "10000-01-01",
            "+10000-01-01",
            "-0001-01-01",
            "May",
        ] {
            assert_eq!(bound(bad, false), None, "{bad}");
        }
    }
}
