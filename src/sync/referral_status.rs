//! The closed loop of a referral (HL7 BSeR): a hospital that sent a referral keeps its own Task,
//! and the clinic, as its owner, writes its decisions into that Task — status, business status,
//! status reason, outputs — rather than sending a Task of its own. A push to the target that
//! holds the referring side's Task does this for every referral it sent whose Task changed since
//! it was last reported (read, changed, written back with `If-Match`; a 412 reads again).
//! Consent decides as for any push: a Task the hospital may not see is not reported.

use serde_json::Value;

use super::SyncError;
use super::push::PushRun;
use crate::assemble::Assembler;
use crate::mapping::{FEEDBACK_OUTPUT as FEEDBACK, task_status_update};
use crate::outbound::target::{FhirRequest, TargetError};
use crate::referrals::feedback::{self, Stay};
use crate::store::{SourcedReferral, SyncedResource};

/// The identity-map key of a referral reported into the referring side's Task (not `Task`: the
/// clinic's own Task is never written there).
pub const REPORTED: &str = "Task#status";

/// How often a report is tried when the hospital changes its Task meanwhile (412).
const ATTEMPTS: usize = 3;

/// The id at the end of `Type/id` URL.
pub fn remote_id(url: &str) -> Option<String> {
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

impl PushRun<'_> {
    /// Reports every referral this target sent whose Task changed since the last report.
    pub(super) async fn report_referral_status(
        &self,
        sourced: &[SourcedReferral],
    ) -> Result<(), SyncError> {
        let store = &self.engine.store;
        let name = &self.target.name;
        let assembler = Assembler::new(store, &self.engine.mapping, self.today);
        for chunk in sourced.chunks(200) {
            self.check_lease()?;
            let ids: Vec<String> = chunk.iter().map(|s| s.referral_id.to_string()).collect();
            let tasks = assembler.by_ids("Task", &ids).await?;
            for referral in chunk {
                let id = referral.referral_id.to_string();
                let Some(ours) = tasks.get(&id) else { continue };
                let version: i64 = ours
                    .pointer("/meta/versionId")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let entry = store.synced(name, REPORTED, &id).await?;
                if entry.as_ref().and_then(|e| e.synced_version) == Some(version) {
                    self.counters.add(&self.counters.unchanged);
                    continue;
                }
                let admitted = self
                    .gate
                    .lock()
                    .await
                    .admit(store, vec![ours.clone()])
                    .await?;
                let Some(ours) = admitted.into_iter().next() else {
                    self.counters.add(&self.counters.withheld);
                    continue;
                };
                if self.options.dry_run {
                    self.counters.add(&self.counters.updated);
                    continue;
                }
                // A fulfilled referral's Task carries the feedback document.
                let stay = if feedback::has_feedback(&ours) {
                    let mut gate = self.gate.lock().await;
                    Some(feedback::stay(store, &assembler, &mut gate, &id, &ours).await?)
                } else {
                    None
                };
                let remote_version = self
                    .write_status(&referral.source_task, &ours, &id, stay.as_ref())
                    .await?;
                store
                    .put_synced(&SyncedResource {
                        target: name.clone(),
                        resource_type: REPORTED.to_owned(),
                        local_id: id.clone(),
                        remote_id: remote_id(&referral.source_task),
                        remote_version,
                        synced_version: Some(version),
                        remote_hash: None,
                        create_sent_at: None,
                    })
                    .await?;
                self.counters.add(&self.counters.updated);
                tracing::info!(target_name = %name, referral = %id, "referral status reported");
            }
        }
        Ok(())
    }

    /// Writes the feedback document at the target (at its own id, the referral's, where the
    /// target lets a client choose ids; else found by its identifier or created): the reference
    /// to it.
    async fn put_feedback(&self, document: Value) -> Result<String, SyncError> {
        let failed = |reason: String| SyncError::Target {
            target: self.target.name.clone(),
            reason,
        };
        let identifier = format!(
            "{}|{}",
            document["identifier"]["system"]
                .as_str()
                .unwrap_or_default(),
            document["identifier"]["value"].as_str().unwrap_or_default()
        );
        let referral = document["identifier"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let existing = if self.capabilities.update_create.contains("Bundle") {
            Some(referral)
        } else {
            let query = serde_urlencoded::to_string([("identifier", identifier.as_str())])
                .unwrap_or_default();
            let found = self
                .fhir
                .send(FhirRequest::get(format!("Bundle?{query}")))
                .await
                .map_err(|e| failed(e.to_string()))?;
            found
                .body
                .as_ref()
                .and_then(|b| b.pointer("/entry/0/resource/id"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let (request, id) = match existing {
            Some(id) => {
                let mut document = document;
                document["id"] = Value::String(id.clone());
                (FhirRequest::put(format!("Bundle/{id}"), document), Some(id))
            }
            None => (FhirRequest::post("Bundle", document), None),
        };
        let answer = self
            .fhir
            .send(request)
            .await
            .map_err(|e| failed(e.to_string()))?;
        if !(200..300).contains(&answer.status) {
            return Err(failed(format!(
                "the target refused the referral feedback document ({})",
                answer.status
            )));
        }
        let id = id
            .or_else(|| {
                answer
                    .body
                    .as_ref()
                    .and_then(|b| b.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .or_else(|| {
                answer
                    .location
                    .as_deref()
                    .and_then(|l| l.split("/_history/").next())
                    .and_then(remote_id)
            })
            .ok_or_else(|| {
                failed("the target did not say where the feedback document is".into())
            })?;
        Ok(format!("Bundle/{id}"))
    }

    /// Reads the hospital's Task, puts the clinic's status into it (and, once the referral is
    /// fulfilled, the feedback document), writes it at the version read; the version it became.
    async fn write_status(
        &self,
        url: &str,
        ours: &Value,
        referral: &str,
        stay: Option<&Stay>,
    ) -> Result<Option<String>, SyncError> {
        let failed = |reason: String| SyncError::Target {
            target: self.target.name.clone(),
            reason,
        };
        for attempt in 1..=ATTEMPTS {
            let read = self
                .fhir
                .send(FhirRequest::get(url))
                .await
                .map_err(|e| failed(e.to_string()))?;
            let Some(theirs) = read.body.filter(|_| read.status == 200) else {
                return Err(failed(format!(
                    "the referring side's Task could not be read ({})",
                    read.status
                )));
            };
            let mut updated = task_status_update(&theirs, ours);
            if let Some(stay) = stay {
                // Theirs names the document where they keep it, not where the clinic serves it.
                if let Some(outputs) = updated.get_mut("output").and_then(Value::as_array_mut) {
                    outputs.retain(|o| o["type"]["text"] != FEEDBACK);
                }
                let document = stay.document(
                    &self.engine.mapping,
                    referral,
                    theirs["for"].clone(),
                    theirs["focus"].clone(),
                );
                let reference = self.put_feedback(document).await?;
                let output = serde_json::json!({
                    "type": { "text": FEEDBACK },
                    "valueReference": { "reference": reference },
                });
                match updated.get_mut("output").and_then(Value::as_array_mut) {
                    Some(outputs) => outputs.push(output),
                    None => updated["output"] = serde_json::json!([output]),
                }
            }
            let mut request = FhirRequest::put(url, updated);
            if let Some(etag) = read.etag.clone().or_else(|| {
                theirs
                    .pointer("/meta/versionId")
                    .and_then(Value::as_str)
                    .map(|v| format!("W/\"{v}\""))
            }) {
                request = request.if_match(etag);
            }
            match self.fhir.send(request).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    return Ok(answer.etag.or_else(|| {
                        answer
                            .body
                            .as_ref()
                            .and_then(|b| b.pointer("/meta/versionId"))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    }));
                }
                Ok(answer) if answer.status == 412 || answer.status == 409 => {
                    self.counters.add(&self.counters.conflicts);
                    if attempt == ATTEMPTS {
                        return Err(failed(
                            "the referring side's Task kept changing while it was updated".into(),
                        ));
                    }
                }
                Ok(answer) => {
                    return Err(failed(format!(
                        "the referring side refused the Task's new status ({})",
                        answer.status
                    )));
                }
                // A lost answer: reading again shows whether it was applied; writing the same
                // status again is harmless (the update is idempotent).
                Err(TargetError::OutcomeUnknown { .. }) => {
                    self.counters.add(&self.counters.reconciled);
                }
                Err(e) => return Err(failed(e.to_string())),
            }
        }
        Err(failed(
            "the referring side's Task could not be updated".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remote_id_is_the_last_segment() {
        assert_eq!(
            remote_id("https://h.example/fhir/Task/abc").as_deref(),
            Some("abc")
        );
    }
}
