//! A push run: the clinic's change log, from the target's checkpoint, window by window. Each
//! window's resources are assembled, passed through the disclosure gate (the target's
//! organization is the recipient), validated against their IOP profiles, their references
//! rewritten to the target's ids, and written (`write.rs`); the checkpoint moves only after the
//! whole window is confirmed, and only as far as `checkpoint::safe_checkpoint` allows.
//! Whatever a crash interrupts is looked at again by the next run; what the identity map says the
//! target already holds at that version is not sent again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::{StreamExt, stream};
use serde_json::Value;

use super::checkpoint::safe_checkpoint;
use super::counters::Counters;
use super::lease::Lease;
use super::plan::Plan;
use super::references::{self, Resolved};
use super::write::{self, Outgoing, WriteError, Writer, Written};
use super::{CreateWith, Engine, RunOptions, SyncError};
use crate::assemble::{AssembleError, Assembler};
use crate::disclose::{Gate, NOT_ABOUT_A_CLIENT};
use crate::outbound::target::{Capabilities, FhirTarget};
use crate::store::{DeadLetter, Filter, StoreError, SyncTarget, SyncedResource};

/// Change-log entries read per window.
const WINDOW: u32 = 2_000;
/// Resources assembled per batch within a window.
const BATCH: usize = 200;
/// How deep references are followed to send what a resource needs first.
const MAX_DEPTH: usize = 4;

/// One push of one target, holding its lease.
pub(super) struct PushRun<'r> {
    pub engine: &'r Engine,
    pub target: &'r SyncTarget,
    pub fhir: &'r FhirTarget,
    pub capabilities: &'r Capabilities,
    /// The types this target takes (its list, as far as its CapabilityStatement has them).
    pub types: Vec<String>,
    pub options: &'r RunOptions,
    pub lease: Option<&'r Lease>,
    pub counters: &'r Counters,
    pub gate: tokio::sync::Mutex<Gate>,
    pub today: chrono::NaiveDate,
    /// One send of a resource at a time (a resource needed by two others is sent once).
    pub locks: KeyLocks,
    /// Resources in the dead-letter list when the run began (cleared when they go through).
    pub dead: HashSet<(String, String)>,
    /// Resources this run put in the dead-letter list: not tried again when something else
    /// refers to them.
    pub rejected: std::sync::Mutex<HashSet<(String, String)>>,
    /// The target's ids of resources this run found there or sent (the run holds the target's
    /// lease, so nobody else changes them), and None for what cannot go there (withheld,
    /// absent, rejected): references resolve without a query and an assembly each. A None
    /// holds for the run: the gate decides each client with the consents it read when it first
    /// met the client, so a withheld resource stays withheld until the next run; one absent
    /// then written later in the run is sent through its own change, which records its id here.
    pub known: std::sync::Mutex<HashMap<(String, String), Option<String>>>,
    /// Clients whose records this run judged again after a consent change (once is enough: the
    /// gate's view of a client does not change within a run).
    pub rejudged: std::sync::Mutex<HashSet<String>>,
    /// Dry run: what it counted as sent (what refers to it later resolves, as in a real run).
    pub dry_sent: std::sync::Mutex<HashSet<(String, String)>>,
    /// Referrals this target sent (it keeps their Task and ServiceRequest), by referral id: their
    /// Task's status goes back into the target's own Task (`referral_status`), and references to
    /// them resolve to the target's resources; the clinic's copies are never sent there.
    pub sourced: HashMap<String, crate::store::SourcedReferral>,
}

impl PushRun<'_> {
    /// Runs every window of changes after the checkpoint; returns the checkpoint reached.
    pub async fn run(&self, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<i64, SyncError> {
        let store = &self.engine.store;
        let name = &self.target.name;
        let mut durable = self.target.push_checkpoint;
        let total = (store.newest_change().await? - durable).max(0) as u64;
        progress(0, total);
        if self.options.retry_dead_letters {
            self.retry_dead_letters().await?;
        }
        {
            let mut known = self.known.lock().expect("known ids");
            for (id, referral) in &self.sourced {
                let remote = |url: &Option<String>| {
                    url.as_deref().and_then(super::referral_status::remote_id)
                };
                known.insert(
                    ("Task".to_owned(), id.clone()),
                    remote(&Some(referral.source_task.clone())),
                );
                if let Some(request) = remote(&referral.source_request) {
                    known.insert(("ServiceRequest".to_owned(), id.clone()), Some(request));
                }
            }
        }
        let mut cursor = durable;
        let mut seen: Vec<(i64, chrono::DateTime<chrono::Utc>)> = Vec::new();
        loop {
            self.check_lease()?;
            let changes = store.changes_after(cursor, WINDOW).await?;
            let Some(last) = changes.last() else { break };
            cursor = last.seq;
            let plan = Plan::of(&changes, &self.types);
            for (resource_type, ids) in &plan.sends {
                let ids: Vec<String> = ids.iter().cloned().collect();
                self.send_ids(resource_type, &ids).await?;
            }
            self.rejudge_clients_of(&plan.consents).await?;
            for (resource_type, id) in &plan.deletes {
                self.check_lease()?;
                if self.options.dry_run {
                    continue;
                }
                if write::delete(self.fhir, store, name, resource_type, id)
                    .await
                    .map_err(|e| self.fatal(e))?
                {
                    self.counters.add(&self.counters.deleted);
                }
            }
            seen.extend(changes.iter().map(|c| (c.seq, c.changed_at.as_datetime())));
            let safe = safe_checkpoint(
                durable,
                &seen,
                chrono::Utc::now(),
                self.options.commit_grace,
            );
            if safe > durable && !self.options.dry_run {
                let holder = self.lease.map(Lease::holder).unwrap_or_default();
                if !store.advance_push_checkpoint(name, holder, safe).await? {
                    return Err(SyncError::LeaseLost(name.clone()));
                }
                durable = safe;
                seen.retain(|(seq, _)| *seq > durable);
            }
            progress((cursor - self.target.push_checkpoint).max(0) as u64, total);
        }
        if self.types.iter().any(|t| t == "Task") && !self.sourced.is_empty() {
            let sourced: Vec<_> = self.sourced.values().cloned().collect();
            self.report_referral_status(&sourced).await?;
        }
        Ok(durable)
    }

    /// Sends what the dead-letter list holds for this target, as it is now.
    async fn retry_dead_letters(&self) -> Result<(), SyncError> {
        let letters = self
            .engine
            .store
            .dead_letters(Some(&self.target.name))
            .await?;
        let mut by_type: HashMap<&str, Vec<String>> = HashMap::new();
        let wanted = |l: &&crate::store::DeadLetter| {
            l.direction == "push"
                && self
                    .options
                    .retry_only
                    .as_ref()
                    .is_none_or(|(resource_type, id)| {
                        &l.resource_type == resource_type && &l.local_id == id
                    })
        };
        for letter in letters.iter().filter(wanted) {
            by_type
                .entry(letter.resource_type.as_str())
                .or_default()
                .push(letter.local_id.clone());
        }
        for resource_type in super::plan::PUSH_ORDER {
            if let Some(ids) = by_type.get(resource_type) {
                self.send_ids(resource_type, ids).await?;
            }
        }
        Ok(())
    }

    /// Assembles, gates and sends the resources of `resource_type` with these ids.
    async fn send_ids(&self, resource_type: &str, ids: &[String]) -> Result<(), SyncError> {
        for batch in ids.chunks(BATCH) {
            self.check_lease()?;
            let found = self.assemble(resource_type, batch).await?;
            // Keep the change log's order within a type (ids sort the same on every run).
            let mut resources: Vec<Value> = batch
                .iter()
                .filter_map(|id| found.get(id).cloned())
                .collect();
            resources.dedup_by(|a, b| a["id"] == b["id"]);
            self.send_all(resource_type, resources).await?;
        }
        Ok(())
    }

    /// Every resource of the clients whose consents changed is judged again: what a new
    /// consent permits goes now (what the target already holds is not sent again).
    async fn rejudge_clients_of(
        &self,
        consents: &std::collections::BTreeSet<String>,
    ) -> Result<(), SyncError> {
        // A first push walks every record of every client anyway (every write of every row is
        // in the change log): judging them again would decide the same (see `rejudged`).
        if consents.is_empty() || self.target.push_checkpoint == 0 {
            return Ok(());
        }
        let ids: Vec<crate::domain::Id<crate::domain::Consent>> =
            consents.iter().filter_map(|id| id.parse().ok()).collect();
        let clients: Vec<String> = self
            .engine
            .store
            .get_many(&ids)
            .await?
            .into_iter()
            .map(|c| c.record.client_id.to_string())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let clients: Vec<String> = {
            let mut rejudged = self.rejudged.lock().expect("rejudged clients");
            clients
                .into_iter()
                .filter(|c| rejudged.insert(c.clone()))
                .collect()
        };
        if clients.is_empty() {
            return Ok(());
        }
        let assembler = Assembler::new(&self.engine.store, &self.engine.mapping, self.today);
        for resource_type in super::plan::PUSH_ORDER {
            if NOT_ABOUT_A_CLIENT.contains(&resource_type)
                || !self.types.iter().any(|t| t == resource_type)
            {
                continue;
            }
            match self.rejudge(&assembler, resource_type, &clients).await {
                // A record the gateway cannot read: judged client by client, so only the
                // unreadable one's client waits (the record itself is a dead letter through its
                // own change).
                Err(error) if unreadable(&error) => {
                    for client in &clients {
                        let one = std::slice::from_ref(client);
                        match self.rejudge(&assembler, resource_type, one).await {
                            Err(error) if unreadable(&error) => {
                                tracing::warn!(target_name = %self.target.name, resource_type, client = %client, "a record of the client cannot be read; its records of this type wait for their next change");
                            }
                            other => other?,
                        }
                    }
                }
                other => other?,
            }
        }
        Ok(())
    }

    /// Sends the resources of one type about these clients (as consent now decides).
    async fn rejudge(
        &self,
        assembler: &Assembler<'_>,
        resource_type: &str,
        clients: &[String],
    ) -> Result<(), SyncError> {
        let filter: Filter = if resource_type == "Patient" {
            Filter::one_of(
                "id",
                clients.iter().map(crate::store::SqlValue::text).collect(),
            )
        } else {
            crate::fhir_api::of_clients(resource_type, clients)
        };
        let mut after: Option<String> = None;
        loop {
            self.check_lease()?;
            let page = assembler
                .page(
                    resource_type,
                    std::slice::from_ref(&filter),
                    crate::assemble::Keyset::After(after.as_deref()),
                    BATCH as u32,
                )
                .await?;
            self.send_all(resource_type, page.resources).await?;
            match (page.full, page.last_row) {
                (true, Some(last)) => after = Some(last),
                _ => return Ok(()),
            }
        }
    }

    /// Whether this type goes in batch Bundles: the target takes them, and each resource's id
    /// there is known before sending (the clinic's), so a resent batch makes nothing twice.
    fn batches(&self, resource_type: &str) -> bool {
        !self.options.dry_run
            && self.options.batch
            && self.capabilities.batch
            && self.writer().create_with(resource_type) == CreateWith::ClientId
    }

    /// Gates a batch, then sends what may go, several at once.
    async fn send_all(&self, resource_type: &str, resources: Vec<Value>) -> Result<(), SyncError> {
        // The target's own referrals: their status goes back into its Task instead.
        let resources: Vec<Value> = if matches!(resource_type, "Task" | "ServiceRequest") {
            resources
                .into_iter()
                .filter(|r| {
                    let theirs = r["id"]
                        .as_str()
                        .is_some_and(|id| self.sourced.contains_key(id));
                    if theirs {
                        self.counters.add(&self.counters.processed);
                    }
                    !theirs
                })
                .collect()
        } else {
            resources
        };
        let offered = resources.len();
        let admitted = self
            .gate
            .lock()
            .await
            .admit(&self.engine.store, resources)
            .await?;
        for _ in admitted.len()..offered {
            self.counters.add(&self.counters.withheld);
            self.counters.add(&self.counters.processed);
        }
        let mut preloaded = self.preload(resource_type, &admitted).await?;
        let admitted: Vec<(Value, Option<Preloaded>)> = admitted
            .into_iter()
            .map(|resource| {
                let id = resource["id"].as_str().unwrap_or_default().to_owned();
                let one = preloaded.remove(&id);
                (resource, one)
            })
            .collect();
        if self.batches(resource_type) {
            return self.send_batched(resource_type, admitted).await;
        }
        let concurrency = self.options.limits.concurrency.max(1);
        let mut results = stream::iter(admitted)
            .map(|(resource, preloaded)| {
                self.send_one(resource_type, resource, Vec::new(), preloaded)
            })
            .buffer_unordered(concurrency);
        let mut first_error = None;
        while let Some(result) = results.next().await {
            if let Err(error) = result
                && first_error.is_none()
            {
                first_error = Some(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Sends one admitted resource (and first what it refers to); the target's id of it, or None
    /// when it did not go (rejected, or a dry run).
    fn send_one<'a>(
        &'a self,
        resource_type: &'a str,
        resource: Value,
        chain: Vec<(String, String)>,
        preloaded: Option<Preloaded>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<String>, SyncError>> + Send + 'a>,
    > {
        Box::pin(async move {
            let key = (
                resource_type.to_owned(),
                resource["id"].as_str().unwrap_or_default().to_owned(),
            );
            let _one_at_a_time = self.locks.lock(&key).await;
            let ready = match self
                .prepare(resource_type, resource, chain, preloaded)
                .await?
            {
                Prepared::Done(remote) => return Ok(remote),
                Prepared::Ready(ready) => ready,
            };
            let written = self
                .writer()
                .write(&ready.outgoing(&self.target.name, resource_type))
                .await
                .map_err(|e| self.fatal(e))?;
            self.finish(resource_type, &ready, written).await
        })
    }

    /// Sends admitted resources of a type whose target ids are known before sending, in
    /// `batch` Bundles (each resource once, whatever refers to it meanwhile).
    fn send_batched<'a>(
        &'a self,
        resource_type: &'a str,
        admitted: Vec<(Value, Option<Preloaded>)>,
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(self.send_batched_inner(resource_type, admitted))
    }

    async fn send_batched_inner(
        &self,
        resource_type: &str,
        admitted: Vec<(Value, Option<Preloaded>)>,
    ) -> Result<(), SyncError> {
        let concurrency = self.options.limits.concurrency.max(1);
        let mut prepared = stream::iter(admitted)
            .map(|(resource, preloaded)| self.prepare_locked(resource_type, resource, preloaded))
            .buffered(concurrency);
        let mut ready = Vec::new();
        while let Some(result) = prepared.next().await {
            if let Prepared::Ready(one) = result? {
                ready.push(one);
            }
        }
        drop(prepared);
        let sends: Vec<BoxFuture<'_, Result<(), SyncError>>> = ready
            .chunks(BATCH_ENTRIES)
            .map(|chunk| self.send_chunk(resource_type, chunk))
            .collect();
        let mut batches = stream::iter(sends).buffer_unordered(concurrency.div_ceil(2));
        let mut first_error = None;
        while let Some(result) = batches.next().await {
            if let Err(error) = result
                && first_error.is_none()
            {
                first_error = Some(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// `prepare`, holding the resource's lock (boxed: a `Send` future for the stream).
    fn prepare_locked<'a>(
        &'a self,
        resource_type: &'a str,
        resource: Value,
        preloaded: Option<Preloaded>,
    ) -> BoxFuture<'a, Result<Prepared, SyncError>> {
        Box::pin(async move {
            let key = (
                resource_type.to_owned(),
                resource["id"].as_str().unwrap_or_default().to_owned(),
            );
            let _one_at_a_time = self.locks.lock(&key).await;
            self.prepare(resource_type, resource, Vec::new(), preloaded)
                .await
        })
    }

    /// One batch Bundle's write, then each resource's bookkeeping.
    fn send_chunk<'a>(
        &'a self,
        resource_type: &'a str,
        chunk: &'a [Ready],
    ) -> BoxFuture<'a, Result<(), SyncError>> {
        Box::pin(async move {
            let outs: Vec<Outgoing<'_>> = chunk
                .iter()
                .map(|r| r.outgoing(&self.target.name, resource_type))
                .collect();
            let written = self
                .writer()
                .write_batch(&outs)
                .await
                .map_err(|e| self.fatal(e))?;
            for (one, written) in chunk.iter().zip(written) {
                self.finish(resource_type, one, written).await?;
            }
            Ok(())
        })
    }

    /// Everything before a resource's write: unchanged since the last sync? valid? then what it
    /// refers to sent first, and references rewritten to the target's ids.
    async fn prepare(
        &self,
        resource_type: &str,
        resource: Value,
        chain: Vec<(String, String)>,
        preloaded: Option<Preloaded>,
    ) -> Result<Prepared, SyncError> {
        self.check_lease()?;
        let store = &self.engine.store;
        let name = &self.target.name;
        let local_id = resource["id"].as_str().unwrap_or_default().to_owned();
        let local_version: i64 = resource
            .pointer("/meta/versionId")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let key = (resource_type.to_owned(), local_id.clone());
        // What the batch looked up holds unless this run has sent the resource since (every
        // send records it in `known`): then the identity map is read again.
        let sent_since = self.known.lock().expect("known ids").contains_key(&key);
        let (entry, issues) = match preloaded {
            Some(one) if !sent_since => (one.entry, one.issues),
            _ => (store.synced(name, resource_type, &local_id).await?, None),
        };
        let mut held = entry.as_ref().and_then(|e| e.remote_id.clone());
        if chain.is_empty() {
            self.counters.add(&self.counters.processed);
        }
        // A dry run counts a resource it would send once, as a real run does.
        if self.options.dry_run && self.dry_sent.lock().expect("dry-run set").contains(&key) {
            if chain.is_empty() {
                self.counters.add(&self.counters.unchanged);
            }
            return Ok(Prepared::Done(Some(local_id)));
        }
        if held.is_some() && entry.as_ref().and_then(|e| e.synced_version) == Some(local_version) {
            if chain.is_empty() {
                self.counters.add(&self.counters.unchanged);
            }
            return Ok(Prepared::Done(held));
        }
        if self.rejected.lock().expect("rejected set").contains(&key) {
            return Ok(Prepared::Done(None));
        }
        // Invalid at the source: the dead-letter list, not the target.
        let issues = match issues {
            Some(issues) => issues,
            None => self.validate(resource_type, &resource).await,
        };
        if issues.iter().any(crate::validation::Issue::is_error) {
            let outcome = crate::validation::operation_outcome(&issues);
            self.reject(resource_type, &local_id, local_version, None, &outcome)
                .await?;
            return Ok(Prepared::Done(None));
        }
        let Some(identifier) = self.engine.mapping.own_identifier(&resource) else {
            let outcome = super::message_outcome("the resource has no clinic identifier");
            self.reject(resource_type, &local_id, local_version, None, &outcome)
                .await?;
            return Ok(Prepared::Done(None));
        };
        let mut chain = chain;
        chain.push(key.clone());
        let mut body = outgoing_body(resource);
        let mut resolved: HashMap<(String, String), Resolved> = HashMap::new();
        for (ref_type, ref_id) in references::references(&body) {
            let remote = if chain.len() <= MAX_DEPTH
                && self.types.contains(&ref_type)
                && !chain.contains(&(ref_type.clone(), ref_id.clone()))
            {
                self.ensure_sent(&ref_type, &ref_id, chain.clone()).await?
            } else {
                None
            };
            let resolution = match remote {
                Some(remote) => Resolved::Remote(remote),
                None => match self.engine.mapping.record_system(&ref_type) {
                    Some(system) => Resolved::Logical(system),
                    None => Resolved::DisplayOnly,
                },
            };
            resolved.insert((ref_type, ref_id), resolution);
        }
        references::rewrite(&mut body, &mut |t, id| {
            resolved
                .get(&(t.to_owned(), id.to_owned()))
                .cloned()
                .unwrap_or(Resolved::DisplayOnly)
        });
        if self.options.dry_run {
            let counter = if held.is_some() {
                &self.counters.updated
            } else {
                &self.counters.created
            };
            self.counters.add(counter);
            // What refers to it later resolves from memory, as after a real send.
            self.known
                .lock()
                .expect("known ids")
                .insert(key.clone(), Some(local_id.clone()));
            self.dry_sent.lock().expect("dry-run set").insert(key);
            return Ok(Prepared::Done(held.take().or(Some(local_id))));
        }
        Ok(Prepared::Ready(Ready {
            local_id,
            local_version,
            identifier,
            body,
        }))
    }

    /// Counts a write, puts a refusal in the dead-letter list, clears a letter that went through;
    /// the target's id of the resource when it is there.
    async fn finish(
        &self,
        resource_type: &str,
        ready: &Ready,
        written: Written,
    ) -> Result<Option<String>, SyncError> {
        let store = &self.engine.store;
        let name = &self.target.name;
        let remote = match written {
            Written::Created(remote) => {
                self.counters.add(&self.counters.created);
                remote
            }
            Written::Updated(remote) => {
                self.counters.add(&self.counters.updated);
                remote
            }
            Written::Refused(status, outcome) => {
                self.reject(
                    resource_type,
                    &ready.local_id,
                    ready.local_version,
                    Some(status),
                    &outcome,
                )
                .await?;
                return Ok(None);
            }
        };
        if self
            .dead
            .contains(&(resource_type.to_owned(), ready.local_id.clone()))
        {
            store
                .clear_dead_letter(name, "push", resource_type, &ready.local_id)
                .await?;
        }
        self.known.lock().expect("known ids").insert(
            (resource_type.to_owned(), ready.local_id.clone()),
            Some(remote.clone()),
        );
        Ok(Some(remote))
    }

    fn writer(&self) -> Writer<'_> {
        Writer {
            fhir: self.fhir,
            capabilities: self.capabilities,
            store: &self.engine.store,
            counters: self.counters,
            create_with: self.options.create_with,
        }
    }

    /// The target's id of a resource a send refers to, sending it first if the target lacks it
    /// and consent lets it go.
    async fn ensure_sent(
        &self,
        resource_type: &str,
        local_id: &str,
        chain: Vec<(String, String)>,
    ) -> Result<Option<String>, SyncError> {
        let key = (resource_type.to_owned(), local_id.to_owned());
        if let Some(known) = self.known.lock().expect("known ids").get(&key) {
            return Ok(known.clone());
        }
        let remote = self.find_or_send(resource_type, local_id, chain).await?;
        self.known
            .lock()
            .expect("known ids")
            .insert(key, remote.clone());
        Ok(remote)
    }

    async fn find_or_send(
        &self,
        resource_type: &str,
        local_id: &str,
        chain: Vec<(String, String)>,
    ) -> Result<Option<String>, SyncError> {
        let store = &self.engine.store;
        if let Some(remote) = store
            .synced(&self.target.name, resource_type, local_id)
            .await?
            .and_then(|e| e.remote_id)
        {
            return Ok(Some(remote));
        }
        let found = self
            .assemble(resource_type, std::slice::from_ref(&local_id.to_owned()))
            .await?;
        let Some(resource) = found.get(local_id).cloned() else {
            return Ok(None);
        };
        let admitted = self.gate.lock().await.admit(store, vec![resource]).await?;
        let Some(resource) = admitted.into_iter().next() else {
            return Ok(None);
        };
        self.send_one(resource_type, resource, chain, None).await
    }

    /// The resources of these ids as FHIR. A record the clinic database holds but the gateway
    /// cannot read (written around its rules, e.g. by hand) is invalid at the source: it goes to
    /// the dead-letter list with the reason and the rest go on.
    async fn assemble(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> Result<HashMap<String, Value>, SyncError> {
        let assembler = Assembler::new(&self.engine.store, &self.engine.mapping, self.today);
        match assembler.by_ids(resource_type, ids).await {
            Err(AssembleError::Store(StoreError::Invalid { .. } | StoreError::Corrupt { .. }))
                if ids.len() > 1 =>
            {
                let mut found = HashMap::new();
                for id in ids {
                    found.extend(
                        Box::pin(self.assemble(resource_type, std::slice::from_ref(id))).await?,
                    );
                }
                Ok(found)
            }
            Err(AssembleError::Store(
                invalid @ (StoreError::Invalid { .. } | StoreError::Corrupt { .. }),
            )) => {
                let outcome = super::message_outcome(&format!(
                    "the clinic database holds a record the gateway cannot read: {invalid}"
                ));
                let version = self
                    .engine
                    .store
                    .current_change_version(&ids[0])
                    .await?
                    .unwrap_or(0);
                self.reject(resource_type, &ids[0], version, None, &outcome)
                    .await?;
                Ok(HashMap::new())
            }
            other => Ok(other?),
        }
    }

    /// For a batch about to be prepared: each resource's identity-map entry (one query) and,
    /// for those it does not show as sent at this version, the validator's verdict (on the
    /// blocking pool, a share per core) — instead of a query and a blocking task per resource.
    async fn preload(
        &self,
        resource_type: &str,
        resources: &[Value],
    ) -> Result<HashMap<String, Preloaded>, SyncError> {
        let ids: Vec<String> = resources
            .iter()
            .filter_map(|r| r["id"].as_str().map(str::to_owned))
            .collect();
        let mut entries = self
            .engine
            .store
            .synced_many(&self.target.name, resource_type, &ids)
            .await?;
        let unsent: Vec<&Value> = resources
            .iter()
            .filter(|r| {
                let id = r["id"].as_str().unwrap_or_default();
                let version: Option<i64> = r
                    .pointer("/meta/versionId")
                    .and_then(Value::as_str)
                    .and_then(|v| v.parse().ok());
                entries
                    .get(id)
                    .is_none_or(|e| e.remote_id.is_none() || e.synced_version != version)
            })
            .collect();
        let mut verdicts = self.validate_many(resource_type, &unsent).await;
        let mut out = HashMap::new();
        for id in ids {
            let issues = verdicts.remove(&id);
            out.insert(
                id.clone(),
                Preloaded {
                    entry: entries.remove(&id),
                    issues,
                },
            );
        }
        Ok(out)
    }

    /// `validate` of many resources: a few blocking tasks (one per core) rather than one each.
    async fn validate_many(
        &self,
        resource_type: &str,
        resources: &[&Value],
    ) -> HashMap<String, Vec<crate::validation::Issue>> {
        if resources.is_empty() {
            return HashMap::new();
        }
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let per_task = resources.len().div_ceil(cores);
        let tasks: Vec<_> = resources
            .chunks(per_task)
            .map(|chunk| {
                let chunk: Vec<Value> = chunk.iter().map(|r| (*r).clone()).collect();
                let validator = Arc::clone(&self.engine.validator);
                let profile = self.profile_to_check(resource_type);
                tokio::task::spawn_blocking(move || {
                    chunk
                        .into_iter()
                        .map(|resource| {
                            let required = profile(&resource);
                            let issues = validator.validate(&resource, &required);
                            let id = resource["id"].as_str().unwrap_or_default().to_owned();
                            (id, issues)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut out = HashMap::new();
        for task in tasks {
            // A panicking check: those resources are validated again one by one in `prepare`.
            if let Ok(verdicts) = task.await {
                out.extend(verdicts);
            }
        }
        out
    }

    /// The profiles a resource of this type is checked against: the one it claims
    /// (`meta.profile`, which the validator checks; a type has several, e.g. treatment and
    /// relapse-prevention plans), else the type's IOP profile.
    fn profile_to_check(
        &self,
        resource_type: &str,
    ) -> impl Fn(&Value) -> Vec<String> + Send + 'static {
        let profile = self
            .engine
            .validator
            .iop_profiles()
            .of_type(resource_type)
            .map(str::to_owned);
        move |resource: &Value| {
            let claims_one = resource
                .pointer("/meta/profile")
                .and_then(Value::as_array)
                .is_some_and(|p| !p.is_empty());
            profile.iter().filter(|_| !claims_one).cloned().collect()
        }
    }

    async fn validate(
        &self,
        resource_type: &str,
        resource: &Value,
    ) -> Vec<crate::validation::Issue> {
        let validator = Arc::clone(&self.engine.validator);
        let profile = self.profile_to_check(resource_type);
        let resource = resource.clone();
        tokio::task::spawn_blocking(move || validator.validate(&resource, &profile(&resource)))
            .await
            .unwrap_or_else(|_| {
                vec![crate::validation::Issue {
                    severity: crate::validation::Severity::Fatal,
                    code: "exception",
                    message: "the validator failed on this resource".into(),
                    expression: resource_type.to_owned(),
                }]
            })
    }

    async fn reject(
        &self,
        resource_type: &str,
        local_id: &str,
        local_version: i64,
        status: Option<u16>,
        outcome: &Value,
    ) -> Result<(), StoreError> {
        let key = (resource_type.to_owned(), local_id.to_owned());
        if !self.rejected.lock().expect("rejected set").insert(key) {
            return Ok(());
        }
        self.counters.add(&self.counters.rejected);
        if self.options.dry_run {
            return Ok(());
        }
        tracing::warn!(
            target_name = %self.target.name,
            resource_type,
            id = local_id,
            status,
            "resource put in the dead-letter list"
        );
        let now = crate::domain::Timestamp::now().to_db_text();
        self.engine
            .store
            .put_dead_letter(&DeadLetter {
                target: self.target.name.clone(),
                direction: "push".into(),
                resource_type: resource_type.to_owned(),
                local_id: local_id.to_owned(),
                local_version: Some(local_version),
                http_status: status.map(i64::from),
                reason: outcome.to_string(),
                attempts: 1,
                first_failed: now.clone(),
                last_failed: now,
            })
            .await
    }

    pub(super) fn check_lease(&self) -> Result<(), SyncError> {
        match self.lease {
            Some(lease) if lease.is_lost() => Err(SyncError::LeaseLost(self.target.name.clone())),
            _ => Ok(()),
        }
    }

    fn fatal(&self, error: WriteError) -> SyncError {
        match error {
            WriteError::Store(e) => SyncError::Store(e),
            other => SyncError::Target {
                target: self.target.name.clone(),
                reason: other.to_string(),
            },
        }
    }
}

/// What a batch looked up for one resource before preparing it (`PushRun::preload`).
struct Preloaded {
    /// Its identity-map entry, if it has one.
    entry: Option<SyncedResource>,
    /// The validator's verdict, when the entry did not show it as sent at this version.
    issues: Option<Vec<crate::validation::Issue>>,
}

/// A resource as it is sent: no id (the target's is set for updates) and no version or
/// lastUpdated of the clinic's (the target keeps its own); profiles and labels stay.
fn outgoing_body(mut resource: Value) -> Value {
    if let Some(object) = resource.as_object_mut() {
        object.remove("id");
    }
    if let Some(meta) = resource.get_mut("meta").and_then(Value::as_object_mut) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            resource.as_object_mut().map(|o| o.remove("meta"));
        }
    }
    resource
}

type ResourceKey = (String, String);

/// A record the clinic database holds that the gateway cannot read.
fn unreadable(error: &SyncError) -> bool {
    matches!(
        error,
        SyncError::Assemble(AssembleError::Store(
            StoreError::Invalid { .. } | StoreError::Corrupt { .. }
        )) | SyncError::Store(StoreError::Invalid { .. } | StoreError::Corrupt { .. })
    )
}

/// Resources per batch Bundle.
const BATCH_ENTRIES: usize = 100;

/// What `prepare` made of a resource.
enum Prepared {
    /// Nothing to write (unchanged, rejected, withheld, or a dry run): the target's id, if any.
    Done(Option<String>),
    Ready(Ready),
}

/// A resource ready to write: its body with the target's references.
struct Ready {
    local_id: String,
    local_version: i64,
    identifier: (String, String),
    body: Value,
}

impl Ready {
    fn outgoing<'a>(&'a self, target: &'a str, resource_type: &'a str) -> Outgoing<'a> {
        Outgoing {
            target,
            resource_type,
            local_id: &self.local_id,
            local_version: self.local_version,
            identifier: self.identifier.clone(),
            body: self.body.clone(),
        }
    }
}

/// One async lock per resource key, so concurrent sends of a run never write one resource twice.
#[derive(Default)]
pub(super) struct KeyLocks {
    locks: std::sync::Mutex<HashMap<ResourceKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl KeyLocks {
    pub async fn lock(&self, key: &(String, String)) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(locks.entry(key.clone()).or_default())
        };
        lock.lock_owned().await
    }
}
