//! Deterministic record ids for seeded data.
//!
//! A seeded id is a UUID version 8 (custom layout): bytes 0–3 the owner (0 for shared clinic
//! records, client index + 1 otherwise), bytes 4–5 a counter within that owner, the rest random
//! from the seeded generator. The (owner, counter) pair makes ids unique without relying on chance,
//! and ids grow with the client index, so bulk inserts append to the primary-key indexes.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use uuid::Uuid;

use crate::domain::Id;

pub struct IdMaker {
    owner: u32,
    counter: u16,
}

impl IdMaker {
    pub fn shared() -> Self {
        Self {
            owner: 0,
            counter: 0,
        }
    }
    pub fn for_client(index: u32) -> Self {
        Self {
            owner: index + 1,
            counter: 0,
        }
    }
    pub fn next<T>(&mut self, rng: &mut ChaCha8Rng) -> Id<T> {
        let mut bytes = [0_u8; 16];
        rng.fill_bytes(&mut bytes[7..]);
        bytes[..4].copy_from_slice(&self.owner.to_be_bytes());
        bytes[4..6].copy_from_slice(&self.counter.to_be_bytes());
        bytes[6] = 0;
        self.counter = self
            .counter
            .checked_add(1)
            .expect("fewer than 65,536 seeded records per client");
        Id::from_uuid(Uuid::new_v8(bytes))
    }
}
