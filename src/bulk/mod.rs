//! FHIR Bulk Data Access 2.0 `$export`: kick-off requests (`request`), jobs run by any replica
//! under a lease (`worker`, rows in `bulk_exports`), their files (`files`) written by streaming
//! every resource through the disclosure gate (`run`). The HTTP edge is `fhir_api::bulk`.

pub mod files;
pub mod request;
pub mod run;
pub mod worker;

pub use request::{ExportRequest, KickOffError, Level};
pub use run::{Written, WrittenFile};
pub use worker::BulkSettings;
