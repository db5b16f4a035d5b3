//! The wallet's allowance v2 state: its credential per (class, day) and the slots of each
//! day's schedule it has used. Kept in the wallet file; the slots a presentation takes are
//! recorded in the same atomic write that journals the payment or deposit carrying it, so
//! a slot is never presented twice (a second use would be refused as `allowance_reused`).

use rand_core::Rng;
use serde::{Deserialize, Serialize};

use crate::protocol::credential::presentation::SLOTS_PER_PRESENTATION_MAX;
use crate::protocol::credential::Credential;

/// A credential as the wallet file stores it (hex fields).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredCredential {
    class: String,
    day: u64,
    key_id: String,
    u: String,
    v: String,
}

/// Slots used on one (class, day).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct UsedSlots {
    class: String,
    day: u64,
    slots: Vec<u16>,
}

/// Days a credential and its used slots are kept (a receipt older than this cannot get a
/// credential any more: the issuer answers up to 7 days back).
const KEEP_DAYS: u64 = 8;

/// The v2 part of a wallet.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct V2State {
    #[serde(default)]
    credentials: Vec<StoredCredential>,
    #[serde(default)]
    used: Vec<UsedSlots>,
}

fn hex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok()?.try_into().ok()
}

impl V2State {
    /// The credential for (class, day), if held.
    pub(crate) fn credential(&self, class: &str, day: u64) -> Option<Credential> {
        let c = self
            .credentials
            .iter()
            .find(|c| c.class == class && c.day == day)?;
        Some(Credential {
            key_id: hex32(&c.key_id)?,
            day,
            u: hex32(&c.u)?,
            v: hex32(&c.v)?,
        })
    }

    /// Keeps `credential` for `class` (replacing one of the same day), and forgets what is
    /// older than the issuer would still serve.
    pub(crate) fn insert(&mut self, class: &str, credential: &Credential, today: u64) {
        self.credentials
            .retain(|c| !(c.class == class && c.day == credential.day));
        self.credentials.push(StoredCredential {
            class: class.to_owned(),
            day: credential.day,
            key_id: hex::encode(credential.key_id),
            u: hex::encode(credential.u),
            v: hex::encode(credential.v),
        });
        let horizon = today.saturating_sub(KEEP_DAYS);
        self.credentials.retain(|c| c.day >= horizon);
        self.used.retain(|u| u.day >= horizon);
    }

    /// Takes unused slots of (class, day) worth at least `value`: the cheapest single slot
    /// that covers it, else the largest free ones (at most 8), chosen at random among
    /// equal values so an index says no more than its value. `None` if the day's free
    /// slots cannot cover it (the receive limit). The slots are marked used.
    pub(crate) fn take_slots(
        &mut self,
        class: &str,
        day: u64,
        value: u64,
        schedule: &[u64],
    ) -> Option<Vec<u16>> {
        let used: &[u16] = self
            .used
            .iter()
            .find(|u| u.class == class && u.day == day)
            .map_or(&[], |u| &u.slots);
        let mut free: Vec<(u16, u64)> = schedule
            .iter()
            .enumerate()
            .filter_map(|(i, v)| u16::try_from(i).ok().map(|i| (i, *v)))
            .filter(|(i, _)| !used.contains(i))
            .collect();
        // Shuffle, then a stable sort by value: random order among equal values.
        let mut rng = crate::os_rng();
        for i in (1..free.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            free.swap(i, j);
        }
        free.sort_by_key(|(_, v)| *v);
        let chosen: Vec<u16> = if let Some((i, _)) = free.iter().find(|(_, v)| *v >= value) {
            vec![*i]
        } else {
            let mut sum = 0u64;
            let mut out = Vec::new();
            for (i, v) in free.iter().rev() {
                if sum >= value || out.len() == SLOTS_PER_PRESENTATION_MAX {
                    break;
                }
                sum += v;
                out.push(*i);
            }
            if sum < value {
                return None;
            }
            out
        };
        match self
            .used
            .iter_mut()
            .find(|u| u.class == class && u.day == day)
        {
            Some(u) => u.slots.extend(&chosen),
            None => self.used.push(UsedSlots {
                class: class.to_owned(),
                day,
                slots: chosen.clone(),
            }),
        }
        Some(chosen)
    }

    /// Value of the free slots of (class, day).
    pub(crate) fn free_value(&self, class: &str, day: u64, schedule: &[u64]) -> u64 {
        let used: &[u16] = self
            .used
            .iter()
            .find(|u| u.class == class && u.day == day)
            .map_or(&[], |u| &u.slots);
        schedule
            .iter()
            .enumerate()
            .filter(|(i, _)| u16::try_from(*i).is_ok_and(|i| !used.contains(&i)))
            .map(|(_, v)| *v)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_once_and_cover_the_value_until_the_day_is_spent() {
        let schedule = [1u64, 1, 2, 4, 4];
        let mut s = V2State::default();
        // 3: no single slot of 3, the cheapest covering single slot is a 4.
        let a = s.take_slots("c", 1, 3, &schedule).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(schedule[usize::from(a[0])], 4);
        // 6 from what is left (1, 1, 2, 4): 4 + 2.
        let b = s.take_slots("c", 1, 6, &schedule).unwrap();
        assert_eq!(b.iter().map(|&i| schedule[usize::from(i)]).sum::<u64>(), 6);
        assert!(b.iter().all(|i| !a.contains(i)));
        assert_eq!(s.free_value("c", 1, &schedule), 2);
        // 3 more: only 2 left — over the day's cap.
        assert!(s.take_slots("c", 1, 3, &schedule).is_none());
        // Another day or class has its own slots.
        assert!(s.take_slots("c", 2, 12, &schedule).is_some());
        assert!(s.take_slots("d", 1, 3, &schedule).is_some());
        // Credentials round-trip through the stored form and old ones are forgotten.
        let cred = Credential {
            key_id: [1; 32],
            day: 1,
            u: [2; 32],
            v: [3; 32],
        };
        s.insert("c", &cred, 2);
        assert_eq!(s.credential("c", 1), Some(cred.clone()));
        assert_eq!(s.credential("c", 2), None);
        s.insert("c", &Credential { day: 20, ..cred }, 20);
        assert_eq!(s.credential("c", 1), None, "older than the issuer serves");
        assert_eq!(
            s.free_value("c", 1, &schedule),
            12,
            "its slots forgotten too"
        );
    }
}
