//! Disabled clients lose access within seconds, not when their tokens expire: every replica keeps
//! the set of disabled client ids, read from the database every few seconds, and the
//! authenticator refuses their tokens. (Access tokens are checked without a database lookup, so
//! without this a disabled client kept its last token for up to its 5 minutes.)

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::Store;

/// The client ids disabled in the registry, as last read.
#[derive(Clone, Default)]
pub struct DisabledClients {
    ids: Arc<RwLock<HashSet<String>>>,
}

impl DisabledClients {
    pub fn contains(&self, client_id: &str) -> bool {
        self.ids
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(client_id)
    }

    /// Reads the registry once.
    pub async fn refresh(&self, store: &Store) -> Result<(), crate::store::StoreError> {
        let disabled: HashSet<String> = store
            .api_clients()
            .await?
            .into_iter()
            .filter(|c| !c.enabled)
            .map(|c| c.client_id.to_string())
            .collect();
        *self.ids.write().unwrap_or_else(|e| e.into_inner()) = disabled;
        Ok(())
    }

    /// Reads the registry now and then every `every`, for as long as the process runs. A failed
    /// read keeps the last set (and is logged); it does not let anyone in who was out.
    pub async fn watch(
        &self,
        store: Store,
        every: Duration,
    ) -> Result<(), crate::store::StoreError> {
        self.refresh(&store).await?;
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(err) = this.refresh(&store).await {
                    tracing::warn!(error = %err, "could not re-read the disabled API clients");
                }
            }
        });
        Ok(())
    }
}
