//! Device leases, worker membership and fencing in the table, with their item layout
//! (keys and index partitions are `codec`'s).
//!
//! A lease item (`LEASE#{device}`) is listed in one of the [`SHARDS`] partitions of GSI1 (every
//! renewal rewrites it, so one partition for all of them would cap the fleet at one
//! partition's writes) and, while it has an owner, in its owner's partition of GSI2. Its
//! version is the item's `rev`: a change reads the item, applies `wa_core::lease`, and puts
//! the result conditioned on the `rev` it read (or on the item's absence), so of racing
//! claimants exactly one commits and the others read again and are refused. The expiry is
//! `expires_ms`, never DynamoDB's TTL attribute: a lease item is never deleted, so its
//! epoch never goes back.
//!
//! A worker item (`WORKER#{id}`) is listed on GSI1 `WORKERS`; it carries the TTL attribute
//! a day after its heartbeat expiry, so the items of workers gone for good disappear.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;
use wa_core::lease::{self, Claim, Fence, Lease, Member, Owner};
use wa_core::store::{LeaseStore, Page, PageRequest, Store, StoreError};
use wa_core::time::OffsetDateTime;

use super::DynamoStore;
use super::codec::{EXPIRES_AT, EXPIRES_MS, Index, Item, from_ms, key, list, ms};
use super::ops::{OnCondition, Query, Range, Write, WriteError, until_fresh};
use super::shards::{self, SHARDS};
use crate::page;

const WORKER_ID: &str = "worker_id";
const INCARNATION: &str = "incarnation";
const EPOCH: &str = "epoch";

/// How long after its heartbeat expiry a worker item is left to DynamoDB's TTL.
const WORKER_ITEM_KEPT_SECS: i64 = 86_400;

impl From<&Lease> for Item {
    fn from(l: &Lease) -> Item {
        let device = l.device_id.to_string();
        let mut item = key::lease(l.device_id)
            .with_s("kind", "lease")
            .with_s("device_id", &device)
            .with_n(EPOCH, l.epoch)
            .with_n(EXPIRES_MS, ms(l.expires_at))
            .with_n("ttl_ms", l.ttl.as_millis())
            .with_rev(l.version)
            .in_index(
                Index::Gsi1,
                shards::of_device(list::LEASES, l.device_id),
                device.clone(),
            );
        if let Some(o) = &l.owner {
            item = item
                .with_s(WORKER_ID, &o.worker_id)
                .with_s(INCARNATION, o.incarnation.to_string())
                .in_index(
                    Index::Gsi2,
                    list::leases_of_owner(o.incarnation, &o.worker_id),
                    device,
                );
        }
        item
    }
}

impl TryFrom<&Item> for Lease {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Lease, StoreError> {
        let owner = match i.opt_s(WORKER_ID)? {
            Some(worker_id) => Some(Owner {
                worker_id: worker_id.to_owned(),
                incarnation: i.uuid(INCARNATION)?,
            }),
            None => None,
        };
        Ok(Lease {
            device_id: i.uuid("device_id")?,
            owner,
            epoch: i.n(EPOCH)?,
            expires_at: from_ms(i.n(EXPIRES_MS)?),
            ttl: Duration::from_millis(i.n("ttl_ms")?),
            version: i.rev()?,
        })
    }
}

impl From<&Member> for Item {
    fn from(m: &Member) -> Item {
        key::worker(&m.owner.worker_id)
            .with_s("kind", "worker")
            .with_s(WORKER_ID, &m.owner.worker_id)
            .with_s(INCARNATION, m.owner.incarnation.to_string())
            .with_s("inbox", &m.inbox)
            .with_n(EXPIRES_MS, ms(m.expires_at))
            .with_n(
                EXPIRES_AT,
                m.expires_at.unix_timestamp() + WORKER_ITEM_KEPT_SECS,
            )
            .with_n("sessions", m.sessions)
            .with_n("capacity", m.capacity)
            .in_index(Index::Gsi1, list::WORKERS, m.owner.worker_id.clone())
    }
}

impl TryFrom<&Item> for Member {
    type Error = StoreError;

    fn try_from(i: &Item) -> Result<Member, StoreError> {
        Ok(Member {
            owner: Owner {
                worker_id: i.s(WORKER_ID)?.to_owned(),
                incarnation: i.uuid(INCARNATION)?,
            },
            inbox: i.s("inbox")?.to_owned(),
            expires_at: from_ms(i.n(EXPIRES_MS)?),
            sessions: i.n("sessions")?,
            capacity: i.n("capacity")?,
        })
    }
}

/// The condition check of a fenced view's transactions: the lease still names the fence's
/// owner and epoch, else `Fenced`.
pub(crate) fn fence_check(fence: &Fence) -> Write {
    Write::check(key::lease(fence.device_id))
        .when(
            "#w = :w AND #i = :i AND #e = :e",
            OnCondition::Fail(StoreError::Fenced),
        )
        .name("#w", WORKER_ID)
        .name("#i", INCARNATION)
        .name("#e", EPOCH)
        .value(":w", AttributeValue::S(fence.owner.worker_id.clone()))
        .value(":i", AttributeValue::S(fence.owner.incarnation.to_string()))
        .value(":e", AttributeValue::N(fence.epoch.to_string()))
}

/// Conditions a write of a worker item on the stored one being of `owner`'s run (`Stale`
/// otherwise: the caller reads again and decides).
fn of_run(w: Write, owner: &Owner) -> Write {
    w.when("#i = :i", OnCondition::Stale)
        .name("#i", INCARNATION)
        .value(":i", AttributeValue::S(owner.incarnation.to_string()))
}

/// A decision on the stored lease (`wa_core::lease`'s).
type LeaseChange<'a> = dyn Fn(Option<&Lease>) -> Result<Lease, StoreError> + Sync + 'a;

impl DynamoStore {
    /// One read-modify-write of a lease: `change` decides from the stored record.
    async fn try_change_lease(
        &self,
        device_id: Uuid,
        change: &LeaseChange<'_>,
    ) -> Result<Lease, WriteError> {
        let seen = self.get(key::lease(device_id)).await?;
        let old = seen.as_ref().map(Lease::try_from).transpose()?;
        let new = change(old.as_ref())?;
        let put = Write::put(Item::from(&new));
        let w = match &seen {
            Some(item) => put.at_rev(item.rev()?),
            None => put.when("attribute_not_exists(pk)", OnCondition::Stale),
        };
        self.write_unfenced(vec![w]).await?;
        Ok(new)
    }

    async fn change_lease(
        &self,
        device_id: Uuid,
        change: &LeaseChange<'_>,
    ) -> Result<Lease, StoreError> {
        until_fresh(move || self.try_change_lease(device_id, change)).await
    }

    async fn member(&self, worker_id: &str) -> Result<Option<Member>, StoreError> {
        self.get(key::worker(worker_id))
            .await?
            .as_ref()
            .map(Member::try_from)
            .transpose()
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn acquire_lease(&self, claim: &Claim) -> Result<Lease, StoreError> {
        self.change_lease(claim.device_id, &|seen| lease::acquire(seen, claim))
            .await
    }

    async fn renew_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Lease, StoreError> {
        self.change_lease(device_id, &|seen| {
            lease::renew(seen, owner, epoch, now, ttl)
        })
        .await
    }

    async fn release_lease(
        &self,
        device_id: Uuid,
        owner: &Owner,
        epoch: u64,
    ) -> Result<Lease, StoreError> {
        self.change_lease(device_id, &|seen| lease::release(seen, owner, epoch))
            .await
    }

    async fn get_lease(&self, device_id: Uuid) -> Result<Option<Lease>, StoreError> {
        self.get(key::lease(device_id))
            .await?
            .as_ref()
            .map(Lease::try_from)
            .transpose()
    }

    async fn list_leases(
        &self,
        owner: Option<&Owner>,
        page: PageRequest,
    ) -> Result<Page<Lease>, StoreError> {
        let range = page
            .after
            .map_or(Range::All, |a| Range::After(a.to_string()));
        let want = page::fetch(page.limit);
        let items = match owner {
            Some(o) => {
                let q = Query::new(
                    Index::Gsi2,
                    list::leases_of_owner(o.incarnation, &o.worker_id),
                )
                .range(range);
                self.query(&q, want).await?
            }
            // The first `want` of all are among the first `want` of each partition.
            None => {
                let mut items = Vec::new();
                for shard in 0..SHARDS {
                    let q = Query::new(Index::Gsi1, shards::key(list::LEASES, shard))
                        .range(range.clone());
                    items.extend(self.query(&q, want).await?);
                }
                items
            }
        };
        let mut leases = items
            .iter()
            .map(Lease::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        leases.sort_by_key(|l| l.device_id);
        leases.truncate(want);
        let (items, next) = page::cut(leases, page.limit, |l| l.device_id);
        Ok(Page { items, next })
    }

    async fn register_worker(&self, member: &Member) -> Result<(), StoreError> {
        Ok(self
            .write_unfenced(vec![Write::put(Item::from(member))])
            .await?)
    }

    async fn heartbeat_worker(&self, member: &Member) -> Result<(), StoreError> {
        until_fresh(move || async move {
            lease::heartbeat(self.member(&member.owner.worker_id).await?.as_ref(), member)?;
            let w = of_run(Write::put(Item::from(member)), &member.owner);
            self.write_unfenced(vec![w]).await
        })
        .await
    }

    async fn deregister_worker(&self, owner: &Owner) -> Result<(), StoreError> {
        until_fresh(move || async move {
            if lease::deregister(self.member(&owner.worker_id).await?.as_ref(), owner)? {
                let w = of_run(Write::delete(key::worker(&owner.worker_id)), owner);
                self.write_unfenced(vec![w]).await?;
            }
            Ok(())
        })
        .await
    }

    async fn live_workers(&self, now: OffsetDateTime) -> Result<Vec<Member>, StoreError> {
        let q = Query::new(Index::Gsi1, list::WORKERS);
        let mut live = Vec::new();
        for item in self.query(&q, usize::MAX).await? {
            let m = Member::try_from(&item)?;
            if m.is_live(now) {
                live.push(m);
            }
        }
        Ok(live)
    }

    fn fenced(&self, fence: Fence) -> Arc<dyn Store> {
        Arc::new(DynamoStore {
            fence: Some(Arc::new(fence)),
            ..self.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease item never carries the TTL attribute (DynamoDB would delete it, and its
    /// epoch with it); a worker item does, a day after its heartbeat expiry.
    #[test]
    fn only_worker_items_expire() {
        let owner = Owner::new("w");
        let at = wa_core::time::now();
        let lease = Lease {
            device_id: Uuid::now_v7(),
            owner: Some(owner.clone()),
            epoch: 3,
            expires_at: at,
            ttl: Duration::from_secs(30),
            version: 7,
        };
        let item = Item::from(&lease);
        assert!(!item.0.contains_key(EXPIRES_AT));
        assert_eq!(Lease::try_from(&item).unwrap(), lease);
        let released = Lease {
            owner: None,
            ..lease
        };
        let item = Item::from(&released);
        assert!(!item.0.contains_key(Index::Gsi2.hash_key()), "sparse");
        assert_eq!(Lease::try_from(&item).unwrap(), released);
        let member = Member {
            owner,
            inbox: "q".into(),
            expires_at: at,
            sessions: 2,
            capacity: 8,
        };
        let item = Item::from(&member);
        assert_eq!(
            item.n::<i64>(EXPIRES_AT).unwrap(),
            at.unix_timestamp() + 86_400
        );
        assert_eq!(Member::try_from(&item).unwrap(), member);
    }
}
