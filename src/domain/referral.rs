//! Referrals in (step-down from inpatient care) and out (step-up, or step-down to outpatient care).

use chrono::NaiveDate;

use super::{Client, DomainError, Id, NonEmptyText, Organization, Program};

code_enum! {
    pub enum ReferralDirection {
        Inbound => "inbound",
        Outbound => "outbound",
    }
}

code_enum! {
    pub enum ReferralKind {
        /// To a less intensive level of care (inpatient -> IOP, IOP -> outpatient).
        StepDown => "step_down",
        /// To a more intensive level of care (IOP -> inpatient/residential).
        StepUp => "step_up",
    }
}

code_enum! {
    /// The referral lifecycle (after HL7 BSeR's Task statuses).
    pub enum ReferralStatus {
        /// Outbound: sent, not yet acknowledged.
        Requested => "requested",
        /// Inbound: arrived, not yet decided.
        Received => "received",
        Accepted => "accepted",
        Declined => "declined",
        /// The client was admitted / the referral was fulfilled.
        Completed => "completed",
        Cancelled => "cancelled",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referral {
    pub id: Id<Referral>,
    pub client_id: Id<Client>,
    pub direction: ReferralDirection,
    pub kind: ReferralKind,
    pub status: ReferralStatus,
    pub reason: NonEmptyText,
    pub referred_on: NaiveDate,
    /// When it was accepted, declined, completed or cancelled.
    pub decided_on: Option<NaiveDate>,
    pub referring_org_id: Id<Organization>,
    pub receiving_org_id: Id<Organization>,
    /// For inbound referrals: the program the client is referred to.
    pub program_id: Option<Id<Program>>,
}

impl Referral {
    pub fn check(&self) -> Result<(), DomainError> {
        if self.referring_org_id == self.receiving_org_id {
            return Err(DomainError::Inconsistent(
                "a referral goes from one organization to another",
            ));
        }
        if matches!(self.decided_on, Some(d) if d < self.referred_on) {
            return Err(DomainError::Inconsistent(
                "a referral cannot be decided before it was made",
            ));
        }
        let pending = matches!(
            self.status,
            ReferralStatus::Requested | ReferralStatus::Received
        );
        if pending == self.decided_on.is_some() {
            return Err(DomainError::Inconsistent(
                "a referral has a decision date exactly when it is no longer pending",
            ));
        }
        Ok(())
    }
}
