//! The index lists that every send or lease renewal writes to, spread over [`SHARDS`]
//! partitions: one partition key written by every send would cap the whole system at one
//! partition's writes (1,000 per second). An entry goes to its device's partition
//! ([`of_device`]); a read of the whole list reads every partition ([`all`]) and merges.
//!
//! Lists spread this way: the leases (gsi1 `LEASES#nn`), the pending messages (gsi3
//! `PENDING#nn`), the pending deliveries (gsi3 `DLVQ#nn`) and the idempotency records by
//! expiry (gsi3 `IDEMEXP#nn`). Entries written before a list was spread out stay in its
//! unsharded partition (`PENDING`, `DLVQ`, `IDEMEXP`) until they leave it (sent, delivered,
//! expired); reads include it, so a deployment of this layout over an older table loses
//! nothing.

use uuid::Uuid;

/// How many partitions a busy list is spread over.
pub(crate) const SHARDS: u8 = 16;

/// The partition of a device's entries: the last byte of its id (random in UUID v4 and
/// v7) spreads them evenly.
pub(crate) fn of(device_id: Uuid) -> u8 {
    device_id.as_bytes()[15] % SHARDS
}

/// The hash key of partition `shard` of `list`.
pub(crate) fn key(list: &str, shard: u8) -> String {
    format!("{list}#{shard:02}")
}

/// The hash key of the partition of `list` that holds `device`'s entries.
pub(crate) fn of_device(list: &str, device: Uuid) -> String {
    key(list, of(device))
}

/// Every hash key a read of the whole `list` covers: its partitions, then its unsharded
/// key (entries written before the list was spread out).
pub(crate) fn all(list: &str) -> Vec<String> {
    (0..SHARDS)
        .map(|s| key(list, s))
        .chain(std::iter::once(list.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_spread_over_every_partition_and_stay_in_theirs() {
        let mut seen = [0u32; SHARDS as usize];
        for _ in 0..4096 {
            let d = Uuid::now_v7();
            assert_eq!(of(d), of(d), "the same partition every time");
            seen[of(d) as usize] += 1;
        }
        assert!(seen.iter().all(|n| *n > 0), "{seen:?}");
    }

    #[test]
    fn a_whole_list_is_its_partitions_and_its_unsharded_key() {
        let keys = all("DLVQ");
        assert_eq!(keys.len(), SHARDS as usize + 1);
        assert_eq!(keys[0], "DLVQ#00");
        assert_eq!(keys[15], "DLVQ#15");
        assert_eq!(keys[16], "DLVQ");
        let d = Uuid::now_v7();
        assert!(keys.contains(&of_device("DLVQ", d)));
        assert_eq!(key("LEASES", 7), "LEASES#07");
    }
}
