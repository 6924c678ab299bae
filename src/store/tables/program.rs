use crate::domain::{Client, Enrollment, EnrollmentState, Program, ProgramIntensity, TherapyGroup};
use crate::store::{Child, Record, RowReader, SqlValue, StoreError};

impl Record for Program {
    const TABLE: &'static str = "programs";
    const COLUMNS: &'static [&'static str] = &[
        "code",
        "name",
        "population",
        "focus",
        "asam_level",
        "part2",
        "delivery",
        "days_per_week",
        "hours_per_week",
    ];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::text(&self.code),
            SqlValue::text(&self.name),
            SqlValue::code(self.population),
            SqlValue::code(self.focus),
            SqlValue::opt_text(self.asam_level.as_ref()),
            SqlValue::bool(self.part2),
            SqlValue::code(self.delivery),
            SqlValue::int(self.intensity.days_per_week()),
            SqlValue::int(self.intensity.hours_per_week()),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            code: r.parse("code")?,
            name: r.parse("name")?,
            population: r.parse("population")?,
            focus: r.parse("focus")?,
            asam_level: r.opt_parse("asam_level")?,
            part2: r.bool("part2")?,
            delivery: r.parse("delivery")?,
            intensity: r.domain(
                "days_per_week",
                ProgramIntensity::new(r.int("days_per_week")?, r.int("hours_per_week")?),
            )?,
        })
    }
}

impl Record for TherapyGroup {
    const TABLE: &'static str = "therapy_groups";
    const COLUMNS: &'static [&'static str] = &["program_id", "name", "modality", "facilitator_id"];
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.program_id),
            SqlValue::text(&self.name),
            SqlValue::code(self.modality),
            SqlValue::id(self.facilitator_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.parse("id")?,
            program_id: r.parse("program_id")?,
            name: r.parse("name")?,
            modality: r.parse("modality")?,
            facilitator_id: r.parse("facilitator_id")?,
        })
    }
}

impl Child for TherapyGroup {
    type Parent = Program;
    const PARENT_COLUMN: &'static str = "program_id";
}

impl Record for Enrollment {
    const TABLE: &'static str = "enrollments";
    const COLUMNS: &'static [&'static str] = &[
        "client_id",
        "program_id",
        "referral_id",
        "referral_source_id",
        "admitted_on",
        "status",
        "discharged_on",
        "discharge_disposition",
        "level_of_care",
        "primary_clinician_id",
    ];
    const OWNER_COLUMN: Option<&'static str> = Some("client_id");
    fn id(&self) -> crate::domain::Id<Self> {
        self.id
    }
    fn owner(&self) -> uuid::Uuid {
        self.client_id.uuid()
    }
    fn values(&self) -> Vec<SqlValue> {
        vec![
            SqlValue::id(self.client_id),
            SqlValue::id(self.program_id),
            SqlValue::opt_id(self.referral_id),
            SqlValue::opt_id(self.referral_source_id),
            SqlValue::date(self.admitted_on),
            SqlValue::text(self.state.code()),
            SqlValue::opt_date(self.state.discharged_on()),
            SqlValue::opt_code(self.state.disposition()),
            SqlValue::code(self.level_of_care),
            SqlValue::id(self.primary_clinician_id),
        ]
    }
    fn from_row(r: &RowReader<'_>) -> Result<Self, StoreError> {
        let state = EnrollmentState::from_parts(
            &r.text("status")?,
            r.opt_date("discharged_on")?,
            r.opt_parse("discharge_disposition")?,
        );
        Ok(Self {
            id: r.parse("id")?,
            client_id: r.parse("client_id")?,
            program_id: r.parse("program_id")?,
            referral_id: r.opt_parse("referral_id")?,
            referral_source_id: r.opt_parse("referral_source_id")?,
            admitted_on: r.date("admitted_on")?,
            state: r.domain("status", state)?,
            level_of_care: r.parse("level_of_care")?,
            primary_clinician_id: r.parse("primary_clinician_id")?,
        })
    }
    fn check(&self) -> Result<(), crate::domain::DomainError> {
        Enrollment::check(self)
    }
}

impl Child for Enrollment {
    type Parent = Client;
    const PARENT_COLUMN: &'static str = "client_id";
}
