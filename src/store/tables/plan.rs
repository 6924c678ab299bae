use crate::domain::{
    DateRange, Enrollment, Goal, GoalProgressNote, Intervention, PlanReview, RelapsePlanItem,
    RelapsePreventionPlan, TreatmentPlan,
};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for TreatmentPlan {
    const TABLE: &'static str = "treatment_plans";
    const COLUMNS: &'static [&'static str] = &[
        "enrollment_id",
        "status",
        "period_start",
        "period_end",
        "author_id",
        "review_interval_days",
        "next_review_on",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("enrollment_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.enrollment_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.enrollment_id),
            SqlValue::code(self.status),
            SqlValue::date(self.period.start()),
            SqlValue::opt_date(self.period.end()),
            SqlValue::id(self.author_id),
            SqlValue::int(self.review_interval_days),
            SqlValue::opt_date(self.next_review_on),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            enrollment_id: r.parse("enrollment_id")?,
            status: r.parse("status")?,
            period: r.domain(
                "period_end",
                DateRange::new(r.date("period_start")?, r.opt_date("period_end")?),
            )?,
            author_id: r.parse("author_id")?,
            review_interval_days: r.small("review_interval_days")?,
            next_review_on: r.opt_date("next_review_on")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        TreatmentPlan::check(self)
    }
}

impl Child for TreatmentPlan {
    type Parent = Enrollment;
    const PARENT_COLUMN: &'static str = "enrollment_id";
}

impl Record for Goal {
    const TABLE: &'static str = "plan_goals";
    const COLUMNS: &'static [&'static str] = &[
        "plan_id",
        "description",
        "target_on",
        "status",
        "achievement",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("plan_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.plan_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.plan_id),
            SqlValue::text(&self.description),
            SqlValue::opt_date(self.target_on),
            SqlValue::code(self.status),
            SqlValue::opt_code(self.achievement),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            plan_id: r.parse("plan_id")?,
            description: r.parse("description")?,
            target_on: r.opt_date("target_on")?,
            status: r.parse("status")?,
            achievement: r.opt_parse("achievement")?,
        })
    }
}

impl Child for Goal {
    type Parent = TreatmentPlan;
    const PARENT_COLUMN: &'static str = "plan_id";
}

impl Record for Intervention {
    const TABLE: &'static str = "plan_interventions";
    const COLUMNS: &'static [&'static str] = &[
        "plan_id",
        "modality",
        "sessions_per_week",
        "minutes_per_session",
        "staff_id",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.plan_id),
            SqlValue::code(self.modality),
            SqlValue::int(self.sessions_per_week),
            SqlValue::int(self.minutes_per_session),
            SqlValue::opt_id(self.staff_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            plan_id: r.parse("plan_id")?,
            modality: r.parse("modality")?,
            sessions_per_week: r.small("sessions_per_week")?,
            minutes_per_session: r.small("minutes_per_session")?,
            staff_id: r.opt_parse("staff_id")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        Intervention::check(self)
    }
}

impl Child for Intervention {
    type Parent = TreatmentPlan;
    const PARENT_COLUMN: &'static str = "plan_id";
}

impl Record for PlanReview {
    const TABLE: &'static str = "plan_reviews";
    const COLUMNS: &'static [&'static str] = &["plan_id", "reviewed_on", "reviewer_id", "summary"];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.plan_id),
            SqlValue::date(self.reviewed_on),
            SqlValue::id(self.reviewer_id),
            SqlValue::text(&self.summary),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            plan_id: r.parse("plan_id")?,
            reviewed_on: r.date("reviewed_on")?,
            reviewer_id: r.parse("reviewer_id")?,
            summary: r.parse("summary")?,
        })
    }
}

impl Child for PlanReview {
    type Parent = TreatmentPlan;
    const PARENT_COLUMN: &'static str = "plan_id";
}

impl Record for GoalProgressNote {
    const TABLE: &'static str = "goal_progress_notes";
    const COLUMNS: &'static [&'static str] = &["goal_id", "review_id", "note"];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.goal_id),
            SqlValue::id(self.review_id),
            SqlValue::text(&self.note),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            goal_id: r.parse("goal_id")?,
            review_id: r.parse("review_id")?,
            note: r.parse("note")?,
        })
    }
}

impl Child for GoalProgressNote {
    type Parent = Goal;
    const PARENT_COLUMN: &'static str = "goal_id";
}

impl Record for RelapsePreventionPlan {
    const TABLE: &'static str = "relapse_prevention_plans";
    const COLUMNS: &'static [&'static str] = &["plan_id", "created_on"];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![SqlValue::id(self.plan_id), SqlValue::date(self.created_on)]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            plan_id: r.parse("plan_id")?,
            created_on: r.date("created_on")?,
        })
    }
}

impl Child for RelapsePreventionPlan {
    type Parent = TreatmentPlan;
    const PARENT_COLUMN: &'static str = "plan_id";
}

impl Record for RelapsePlanItem {
    const TABLE: &'static str = "relapse_plan_items";
    const COLUMNS: &'static [&'static str] = &[
        "relapse_plan_id",
        "kind",
        "position",
        "text",
        "support_contact_id",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.relapse_plan_id),
            SqlValue::code(self.kind),
            SqlValue::int(self.position),
            SqlValue::opt_text(self.text.as_ref()),
            SqlValue::opt_id(self.support_contact_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            relapse_plan_id: r.parse("relapse_plan_id")?,
            kind: r.parse("kind")?,
            position: r.small("position")?,
            text: r.opt_parse("text")?,
            support_contact_id: r.opt_parse("support_contact_id")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        RelapsePlanItem::check(self)
    }
}

impl Child for RelapsePlanItem {
    type Parent = RelapsePreventionPlan;
    const PARENT_COLUMN: &'static str = "relapse_plan_id";
}
