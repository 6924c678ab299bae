//! Word lists for synthetic clinic data. Invented, not drawn from any real person's record.

pub const GIVEN_FEMALE: &[&str] = &[
    "Amara", "Beatriz", "Chloe", "Danielle", "Elena", "Fatima", "Grace", "Hannah", "Imani",
    "Jasmine", "Keiko", "Lucia", "Maya", "Nadia", "Olivia", "Priya", "Quinn", "Rosa", "Sofia",
    "Tamar", "Uma", "Valeria", "Wren", "Ximena", "Yasmin", "Zoe", "Aaliyah", "Brianna", "Carmen",
    "Deja",
];
pub const GIVEN_MALE: &[&str] = &[
    "Aaron", "Bilal", "Carlos", "Darius", "Elijah", "Felix", "Gabriel", "Hiro", "Isaac", "Jamal",
    "Kevin", "Luis", "Marcus", "Nathan", "Omar", "Pedro", "Quentin", "Rafael", "Samuel", "Tyrone",
    "Uriel", "Victor", "Wesley", "Xavier", "Yusuf", "Zachary", "Andre", "Brandon", "Cedric",
    "Diego",
];
pub const GIVEN_NEUTRAL: &[&str] = &[
    "Alex", "Avery", "Casey", "Jordan", "Morgan", "Riley", "Rowan", "Sage", "Skyler", "Taylor",
];
pub const FAMILY: &[&str] = &[
    "Abbott",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quintero",
    "Ramirez",
    "Sato",
    "Thompson",
    "Underwood",
    "Vasquez",
    "Washington",
    "Xu",
    "Yilmaz",
    "Zielinski",
    "Anderson",
    "Baptiste",
    "Chen",
    "Delgado",
    "Edwards",
    "Fitzgerald",
    "Garcia",
    "Haddad",
    "Ibrahim",
    "Jensen",
    "Kowalski",
    "Lee",
    "Mensah",
    "Nguyen",
    "O'Brien",
    "Patel",
    "Reyes",
    "Schmidt",
    "Tran",
    "Walker",
    "Young",
    "Zhang",
    "Brooks",
    "Castillo",
    "Dubois",
    "Hernandez",
];
pub const STREETS: &[&str] = &[
    "Maple Ave",
    "Oak St",
    "Cedar Ln",
    "Lakeview Dr",
    "Washington Blvd",
    "Prairie Rd",
    "Elm St",
    "River Rd",
    "Sunset Ct",
    "Hillcrest Ave",
    "Park Pl",
    "Church St",
];
/// (city, state, ZIP prefix) — a metro area the clinic serves.
pub const CITIES: &[(&str, &str, &str)] = &[
    ("Springfield", "IL", "627"),
    ("Decatur", "IL", "625"),
    ("Champaign", "IL", "618"),
    ("Peoria", "IL", "616"),
    ("Bloomington", "IL", "617"),
    ("St. Louis", "MO", "631"),
];
pub const LANGUAGES: &[(&str, u32)] = &[("en", 80), ("es", 14), ("vi", 2), ("zh", 2), ("ar", 2)];

pub const HOSPITALS: &[&str] = &[
    "St. Jude Behavioral Health Hospital",
    "Memorial Medical Center Inpatient Psychiatry",
    "Lakeside Recovery Center (Residential)",
];
pub const OUTPATIENT_PROVIDERS: &[&str] = &[
    "Prairie Community Counseling",
    "Capitol Outpatient Recovery Services",
];
pub const PARTNER_EHRS: &[&str] = &[
    "Central Illinois Health Partners",
    "Heartland Primary Care Network",
];

pub const REFERRAL_REASONS_MH: &[&str] = &[
    "Step-down after inpatient stay for major depressive episode with suicidal ideation; now safety-planned",
    "Step-down after inpatient admission for acute anxiety and panic; needs structured skills work",
    "Step-down after psychiatric hospitalization for bipolar depression; medication stabilised",
    "Step-down after crisis stabilisation for self-harm; DBT-informed care recommended",
];
pub const REFERRAL_REASONS_SUD: &[&str] = &[
    "Step-down after medically managed withdrawal (alcohol) and 14-day residential stay",
    "Step-down after residential treatment for opioid use disorder; on buprenorphine",
    "Step-down after inpatient detox (benzodiazepines); continuing recovery supports",
    "Step-down after residential treatment for stimulant use disorder",
];
pub const REFERRAL_REASONS_ADOLESCENT: &[&str] = &[
    "Step-down after adolescent inpatient stay for depression and school refusal",
    "Step-down after adolescent crisis admission for self-harm",
];

pub const GOALS_MH: &[&str] = &[
    "Reduce PHQ-9 score below 10",
    "Use two distress-tolerance skills when urges to self-harm arise",
    "Return to work part time",
    "Keep a daily mood log and bring it to individual sessions",
    "Sleep at least 7 hours on 5 nights a week",
    "Reconnect with one friend each week",
];
pub const GOALS_SUD: &[&str] = &[
    "Abstain from alcohol and other non-prescribed substances",
    "Attend two mutual-help meetings a week",
    "Take medication for opioid use disorder as prescribed",
    "Identify three high-risk situations and a plan for each",
    "Build a sober support network of at least three people",
];
pub const GOALS_ADOLESCENT: &[&str] = &[
    "Attend school at least four days a week",
    "Use a coping skill instead of self-harm",
    "Join one family session every other week",
    "Reduce arguments at home to fewer than two a week",
];

pub const TRIGGERS: &[&str] = &[
    "Payday and having cash on hand",
    "Conflict with family about money",
    "Being alone on weekend evenings",
    "Passing the bar on the way home",
    "Anniversary of a loss",
    "Work deadlines and criticism",
    "Poor sleep for several nights",
    "Seeing old using friends",
    "Social media late at night",
];
pub const WARNING_SIGNS: &[&str] = &[
    "Skipping meals or sleeping all day",
    "Romanticising past use",
    "Withdrawing from friends and group",
    "Missing medication doses",
    "Feeling hopeless for more than two days",
    "Irritability and picking fights",
];
pub const COPING_SKILLS: &[&str] = &[
    "TIPP: cold water on the face, paced breathing",
    "Call my sponsor or support person",
    "Urge surfing for 20 minutes",
    "Walk around the block and text a check-in",
    "Use the 5-4-3-2-1 grounding exercise",
    "Play the tape forward",
    "Opposite action: go to the gym instead of isolating",
    "Attend an extra meeting",
];
pub const REVIEW_SUMMARIES: &[&str] = &[
    "Weekly review: engaged in group, attendance steady",
    "Weekly review: one missed day, discussed barriers to attendance",
    "Weekly review: mood improving, continue current plan",
    "Weekly review: increased cravings this week, added coping skill practice",
    "Weekly review: family session helpful, continue biweekly",
];
pub const PROGRESS_NOTES: &[&str] = &[
    "Progressing as planned",
    "Some progress; setback midweek, discussed in individual session",
    "Goal met this week",
    "No change; revisit strategies next week",
    "Improving; client reports more confidence",
];
pub const OTHER_RELATIONSHIPS: &[&str] = &[
    "godmother",
    "sponsor",
    "roommate",
    "former foster parent",
    "mentor",
];
