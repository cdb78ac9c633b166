//! The DynamoDB adapter of the store port: every record in ONE table (single-table design,
//! generic `pk`/`sk` string keys, three overloaded global secondary indexes). The layout
//! and every access pattern are in docs/dynamodb.md; `codec` implements the layout, `ops`
//! the reads, writes and the mapping of DynamoDB's failures, the other modules the traits.
//!
//! Atomicity: a change and the events it causes are one TransactWriteItems; uniqueness
//! rules are guard items written in the same transaction under `attribute_not_exists(pk)`;
//! read-modify-writes are conditioned on the revision (`rev`) they read and run again when
//! it moved. Reads of the table are strongly consistent, reads of indexes (listings, work
//! lists) eventually consistent; the work lists are re-checked against the table.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
    TimeToLiveSpecification, TimeToLiveStatus,
};
use wa_core::lease::Fence;
use wa_core::store::StoreError;

use codec::{EXPIRES_AT, Index, PK, SK};
use ops::read_error;

mod apps;
mod codec;
mod devices;
mod events;
mod leases;
mod messages;
mod ops;
mod recent;
mod replies;
mod retry;
mod shards;

/// How long `create_table` waits for the table and its indexes to become active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(300);

/// State in one DynamoDB table. Cheap to clone (the client is shared).
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: Arc<str>,
    /// Set by `LeaseStore::fenced`: every write is conditioned on this lease.
    fence: Option<Arc<Fence>>,
    /// The messages read or written last, for updates without a read first.
    recent: Arc<recent::Recent<(uuid::Uuid, String), wa_core::messages::Message>>,
    /// The same for webhook deliveries, by request id.
    recent_deliveries: Arc<recent::Recent<String, wa_core::store::Delivery>>,
    /// Set by [`DynamoStore::holding_events`]: how long the events this store writes are
    /// held for their committer to deliver.
    hold_events: Option<Duration>,
}

impl DynamoStore {
    /// A store on `table` through `client` (build the client once per process).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: Arc::from(table.into()),
            fence: None,
            recent: Arc::default(),
            recent_deliveries: Arc::default(),
            hold_events: None,
        }
    }

    /// This store, writing the events it commits held for `hold` (not due until then), for
    /// a process that delivers them itself right after the commit: the events queue's
    /// consumer leaves a held delivery alone, and takes it over once the hold is over (its
    /// committer gone) or released
    /// ([`wa_core::store::EventStore::release_delivery`]). Hold for longer than
    /// one attempt can take.
    pub fn holding_events(self, hold: Duration) -> Self {
        DynamoStore {
            hold_events: Some(hold),
            ..self
        }
    }

    /// A store on `table` with the SDK's default configuration: credentials, region and
    /// endpoint from the environment (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...).
    pub async fn from_env(table: &str) -> Self {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        DynamoStore::new(Client::new(&config), table)
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its indexes (on-demand billing) and turns on TTL on
    /// `expires_at`, then waits until all is active. Does nothing that is done already, so
    /// it can run at every deployment. Fails with `Backend` when DynamoDB refuses (for
    /// instance a table of that name with another key schema is not detected: it is used).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let string = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(config_error)
        };
        let keys = |index: Index| -> Result<Vec<KeySchemaElement>, StoreError> {
            [
                (index.hash_key(), KeyType::Hash),
                (index.range_key(), KeyType::Range),
            ]
            .into_iter()
            .map(|(name, kind)| {
                KeySchemaElement::builder()
                    .attribute_name(name)
                    .key_type(kind)
                    .build()
                    .map_err(config_error)
            })
            .collect()
        };
        let mut request = self
            .client
            .create_table()
            .table_name(self.table())
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(keys(Index::Table)?))
            .attribute_definitions(string(PK)?)
            .attribute_definitions(string(SK)?);
        for index in Index::GSIS {
            request = request
                .attribute_definitions(string(index.hash_key())?)
                .attribute_definitions(string(index.range_key())?)
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(index.name().unwrap_or_default())
                        .set_key_schema(Some(keys(index)?))
                        // Listings return whole records: project everything, no second read.
                        .projection(
                            Projection::builder()
                                .projection_type(ProjectionType::All)
                                .build(),
                        )
                        .build()
                        .map_err(config_error)?,
                );
        }
        match request.send().await {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(e) => return Err(read_error(e)),
        }
        self.wait_until_active().await?;
        self.enable_ttl().await
    }

    async fn describe(&self) -> Result<TableDescription, StoreError> {
        self.client
            .describe_table()
            .table_name(self.table())
            .send()
            .await
            .map_err(read_error)?
            .table
            .ok_or_else(|| StoreError::Backend("DescribeTable returned no table".into()))
    }

    async fn wait_until_active(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + ACTIVE_TIMEOUT;
        loop {
            let t = self.describe().await?;
            let indexes_active = t
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status() == Some(&IndexStatus::Active));
            if t.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StoreError::Backend(format!(
                    "table {} is not active after {ACTIVE_TIMEOUT:?}",
                    self.table()
                )));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Turns on TTL unless it is on (DynamoDB refuses to enable it twice).
    async fn enable_ttl(&self) -> Result<(), StoreError> {
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(self.table())
            .send()
            .await
            .map_err(read_error)?;
        let on = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| matches!(s, TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if on {
            return Ok(());
        }
        self.client
            .update_time_to_live()
            .table_name(self.table())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(EXPIRES_AT)
                    .build()
                    .map_err(config_error)?,
            )
            .send()
            .await
            .map_err(read_error)?;
        Ok(())
    }
}

fn config_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("building the table definition: {e}"))
}

#[cfg(test)]
mod tests {
    use super::codec::{key, list};
    use super::*;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use uuid::Uuid;
    use wa_core::apps::App;
    use wa_core::messages::{Message, MessageType};
    use wa_core::store::{AppStore, Created, IdempotencyRecord, MessageStore, PageRequest};
    use wa_core::time;
    use wa_testkit::fixtures::{self, app, device};

    pub(super) fn client() -> Client {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(wa_testkit::moto::endpoint())
            .region(Region::new(wa_testkit::moto::REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .build();
        Client::from_conf(config)
    }

    /// A store on a fresh table of the process's moto server.
    pub(super) async fn store() -> Arc<DynamoStore> {
        let s = DynamoStore::new(client(), format!("wa-test-{}", Uuid::new_v4()));
        s.create_table().await.expect("create table");
        Arc::new(s)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_apps() {
        wa_testkit::conformance::app_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_devices() {
        wa_testkit::conformance::device_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_messages() {
        wa_testkit::conformance::message_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_closed_apps() {
        wa_testkit::conformance::closed_apps(store().await).await;
    }

    /// The devices of an App to delete are read from the table, not from the index, which
    /// may not show a device inserted a moment before (moto's indexes never lag: the lag
    /// is made here by writing the device's item without its index attributes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn devices_of_app_do_not_wait_for_the_index() {
        use wa_core::store::DeviceStore;
        let s = store().await;
        let app = Uuid::now_v7();
        let old = device(app, "indexed");
        let new = device(app, "not yet indexed");
        s.insert_device(&old).await.unwrap();
        s.insert_device(&new).await.unwrap();
        let mut unindexed = codec::Item::from(&new).with_rev(1);
        for index in Index::GSIS {
            unindexed.0.remove(index.hash_key());
            unindexed.0.remove(index.range_key());
        }
        s.write(vec![ops::Write::put(unindexed)]).await.unwrap();
        let page = PageRequest {
            limit: 10,
            after: None,
        };
        assert_eq!(
            s.list_devices(app, None, page).await.unwrap().items,
            std::slice::from_ref(&old),
            "the index lags"
        );
        assert_eq!(s.devices_of_app(app).await.unwrap(), [old, new]);
        // A device written before membership items existed is found through the index.
        let legacy = device(app, "legacy");
        s.write(vec![ops::Write::put(
            codec::Item::from(&legacy).with_rev(1),
        )])
        .await
        .unwrap();
        let ids: Vec<_> = s
            .devices_of_app(app)
            .await
            .unwrap()
            .into_iter()
            .map(|d| d.device_id)
            .collect();
        assert!(ids.contains(&legacy.device_id), "{ids:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_events() {
        wa_testkit::conformance::event_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_leases() {
        wa_testkit::conformance::lease_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_fenced_writes() {
        wa_testkit::conformance::fenced_writes(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_worker_membership() {
        wa_testkit::conformance::worker_membership(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_replies() {
        wa_testkit::conformance::reply_store(store().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn create_table_is_idempotent() {
        let s = store().await;
        s.create_table().await.expect("a second create is a no-op");
        let t = s.describe().await.unwrap();
        let mut names: Vec<_> = t
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name())
            .collect();
        names.sort();
        assert_eq!(names, ["gsi1", "gsi2", "gsi3"]);
        let ttl = s
            .client
            .describe_time_to_live()
            .table_name(s.table())
            .send()
            .await
            .unwrap();
        let d = ttl.time_to_live_description().unwrap();
        assert_eq!(d.attribute_name(), Some(EXPIRES_AT));
        assert_eq!(d.time_to_live_status(), Some(&TimeToLiveStatus::Enabled));
        s.ping().await.unwrap();
    }

    /// The App by token is one read of the token's guard, whose copy of the App follows
    /// every change; a guard written without the copy still finds its App.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_guard_carries_the_app() {
        use wa_core::store::AppUpdate;
        let s = store().await;
        let a = App {
            webhook_url: None,
            webhook_secret: "whsec_a".into(),
            ..fixtures::app("t", "guarded")
        };
        s.insert_app(&a).await.unwrap();
        let g = s.get(key::app_token(&a.token_hash)).await.unwrap().unwrap();
        assert_eq!(App::try_from(&g).unwrap(), a, "the guard holds the App");
        let changed = s
            .update_app(
                a.app_id,
                &AppUpdate {
                    name: Some("renamed".into()),
                    webhook_url: Some(Some("https://example.com/h".into())),
                    webhook_secret: Some("whsec_b".into()),
                    ..AppUpdate::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            s.app_by_token_hash(&a.token_hash).await.unwrap(),
            Some(changed.clone()),
            "a change without a new token reaches the guard's copy"
        );
        // Guards of the earlier layout: only their owner.
        for hash in [a.token_hash.as_str(), "other-hash"] {
            s.write(vec![ops::Write::put(codec::guard(
                key::app_token(hash),
                a.app_id,
            ))])
            .await
            .unwrap();
        }
        assert_eq!(
            s.app_by_token_hash(&a.token_hash).await.unwrap(),
            Some(changed),
            "found through the owner"
        );
        assert_eq!(
            s.app_by_token_hash("other-hash").await.unwrap(),
            None,
            "an App whose token is another is not returned"
        );
        s.delete_app(a.app_id).await.unwrap();
        assert_eq!(s.app_by_token_hash(&a.token_hash).await.unwrap(), None);
    }

    fn message(device: Uuid, app: Uuid, kind: MessageType) -> Message {
        Message {
            kind,
            content: None,
            text: None,
            ..fixtures::outbound_text(device, app, "", time::now())
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_idempotency_is_ignored_and_replaced() {
        let s = store().await;
        let (app, device) = (Uuid::now_v7(), Uuid::now_v7());
        let record = |message_id: &str, expires_in_s: i64| IdempotencyRecord {
            app_id: app,
            key: "retry-me".into(),
            request_hash: format!("hash of {message_id}"),
            device_id: device,
            message_id: message_id.to_owned(),
            response: None,
            expires_at: time::now() + ::time::Duration::seconds(expires_in_s),
        };
        let old = message(device, app, MessageType::Text);
        let created = s
            .create_message(&old, None, Some(&record(&old.message_id, -1)), &[])
            .await
            .unwrap();
        assert_eq!(created, Created::Created);
        // The expired record is still stored (TTL deletes late, moto never): reads skip it.
        let raw = s.get(key::idempotency(app, "retry-me")).await.unwrap();
        assert!(raw.is_some(), "the expired record is in the table");
        assert_eq!(s.get_idempotency(app, "retry-me").await.unwrap(), None);

        let new = message(device, app, MessageType::Text);
        let created = s
            .create_message(&new, None, Some(&record(&new.message_id, 3600)), &[])
            .await
            .unwrap();
        assert_eq!(created, Created::Created, "an expired key is taken again");
        let got = s.get_idempotency(app, "retry-me").await.unwrap().unwrap();
        assert_eq!(got.message_id, new.message_id);
        assert_eq!(got.request_hash, format!("hash of {}", new.message_id));

        // A live key is not replaced: the caller learns the stored record.
        let third = message(device, app, MessageType::Text);
        match s
            .create_message(&third, None, Some(&record(&third.message_id, 3600)), &[])
            .await
            .unwrap()
        {
            Created::Existing(r) => assert_eq!(r.message_id, new.message_id),
            Created::Created => panic!("a live key was replaced"),
        }
        assert_eq!(
            s.get_message(device, &third.message_id).await.unwrap(),
            None,
            "nothing written for an existing key"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_media_round_trips() {
        let s = store().await;
        let (app, device) = (Uuid::now_v7(), Uuid::now_v7());
        // Over three chunks, with a ragged end; and one exactly at the inline limit.
        let big: Vec<u8> = (0..(3 * messages::CHUNK_BYTES + 4321))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let edge: Vec<u8> = vec![0xAB; messages::CHUNK_BYTES];
        for (bytes, chunks) in [(big, 4), (edge, 0)] {
            let m = message(device, app, MessageType::Document);
            s.create_message(&m, Some(&bytes), None, &[]).await.unwrap();
            let got = s.outbound_media(device, &m.message_id).await.unwrap();
            assert_eq!(got.as_deref(), Some(&bytes[..]), "bytes round-trip");
            let head = s
                .get(key::media(device, &m.message_id))
                .await
                .unwrap()
                .unwrap();
            let stored = codec::StoredMedia::try_from(&head).unwrap();
            let upload = match stored {
                codec::StoredMedia::Chunked {
                    upload,
                    chunks: n,
                    size,
                } => {
                    assert_eq!((n as usize, size as usize), (chunks, bytes.len()));
                    Some(upload)
                }
                codec::StoredMedia::Inline(b) => {
                    assert_eq!(chunks, 0, "inline only up to the limit");
                    assert_eq!(b, bytes);
                    None
                }
            };
            s.delete_outbound_media(device, &m.message_id)
                .await
                .unwrap();
            assert_eq!(s.outbound_media(device, &m.message_id).await.unwrap(), None);
            if let Some(upload) = upload {
                let q = ops::Query::new(
                    Index::Table,
                    list::media_chunks(device, &m.message_id, upload),
                );
                assert!(s.query(&q, 100).await.unwrap().is_empty(), "chunks deleted");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_longest_text_fits_in_an_item() {
        use wa_core::messages::{Content, MAX_TEXT_CHARS};
        let s = store().await;
        // Three-byte characters (CJK) at the limit; the text is stored twice (content, text).
        let text: String = "語".repeat(MAX_TEXT_CHARS);
        let mut m = message(Uuid::now_v7(), Uuid::now_v7(), MessageType::Text);
        m.content = Some(Content::Text { text: text.clone() });
        m.text = Some(text);
        s.create_message(&m, None, None, &[]).await.unwrap();
        assert_eq!(
            s.get_message(m.device_id, &m.message_id).await.unwrap(),
            Some(m)
        );
    }

    /// A record over DynamoDB's 400 KB is the caller's fault (`TooLarge`: 413), whether it
    /// is written alone or in a transaction with its events, and nothing of it is stored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_item_over_400_kb_is_too_large() {
        use wa_core::messages::Content;
        use wa_core::store::EventStore;
        use wa_core::webhooks::{Event, EventType};
        let s = store().await;
        // 240 KB of UTF-8, stored twice (content and text).
        let text: String = "\u{1F600}".repeat(60_000);
        let mut m = message(Uuid::now_v7(), Uuid::now_v7(), MessageType::Text);
        m.content = Some(Content::Text { text: text.clone() });
        m.text = Some(text);
        assert_eq!(
            s.create_message(&m, None, None, &[]).await,
            Err(StoreError::TooLarge),
            "one item alone"
        );
        let e = Event::new(
            EventType::Message,
            m.app_id,
            m.device_id,
            serde_json::json!({}),
        );
        assert_eq!(
            s.create_message(&m, None, None, std::slice::from_ref(&e))
                .await,
            Err(StoreError::TooLarge),
            "in a transaction"
        );
        assert_eq!(
            s.get_message(m.device_id, &m.message_id).await.unwrap(),
            None
        );
        assert_eq!(s.get_delivery(&e.request_id).await.unwrap(), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refused_create_leaves_no_media_chunks() {
        let s = store().await;
        let (app, device) = (Uuid::now_v7(), Uuid::now_v7());
        let m = message(device, app, MessageType::Document);
        s.create_message(&m, None, None, &[]).await.unwrap();
        let bytes = vec![1u8; 2 * messages::CHUNK_BYTES + 1];
        assert_eq!(
            s.create_message(&m, Some(&bytes), None, &[]).await,
            Err(StoreError::Conflict("message_id"))
        );
        assert_eq!(s.outbound_media(device, &m.message_id).await.unwrap(), None);
        let orphans = s
            .client
            .scan()
            .table_name(s.table())
            .filter_expression("begins_with(pk, :p)")
            .expression_attribute_values(
                ":p",
                aws_sdk_dynamodb::types::AttributeValue::S("CHUNK#".into()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(orphans.count(), 0, "chunks of a refused create are removed");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_app_names_have_one_winner() {
        let s = store().await;
        let tenant = format!("t#{}", Uuid::new_v4());
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (s, a) = (s.clone(), app(&tenant, "same"));
                tokio::spawn(async move { (a.app_id, s.insert_app(&a).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                (id, Ok(())) => winners.push(id),
                (_, Err(StoreError::Conflict("app_name"))) => {}
                (_, Err(e)) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one insert wins");
        let page = s
            .list_apps(
                &tenant,
                PageRequest {
                    limit: 20,
                    after: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(
            page.items.iter().map(|a| a.app_id).collect::<Vec<_>>(),
            winners
        );
        // The losers left no guard behind: their tokens are free.
        let guards = s
            .query(
                &ops::Query::new(Index::Table, format!("APPNAME#{tenant}")),
                100,
            )
            .await
            .unwrap();
        assert_eq!(guards.len(), 1);
        assert_eq!(codec::guard_owner(&guards[0]).unwrap(), winners[0]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_updates_of_one_revision_serialize() {
        use wa_core::devices::{DeviceStatus as S, DeviceUpdate};
        use wa_core::store::DeviceStore;
        let s = store().await;
        let d = device(Uuid::now_v7(), "d");
        s.insert_device(&d).await.unwrap();
        // Each moves initializing → qr_generated; only one may see initializing.
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                tokio::spawn(async move {
                    s.update_device(
                        d.device_id,
                        &DeviceUpdate::status(S::QrGenerated),
                        &[S::Initializing],
                        &[],
                    )
                    .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => wins += 1,
                Err(StoreError::Conflict("status")) => {}
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(wins, 1);
        let item = s.get(key::device(d.device_id)).await.unwrap().unwrap();
        assert_eq!(item.rev().unwrap(), 2, "one insert, one update");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn filtered_listing_returns_full_pages() {
        use wa_core::devices::{DeviceStatus as S, DeviceUpdate};
        use wa_core::store::DeviceStore;
        let s = store().await;
        let app = Uuid::now_v7();
        let mut connected = Vec::new();
        for i in 0..7 {
            let d = device(app, &format!("d{i}"));
            s.insert_device(&d).await.unwrap();
            if [1, 3, 6].contains(&i) {
                s.update_device(d.device_id, &DeviceUpdate::status(S::Connected), &[], &[])
                    .await
                    .unwrap();
                connected.push(d.device_id);
            }
        }
        let mut seen = Vec::new();
        let mut after = None;
        for _ in 0..10 {
            let page = s
                .list_devices(app, Some(S::Connected), PageRequest { limit: 1, after })
                .await
                .unwrap();
            assert_eq!(page.items.len(), 1, "a page is full while matches remain");
            seen.push(page.items[0].device_id);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, connected);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revived_device_needs_its_name_free() {
        use wa_core::devices::{DeviceStatus as S, DeviceUpdate};
        use wa_core::store::DeviceStore;
        let s = store().await;
        let app = Uuid::now_v7();
        let old = device(app, "main");
        s.insert_device(&old).await.unwrap();
        s.update_device(old.device_id, &DeviceUpdate::status(S::Destroyed), &[], &[])
            .await
            .unwrap();
        let new = device(app, "main");
        s.insert_device(&new).await.unwrap();
        assert_eq!(
            s.update_device(
                old.device_id,
                &DeviceUpdate::status(S::Initializing),
                &[],
                &[]
            )
            .await,
            Err(StoreError::Conflict("device_name")),
            "the name is held by the new device"
        );
        s.update_device(new.device_id, &DeviceUpdate::status(S::Destroyed), &[], &[])
            .await
            .unwrap();
        s.update_device(
            old.device_id,
            &DeviceUpdate::status(S::Initializing),
            &[],
            &[],
        )
        .await
        .expect("free again");
        assert_eq!(
            s.insert_device(&device(app, "main")).await,
            Err(StoreError::Conflict("device_name")),
            "the revived device holds its name again"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_device_events_commit_in_seq_order() {
        use wa_core::store::EventStore;
        use wa_core::webhooks::{Event, EventType};
        let s = store().await;
        let (app, device) = (Uuid::now_v7(), Uuid::now_v7());
        let ev = || Event::new(EventType::Presence, app, device, serde_json::json!({}));
        let (first, second) = (ev(), ev());
        // Two writers reserve numbers in one order and commit in the other.
        let early = s.event_writes(std::slice::from_ref(&first)).await.unwrap();
        let late = s.event_writes(std::slice::from_ref(&second)).await.unwrap();
        s.write(late).await.unwrap();
        assert_eq!(
            s.write(early).await,
            Err(ops::WriteError::Stale),
            "a number below the device's last one is refused"
        );
        assert_eq!(s.get_delivery(&first.request_id).await.unwrap(), None);
        // Through the port the refused writer runs again with a fresh number.
        s.append_events(std::slice::from_ref(&first)).await.unwrap();
        let a = s.get_delivery(&first.request_id).await.unwrap().unwrap();
        let b = s.get_delivery(&second.request_id).await.unwrap().unwrap();
        assert!(a.seq > b.seq, "committed later, numbered later");
        // Another device's order is its own.
        let other = Event::new(
            EventType::Presence,
            app,
            Uuid::now_v7(),
            serde_json::json!({}),
        );
        let early = s.event_writes(std::slice::from_ref(&other)).await.unwrap();
        s.append_events(&[ev()]).await.unwrap();
        s.write(early).await.expect("no order across devices");
    }

    /// Index entries an older layout wrote in the unsharded partitions (`PENDING`, `DLVQ`)
    /// are still read, beside the partitions of `shards`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn entries_of_the_unsharded_lists_are_still_read() {
        use aws_sdk_dynamodb::types::AttributeValue;
        use wa_core::store::EventStore;
        use wa_core::webhooks::{Event, EventType};
        let s = store().await;
        let (app, dev) = (Uuid::now_v7(), Uuid::now_v7());
        let m = fixtures::outbound_text(dev, app, "old", time::now());
        s.create_message(&m, None, None, &[]).await.unwrap();
        let e = Event::new(EventType::Presence, app, dev, serde_json::json!({}));
        s.append_events(std::slice::from_ref(&e)).await.unwrap();
        let d = s.get_delivery(&e.request_id).await.unwrap().unwrap();
        for (k, old_list) in [
            (key::message(dev, &m.message_id), list::PENDING_MESSAGES),
            (key::queue_entry(dev, d.seq), list::DELIVERY_QUEUE),
        ] {
            let mut item = s.get(k).await.unwrap().expect("written");
            let at = Index::Gsi3.hash_key().to_owned();
            assert_ne!(item.0[&at], AttributeValue::S(old_list.into()));
            item.0.insert(at, AttributeValue::S(old_list.into()));
            s.write(vec![ops::Write::put(item)]).await.unwrap();
        }
        let (page, _) = s.pending_page(None, 10).await.unwrap();
        assert_eq!(page, std::slice::from_ref(&m));
        assert_eq!(s.pending_messages(None, 10).await.unwrap(), [m]);
        let due = s.due_deliveries(time::now(), 10).await.unwrap();
        assert_eq!(due, [d]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_events_and_refused_changes() {
        use wa_core::store::{DeviceStore, EventStore};
        use wa_core::webhooks::{Event, EventType};
        let s = store().await;
        let (app, d1, d2) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // More events than one transaction holds.
        let events: Vec<Event> = (0..120)
            .map(|n| {
                let device = if n % 2 == 0 { d1 } else { d2 };
                Event::new(
                    EventType::Presence,
                    app,
                    device,
                    serde_json::json!({ "n": n }),
                )
            })
            .collect();
        s.append_events(&events).await.unwrap();
        let (all, _) = s.list_deliveries(app, None, 500, None).await.unwrap();
        assert_eq!(all.len(), 120);
        let due = s.due_deliveries(time::now(), 10).await.unwrap();
        let heads: Vec<_> = due.iter().map(|d| d.event.request_id.clone()).collect();
        assert_eq!(
            heads,
            [events[0].request_id.clone(), events[1].request_id.clone()],
            "the oldest of each device, oldest first"
        );

        // A refused create or update writes none of its events.
        let m = message(d1, app, MessageType::Text);
        s.create_message(&m, None, None, &[]).await.unwrap();
        let e = Event::new(EventType::Message, app, d1, serde_json::json!({}));
        assert_eq!(
            s.create_message(&m, None, None, std::slice::from_ref(&e))
                .await,
            Err(StoreError::Conflict("message_id"))
        );
        assert_eq!(s.get_delivery(&e.request_id).await.unwrap(), None);
        let dev = device(app, "x");
        s.insert_device(&dev).await.unwrap();
        assert_eq!(
            s.update_device(
                dev.device_id,
                &Default::default(),
                &[wa_core::devices::DeviceStatus::Connected],
                std::slice::from_ref(&e),
            )
            .await,
            Err(StoreError::Conflict("status"))
        );
        assert_eq!(s.get_delivery(&e.request_id).await.unwrap(), None);
    }
}
