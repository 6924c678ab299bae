//! A target's lease, held for one sync run: taken (or waited for), renewed by a heartbeat, and
//! released at the end. A holder that dies stops renewing; the lease lapses and another process
//! takes the target over. A run whose renewal fails stops before its next request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::SyncError;
use crate::store::Store;

pub struct Lease {
    store: Store,
    target: String,
    holder: String,
    lost: Arc<AtomicBool>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes `target`'s lease, waiting up to `wait` while another run holds it.
    pub async fn acquire(
        store: &Store,
        target: &str,
        lease: Duration,
        wait: Duration,
    ) -> Result<Lease, SyncError> {
        let holder = format!("sync-{}", uuid::Uuid::new_v4());
        let started = Instant::now();
        let mut told = false;
        while !store.claim_sync_target(target, &holder, lease).await? {
            if started.elapsed() >= wait {
                return Err(SyncError::Busy {
                    target: target.to_owned(),
                    waited: wait.as_secs(),
                });
            }
            if !told {
                tracing::info!(
                    target_name = target,
                    "another process is syncing this target; waiting for it"
                );
                told = true;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let heartbeat = tokio::spawn({
            let (store, target, holder, lost) = (
                store.clone(),
                target.to_owned(),
                holder.clone(),
                Arc::clone(&lost),
            );
            async move {
                loop {
                    tokio::time::sleep(lease / 3).await;
                    match store.renew_sync_lease(&target, &holder, lease).await {
                        Ok(true) => {}
                        Ok(false) | Err(_) => {
                            tracing::warn!(target_name = %target, "lost the sync lease; stopping");
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        });
        Ok(Lease {
            store: store.clone(),
            target: target.to_owned(),
            holder,
            lost,
            heartbeat,
        })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    pub async fn release(self) {
        self.heartbeat.abort();
        if let Err(error) = self
            .store
            .release_sync_lease(&self.target, &self.holder)
            .await
        {
            tracing::warn!(%error, "could not release the sync lease; it lapses on its own");
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}
