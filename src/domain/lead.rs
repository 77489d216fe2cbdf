//! A lead as the rest of the program sees it: the store reads it, templates and the scheduler
//! work from it, the CLI shows it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{EmailAddress, LeadId, LeadStatus};

/// A lead as recorded. One type from the database row to the template context, so a field
/// added here reaches every reader without a copy to keep in step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lead {
    /// Database id.
    pub id: LeadId,
    /// Normalised address; the lead's key.
    pub email: EmailAddress,
    /// Display name.
    pub name: Option<String>,
    /// Company.
    pub company: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// First-touch channel.
    pub channel: String,
    /// Where the lead stands.
    pub status: LeadStatus,
    /// Score.
    pub score: i64,
    /// The colleague who forwarded the first inquiry.
    pub owner: Option<String>,
    /// The form the lead came through.
    pub form: Option<String>,
    /// Form fields, latest submission.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// When the lead was created.
    pub created_at: DateTime<Utc>,
    /// When the lead last changed.
    pub updated_at: DateTime<Utc>,
}
