//! [`Tracked`]: a map of records by id that can remember which ids were
//! changed, and their values before, so the embedded store appends only
//! those records to its log and can undo a transition it failed to write.
//!
//! Reads go through `Deref` to the inner map. There is no `DerefMut`: every
//! write goes through [`Tracked::insert`], [`Tracked::remove`] or
//! [`Tracked::get_mut`], which mark the id, so a transition cannot change a
//! record without its id being written (the compiler checks it). Tracking
//! is off until [`Tracked::track`]; the simulator never turns it on and
//! pays one branch per write.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::ops::Deref;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The maps [`Tracked`] wraps: keyed by `String`, or by [`Key`] (inline
/// when short), either looked up by `&str`.
pub trait KeyMap: Default {
    type Key: From<String> + Borrow<str>;
    type Value;
    fn put(&mut self, key: Self::Key, value: Self::Value) -> Option<Self::Value>;
    fn take(&mut self, key: &str) -> Option<Self::Value>;
    fn slot(&mut self, key: &str) -> Option<&mut Self::Value>;
    fn peek(&self, key: &str) -> Option<&Self::Value>;
}

impl<K: From<String> + Borrow<str> + Hash + Eq, V> KeyMap for FxHashMap<K, V> {
    type Key = K;
    type Value = V;
    fn put(&mut self, key: K, value: V) -> Option<V> {
        self.insert(key, value)
    }
    fn take(&mut self, key: &str) -> Option<V> {
        self.remove(key)
    }
    fn slot(&mut self, key: &str) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn peek(&self, key: &str) -> Option<&V> {
        self.get(key)
    }
}

impl<V> KeyMap for BTreeMap<String, V> {
    type Key = String;
    type Value = V;
    fn put(&mut self, key: String, value: V) -> Option<V> {
        self.insert(key, value)
    }
    fn take(&mut self, key: &str) -> Option<V> {
        self.remove(key)
    }
    fn slot(&mut self, key: &str) -> Option<&mut V> {
        self.get_mut(key)
    }
    fn peek(&self, key: &str) -> Option<&V> {
        self.get(key)
    }
}

/// A map of records whose writes can be tracked. Equality and the
/// serialised form are the inner map's alone.
#[derive(Debug, Clone)]
pub struct Tracked<M: KeyMap> {
    map: M,
    /// While tracking: each id written since the last [`Tracked::commit`],
    /// with its value before the first write (`None`: it did not exist).
    dirty: Option<FxHashMap<String, Option<M::Value>>>,
}

impl<M: KeyMap> Default for Tracked<M> {
    fn default() -> Self {
        Tracked {
            map: M::default(),
            dirty: None,
        }
    }
}

impl<M: KeyMap> Tracked<M>
where
    M::Value: Clone,
{
    /// From now on, remember the ids written.
    pub fn track(&mut self) {
        self.dirty.get_or_insert_with(FxHashMap::default);
    }

    /// The ids written since the last commit or rollback.
    pub fn dirty(&self) -> impl Iterator<Item = &str> {
        self.dirty.iter().flat_map(|d| d.keys().map(String::as_str))
    }

    /// Each id written since the last commit or rollback, with its record
    /// now (`None`: removed).
    pub fn written(&self) -> impl Iterator<Item = (&str, Option<&M::Value>)> {
        self.dirty().map(|k| (k, self.map.peek(k)))
    }

    /// Forgets the values before: the writes are durable.
    pub fn commit(&mut self) {
        if let Some(d) = &mut self.dirty {
            d.clear();
        }
    }

    /// Puts back every written id's value from before.
    pub fn rollback(&mut self) {
        let Some(d) = &mut self.dirty else {
            return;
        };
        for (key, old) in std::mem::take(d) {
            match old {
                Some(v) => self.map.put(key.into(), v),
                None => self.map.take(&key),
            };
        }
    }

    fn mark(&mut self, key: &str) {
        if let Some(d) = &mut self.dirty {
            if !d.contains_key(key) {
                d.insert(key.to_string(), self.map.peek(key).cloned());
            }
        }
    }

    /// Inserts under `key` (a `String`, or the map's own key type: the
    /// simulator makes keys ahead, off the thread that runs the state).
    pub fn insert(&mut self, key: impl Into<M::Key>, value: M::Value) -> Option<M::Value> {
        let key = key.into();
        self.mark(key.borrow());
        self.map.put(key, value)
    }

    pub fn remove(&mut self, key: &str) -> Option<M::Value> {
        if self.dirty.is_some() && self.map.peek(key).is_some() {
            self.mark(key);
        }
        self.map.take(key)
    }

    /// The record for `key` to change in place (marked written whether or
    /// not the caller changes it).
    pub fn get_mut(&mut self, key: &str) -> Option<&mut M::Value> {
        if self.dirty.is_some() && self.map.slot(key).is_some() {
            self.mark(key);
        }
        self.map.slot(key)
    }
}

impl<M: KeyMap> Deref for Tracked<M> {
    type Target = M;
    fn deref(&self) -> &M {
        &self.map
    }
}

impl<M: KeyMap + PartialEq> PartialEq for Tracked<M> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<M: KeyMap + Serialize> Serialize for Tracked<M> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(s)
    }
}

impl<'de, M: KeyMap + Deserialize<'de>> Deserialize<'de> for Tracked<M> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Tracked {
            map: M::deserialize(d)?,
            dirty: None,
        })
    }
}

impl<M: KeyMap> From<M> for Tracked<M> {
    fn from(map: M) -> Self {
        Tracked { map, dirty: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirty(m: &Tracked<BTreeMap<String, u32>>) -> Vec<&str> {
        let mut d: Vec<&str> = m.dirty().collect();
        d.sort();
        d
    }

    #[test]
    fn writes_are_marked_only_while_tracking() {
        let mut m: Tracked<BTreeMap<String, u32>> = Tracked::default();
        m.insert("a".to_string(), 1);
        assert!(dirty(&m).is_empty(), "not tracking yet");
        m.track();
        m.insert("b".to_string(), 2);
        *m.get_mut("a").unwrap() += 1;
        assert!(m.get_mut("missing").is_none());
        assert!(m.remove("missing").is_none());
        assert_eq!(dirty(&m), ["a", "b"]);
        m.commit();
        assert!(dirty(&m).is_empty());
        m.remove("a");
        assert_eq!(dirty(&m), ["a"]);
        m.commit();
        assert_eq!(m.get("b"), Some(&2));
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"b":2}"#);
    }

    #[test]
    fn a_rollback_restores_the_values_before_the_first_write() {
        let mut m: Tracked<BTreeMap<String, u32>> = Tracked::default();
        m.insert("kept".to_string(), 1);
        m.insert("gone".to_string(), 2);
        m.track();
        *m.get_mut("kept").unwrap() = 10;
        *m.get_mut("kept").unwrap() = 20;
        m.remove("gone");
        m.insert("new".to_string(), 3);
        m.rollback();
        assert_eq!(
            *m,
            BTreeMap::from([("gone".to_string(), 2), ("kept".to_string(), 1)])
        );
        assert!(dirty(&m).is_empty());
    }

    #[test]
    fn maps_keyed_inline_track_and_roll_back_alike() {
        // The state's job and task maps: keys inline up to 24 bytes, and
        // one longer, kept on the heap.
        let long = "a-job-id-longer-than-twenty-four-bytes/encode-00001";
        let mut m: Tracked<FxHashMap<crate::state::Key, u32>> = Tracked::default();
        m.insert("j1/probe".to_string(), 1);
        m.insert(crate::state::Key::from(long), 2);
        m.track();
        *m.get_mut(long).unwrap() = 20;
        m.remove("j1/probe");
        m.insert("j2/probe".to_string(), 3);
        let mut d: Vec<&str> = m.dirty().collect();
        d.sort();
        assert_eq!(
            d,
            [
                "a-job-id-longer-than-twenty-four-bytes/encode-00001",
                "j1/probe",
                "j2/probe"
            ]
        );
        m.rollback();
        assert_eq!(m.get("j1/probe"), Some(&1));
        assert_eq!(m.get(long), Some(&2));
        assert_eq!(m.get("j2/probe"), None);
        assert_eq!(m.len(), 2);
    }
}
