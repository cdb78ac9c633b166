//! The table's operations as the adapter uses them: point reads, paged queries, batch reads
//! and writes, and conditional writes (one item alone, several in one transaction). It is
//! also the one place where DynamoDB's failures become the port's `StoreError`s
//! (`classify`, then `meaning`): a failed condition means what the write that carried it
//! declares.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put, PutRequest,
    TransactWriteItem, Update, WriteRequest,
};
use wa_core::store::StoreError;

use super::DynamoStore;
use super::codec::{Attrs, Index, Item, REV};
use super::retry::{Backoff, drain};

/// TransactWriteItems takes at most this many actions.
pub(crate) const MAX_TRANSACTION_ITEMS: usize = 100;
const BATCH_GET_KEYS: usize = 100;
/// BatchWriteItem takes 25 requests; media chunks (up to ~350 KB each) go 10 at a time to
/// keep a request near 4 MB.
const BATCH_WRITE_ITEMS: usize = 25;
const BATCH_WRITE_CHUNKS: usize = 10;

/// What a failed condition of one write means.
#[derive(Debug, Clone)]
pub(crate) enum OnCondition {
    /// The caller gets this error.
    Fail(StoreError),
    /// The record changed since it was read: read it again and retry.
    Stale,
}

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WriteError {
    Store(StoreError),
    /// A write conditioned on the revision that was read found another one.
    Stale,
}

/// Runs a read-modify-write until it commits or fails: `Stale` (what it read moved on)
/// runs it again on fresh reads after a pause (`Backoff::STALE`: 10 attempts in all), then
/// fails with `Backend`.
pub(crate) async fn until_fresh<T, F, Fut>(attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WriteError>>,
{
    until_fresh_by(&Backoff::STALE, attempt).await
}

async fn until_fresh_by<T, F, Fut>(policy: &Backoff, mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WriteError>>,
{
    for n in 0..=policy.retries {
        if n > 0 {
            // Whoever moved the record on may still be writing: let it finish.
            policy.pause(n - 1).await;
        }
        match attempt().await {
            Err(WriteError::Stale) => continue,
            r => return Ok(r?),
        }
    }
    Err(WriteError::Stale.into())
}

impl From<StoreError> for WriteError {
    fn from(e: StoreError) -> Self {
        WriteError::Store(e)
    }
}

impl From<WriteError> for StoreError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Store(e) => e,
            WriteError::Stale => StoreError::Backend("the record kept changing".into()),
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Put(Item),
    Update {
        key: Item,
        expression: String,
    },
    Delete(Item),
    /// Writes nothing: only its condition counts (in a transaction).
    Check(Item),
}

/// A request builder with the condition, names and values of `$w` (a `Write`): every
/// write request of the SDK (put, update, delete, condition check; alone or in a
/// transaction) has these three setters.
macro_rules! conditioned {
    ($builder:expr, $w:expr) => {
        $builder
            .set_condition_expression($w.condition.clone())
            .set_expression_attribute_names($w.names())
            .set_expression_attribute_values($w.values())
    };
}

/// One write of one item, with its condition and what the condition's failure means.
#[derive(Debug, Clone)]
pub(crate) struct Write {
    op: Op,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: Attrs,
    on_condition: OnCondition,
}

impl Write {
    fn new(op: Op) -> Write {
        Write {
            op,
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
            on_condition: OnCondition::Fail(StoreError::Backend(
                "a write without a condition failed its condition".into(),
            )),
        }
    }

    /// Writes the whole item, replacing any item with its key.
    pub(crate) fn put(item: Item) -> Write {
        Write::new(Op::Put(item))
    }

    /// Puts the item only if no item has its key; otherwise fails with `conflict`.
    pub(crate) fn insert(item: Item, conflict: StoreError) -> Write {
        Write::put(item).when("attribute_not_exists(pk)", OnCondition::Fail(conflict))
    }

    /// Replaces a record read at revision `read_rev` (the item gets `read_rev + 1`); `Stale`
    /// when the stored record is at another revision or gone.
    pub(crate) fn replace(item: Item, read_rev: u64) -> Write {
        Write::put(item.with_rev(read_rev + 1)).at_rev(read_rev)
    }

    /// Conditions the write on the stored record being at revision `read_rev` (`Stale`
    /// otherwise, also when it is gone).
    pub(crate) fn at_rev(self, read_rev: u64) -> Write {
        self.when("#rev = :rev", OnCondition::Stale)
            .name("#rev", REV)
            .value(":rev", AttributeValue::N(read_rev.to_string()))
    }

    /// An UpdateItem expression on the item with `key` (which it creates if missing, unless
    /// a condition says otherwise).
    pub(crate) fn update(key: Item, expression: impl Into<String>) -> Write {
        Write::new(Op::Update {
            key,
            expression: expression.into(),
        })
    }

    pub(crate) fn delete(key: Item) -> Write {
        Write::new(Op::Delete(key))
    }

    /// Writes nothing: only its condition (set with `when`) counts. Only meaningful in a
    /// transaction with other writes, which it then guards.
    pub(crate) fn check(key: Item) -> Write {
        Write::new(Op::Check(key))
    }

    /// Fails with `error` when an item with `key` exists; writes nothing (a `check`).
    pub(crate) fn absent(key: Item, error: StoreError) -> Write {
        Write::check(key).when("attribute_not_exists(pk)", OnCondition::Fail(error))
    }

    /// Adds the condition (placeholders `#x`/`:x`, bound with `name`/`value`).
    pub(crate) fn when(mut self, condition: &str, on_condition: OnCondition) -> Write {
        self.condition = Some(condition.to_owned());
        self.on_condition = on_condition;
        self
    }

    pub(crate) fn name(mut self, placeholder: &str, attribute: &str) -> Write {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, v: AttributeValue) -> Write {
        self.values.insert(placeholder.to_owned(), v);
        self
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<Attrs> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    fn transact_item(&self, table: &str) -> Result<TransactWriteItem, StoreError> {
        let item = TransactWriteItem::builder();
        Ok(match &self.op {
            Op::Put(i) => {
                let put = Put::builder().table_name(table).set_item(Some(i.0.clone()));
                item.put(conditioned!(put, self).build().map_err(build_error)?)
            }
            Op::Update { key, expression } => {
                let update = Update::builder()
                    .table_name(table)
                    .set_key(Some(key.0.clone()))
                    .update_expression(expression);
                item.update(conditioned!(update, self).build().map_err(build_error)?)
            }
            Op::Delete(key) => {
                let delete = Delete::builder()
                    .table_name(table)
                    .set_key(Some(key.0.clone()));
                item.delete(conditioned!(delete, self).build().map_err(build_error)?)
            }
            Op::Check(key) => {
                let check = ConditionCheck::builder()
                    .table_name(table)
                    .set_key(Some(key.0.clone()));
                item.condition_check(conditioned!(check, self).build().map_err(build_error)?)
            }
        }
        .build())
    }
}

fn build_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("building a DynamoDB request: {e}"))
}

/// How a DynamoDB call failed, as far as the port cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The condition of the write at this position failed.
    Condition(usize),
    /// A concurrent transaction held an item; trying again will likely succeed.
    Contention,
    Throttled,
    /// An item would exceed DynamoDB's 400 KB.
    TooLarge,
    Other(String),
}

/// Whether a DynamoDB error text says an item exceeds the item size limit
/// ("Item size has exceeded the maximum allowed size", "Item size to update has exceeded
/// the maximum allowed size").
fn says_too_large(text: &str) -> bool {
    text.contains("Item size") && text.contains("exceeded the maximum allowed size")
}

/// The one mapping of DynamoDB errors: `code` is the error code of the call, `reasons` the
/// cancellation reason codes of a canceled transaction (one per action, in order), `text`
/// the error's text with the cancellation reasons' messages.
pub(crate) fn classify(code: Option<&str>, reasons: &[Option<&str>], text: String) -> Failure {
    const THROTTLED: [&str; 4] = [
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "Throttling",
    ];
    match code {
        Some("ConditionalCheckFailedException") => Failure::Condition(0),
        Some("TransactionConflictException") => Failure::Contention,
        Some(c) if THROTTLED.contains(&c) => Failure::Throttled,
        Some("ValidationException") if says_too_large(&text) => Failure::TooLarge,
        Some("TransactionCanceledException") => {
            // The first failed condition decides, so writes are ordered by precedence.
            if let Some(i) = reasons
                .iter()
                .position(|r| *r == Some("ConditionalCheckFailed"))
            {
                Failure::Condition(i)
            } else if reasons.contains(&Some("TransactionConflict")) {
                Failure::Contention
            } else if reasons
                .iter()
                .any(|r| matches!(r, Some("ThrottlingError" | "ProvisionedThroughputExceeded")))
            {
                Failure::Throttled
            } else if reasons.contains(&Some("ValidationError")) && says_too_large(&text) {
                Failure::TooLarge
            } else {
                Failure::Other(text)
            }
        }
        _ => Failure::Other(text),
    }
}

/// What a failure means to the caller: a failed condition is what its write declares.
fn meaning(failure: Failure, writes: &[Write]) -> WriteError {
    match failure {
        Failure::Condition(i) => match writes.get(i).map(|w| &w.on_condition) {
            Some(OnCondition::Fail(e)) => WriteError::Store(e.clone()),
            Some(OnCondition::Stale) => WriteError::Stale,
            None => StoreError::Backend(format!("the condition of write {i} failed")).into(),
        },
        Failure::Contention | Failure::Throttled => StoreError::Throttled.into(),
        Failure::TooLarge => StoreError::TooLarge.into(),
        Failure::Other(text) => StoreError::Backend(text).into(),
    }
}

fn describe<E>(e: &SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>) -> String
where
    E: std::error::Error + 'static,
{
    DisplayErrorContext(e).to_string()
}

/// The failure of a call that carries no condition (reads, batch writes, table management).
pub(crate) fn read_error<E>(
    e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match classify(e.code(), &[], describe(&e)) {
        Failure::Throttled | Failure::Contention => StoreError::Throttled,
        Failure::TooLarge => StoreError::TooLarge,
        Failure::Condition(_) => StoreError::Backend("unexpected condition failure".into()),
        Failure::Other(text) => StoreError::Backend(text),
    }
}

/// A paged Query: `range` restricts the range key.
#[derive(Debug, Clone)]
pub(crate) struct Query {
    pub(crate) index: Index,
    pub(crate) hash: String,
    pub(crate) range: Range,
    /// Descending range-key order.
    pub(crate) backwards: bool,
    /// Keeps only items whose attribute equals the value (evaluated after the read).
    pub(crate) filter: Option<(&'static str, String)>,
}

#[derive(Debug, Clone)]
pub(crate) enum Range {
    All,
    After(String),
    Before(String),
    AtMost(String),
}

impl Query {
    pub(crate) fn new(index: Index, hash: impl Into<String>) -> Query {
        Query {
            index,
            hash: hash.into(),
            range: Range::All,
            backwards: false,
            filter: None,
        }
    }

    pub(crate) fn range(mut self, range: Range) -> Query {
        self.range = range;
        self
    }

    pub(crate) fn backwards(mut self) -> Query {
        self.backwards = true;
        self
    }

    pub(crate) fn filter(mut self, attribute: &'static str, value: String) -> Query {
        self.filter = Some((attribute, value));
        self
    }
}

impl DynamoStore {
    /// A strongly consistent read of one item.
    pub(crate) async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(self.table())
            .set_key(Some(key.0))
            .consistent_read(true)
            .send()
            .await
            .map_err(read_error)?;
        Ok(out.item.map(Item))
    }

    /// Strongly consistent reads of many items (missing ones are left out, order is lost).
    /// Keys left unprocessed are read again with backoff (`Backoff::UNPROCESSED`), then
    /// `Throttled`.
    pub(crate) async fn get_many(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut unique: Vec<Item> = Vec::with_capacity(keys.len());
        for k in keys {
            if !unique.contains(&k) {
                unique.push(k);
            }
        }
        let mut found = Vec::with_capacity(unique.len());
        for batch in unique.chunks(BATCH_GET_KEYS) {
            let keys: Vec<Attrs> = batch.iter().map(|k| k.0.clone()).collect();
            // Keys DynamoDB leaves unprocessed (throttled) are asked for again.
            let items = drain(&Backoff::UNPROCESSED, keys, |pending| async move {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(self.table(), request)
                    .send()
                    .await
                    .map_err(read_error)?;
                let items = out
                    .responses
                    .and_then(|mut r| r.remove(self.table()))
                    .unwrap_or_default();
                let left = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(self.table()))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                Ok((items, left))
            })
            .await?;
            found.extend(items.into_iter().map(Item));
        }
        Ok(found)
    }

    /// One page of a query: at most `limit` items (before the filter) and where to go on.
    pub(crate) async fn query_page(
        &self,
        q: &Query,
        start: Option<Attrs>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<Attrs>), StoreError> {
        let mut condition = "#h = :h".to_owned();
        let mut names = HashMap::from([("#h".to_owned(), q.index.hash_key().to_owned())]);
        let mut values = HashMap::from([(":h".to_owned(), AttributeValue::S(q.hash.clone()))]);
        let bound = match &q.range {
            Range::All => None,
            Range::After(v) => Some((">", v)),
            Range::Before(v) => Some(("<", v)),
            Range::AtMost(v) => Some(("<=", v)),
        };
        if let Some((op, v)) = bound {
            condition.push_str(&format!(" AND #r {op} :r"));
            names.insert("#r".into(), q.index.range_key().into());
            values.insert(":r".into(), AttributeValue::S(v.clone()));
        }
        let mut filter = None;
        if let Some((attribute, v)) = &q.filter {
            filter = Some("#f = :f".to_owned());
            names.insert("#f".into(), (*attribute).into());
            values.insert(":f".into(), AttributeValue::S(v.clone()));
        }
        let out = self
            .client
            .query()
            .table_name(self.table())
            .set_index_name(q.index.name().map(str::to_owned))
            // Reads of the table are strongly consistent; indexes only offer eventual reads.
            .consistent_read(q.index == Index::Table)
            .key_condition_expression(condition)
            .set_filter_expression(filter)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .scan_index_forward(!q.backwards)
            .set_exclusive_start_key(start)
            .limit(limit.clamp(1, i32::MAX as usize) as i32)
            .send()
            .await
            .map_err(read_error)?;
        Ok((
            out.items
                .unwrap_or_default()
                .into_iter()
                .map(Item)
                .collect(),
            out.last_evaluated_key,
        ))
    }

    /// The first `want` items of a query (fewer at its end), reading as many pages as it
    /// takes: a filtered query still returns full pages.
    pub(crate) async fn query(&self, q: &Query, want: usize) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        while items.len() < want {
            let missing = want - items.len();
            // A filter drops items after the read, so read more than are missing.
            let limit = if q.filter.is_some() {
                missing.max(100)
            } else {
                missing
            };
            let (page, next) = self.query_page(q, start, limit).await?;
            items.extend(page);
            match next {
                Some(n) => start = Some(n),
                None => break,
            }
        }
        items.truncate(want);
        Ok(items)
    }

    /// Writes one item alone, or several in one transaction (all or none). A failed
    /// condition becomes what its write declares; a write that lost a race with another
    /// transaction is tried again a few times. In a fenced view the transaction also checks
    /// the lease, first: a lost lease fails it with `Fenced` whatever else it would meet.
    pub(crate) async fn write(&self, mut writes: Vec<Write>) -> Result<(), WriteError> {
        if let Some(fence) = &self.fence
            && !writes.is_empty()
        {
            writes.insert(0, super::leases::fence_check(fence));
        }
        self.write_unfenced(writes).await
    }

    /// `write` without the fence (the writes of leases and membership records).
    pub(crate) async fn write_unfenced(&self, writes: Vec<Write>) -> Result<(), WriteError> {
        if writes.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Backend(format!(
                "a transaction of {} items exceeds DynamoDB's {MAX_TRANSACTION_ITEMS}",
                writes.len()
            ))
            .into());
        }
        let mut attempt = 0;
        loop {
            let failure = match writes.as_slice() {
                [] => None,
                [w] if !matches!(w.op, Op::Check(_)) => self.write_one(w).await,
                _ => self.transact(&writes).await?,
            };
            match failure {
                None => return Ok(()),
                Some(Failure::Contention) if attempt < Backoff::CONTENTION.retries => {
                    Backoff::CONTENTION.pause(attempt).await;
                    attempt += 1;
                }
                Some(f) => return Err(meaning(f, &writes)),
            }
        }
    }

    async fn write_one(&self, w: &Write) -> Option<Failure> {
        fn failed<E: ProvideErrorMetadata + std::error::Error + 'static>(
            e: SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
        ) -> Option<Failure> {
            Some(classify(e.code(), &[], describe(&e)))
        }
        let table = self.table();
        let c = &self.client;
        match &w.op {
            // `write` sends a lone check as a transaction.
            Op::Check(_) => Some(Failure::Other(
                "a condition check outside a transaction".into(),
            )),
            Op::Put(item) => {
                let put = c
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item.0.clone()));
                conditioned!(put, w).send().await.err().and_then(failed)
            }
            Op::Update { key, expression } => {
                let update = c
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key.0.clone()))
                    .update_expression(expression);
                conditioned!(update, w).send().await.err().and_then(failed)
            }
            Op::Delete(key) => {
                let delete = c
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key.0.clone()));
                conditioned!(delete, w).send().await.err().and_then(failed)
            }
        }
    }

    async fn transact(&self, writes: &[Write]) -> Result<Option<Failure>, StoreError> {
        let items = writes
            .iter()
            .map(|w| w.transact_item(self.table()))
            .collect::<Result<Vec<_>, _>>()?;
        let Err(e) = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        else {
            return Ok(None);
        };
        let mut text = describe(&e);
        let reasons: Vec<Option<&str>> = match e.as_service_error() {
            Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                // The reasons' messages say what the codes do not (which limit was hit).
                for m in c.cancellation_reasons().iter().filter_map(|r| r.message()) {
                    text.push_str("; ");
                    text.push_str(m);
                }
                c.cancellation_reasons().iter().map(|r| r.code()).collect()
            }
            _ => Vec::new(),
        };
        Ok(Some(classify(e.code(), &reasons, text)))
    }

    /// Puts many items, not atomically (media chunks before the message that names them).
    /// Items left unprocessed are written again with backoff (`Backoff::UNPROCESSED`),
    /// then `Throttled`.
    pub(crate) async fn put_many(&self, items: Vec<Item>) -> Result<(), StoreError> {
        let requests = items
            .into_iter()
            .map(|i| {
                PutRequest::builder()
                    .set_item(Some(i.0))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests, BATCH_WRITE_CHUNKS).await
    }

    /// Deletes many items, not atomically.
    pub(crate) async fn delete_many(&self, keys: Vec<Item>) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|k| {
                DeleteRequest::builder()
                    .set_key(Some(k.0))
                    .build()
                    .map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(build_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(requests, BATCH_WRITE_ITEMS).await
    }

    async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
        per_call: usize,
    ) -> Result<(), StoreError> {
        for batch in requests.chunks(per_call) {
            // Requests DynamoDB leaves unprocessed (throttled) are sent again.
            drain(
                &Backoff::UNPROCESSED,
                batch.to_vec(),
                |pending| async move {
                    let out = self
                        .client
                        .batch_write_item()
                        .request_items(self.table(), pending)
                        .send()
                        .await
                        .map_err(read_error)?;
                    let left = out
                        .unprocessed_items
                        .and_then(|mut u| u.remove(self.table()))
                        .unwrap_or_default();
                    Ok((Vec::<()>::new(), left))
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Duration;

    #[tokio::test]
    async fn stale_read_modify_writes_pause_then_give_up() {
        let p = Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(20),
            retries: 3,
        };
        let calls = Cell::new(0);
        let start = std::time::Instant::now();
        let got: Result<(), _> = until_fresh_by(&p, || {
            calls.set(calls.get() + 1);
            async { Err(WriteError::Stale) }
        })
        .await;
        assert_eq!(
            got,
            Err(StoreError::Backend("the record kept changing".into()))
        );
        assert_eq!(calls.get(), 4, "the first attempt and three retries");
        // Three pauses of at least half of 20 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_fresh_retry_commits_and_a_refusal_ends_the_loop() {
        let calls = Cell::new(0);
        let got = until_fresh(|| {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                if n == 1 {
                    Err(WriteError::Stale)
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got, Ok(2));
        let refused: Result<(), _> =
            until_fresh(|| async { Err(WriteError::Store(StoreError::NotFound)) }).await;
        assert_eq!(refused, Err(StoreError::NotFound), "not retried");
        assert_eq!(Backoff::STALE.retries + 1, 10, "10 attempts in all");
    }

    #[test]
    fn failures_map_to_the_port() {
        let text = || "x".to_owned();
        assert_eq!(
            classify(Some("ConditionalCheckFailedException"), &[], text()),
            Failure::Condition(0)
        );
        assert_eq!(
            classify(
                Some("TransactionCanceledException"),
                &[
                    Some("None"),
                    Some("ConditionalCheckFailed"),
                    Some("ConditionalCheckFailed")
                ],
                text()
            ),
            Failure::Condition(1),
            "the first failed condition decides"
        );
        assert_eq!(
            classify(
                Some("TransactionCanceledException"),
                &[Some("TransactionConflict"), Some("None")],
                text()
            ),
            Failure::Contention
        );
        assert_eq!(
            classify(
                Some("TransactionCanceledException"),
                &[Some("None"), Some("ThrottlingError")],
                text()
            ),
            Failure::Throttled
        );
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
        ] {
            assert_eq!(classify(Some(code), &[], text()), Failure::Throttled);
        }
        assert_eq!(
            classify(Some("ValidationException"), &[], text()),
            Failure::Other("x".into())
        );
        assert_eq!(classify(None, &[], text()), Failure::Other("x".into()));
    }

    #[test]
    fn an_item_over_the_size_limit_is_too_large() {
        let put = "ValidationException: Item size has exceeded the maximum allowed size";
        let update = "Item size to update has exceeded the maximum allowed size";
        assert_eq!(
            classify(Some("ValidationException"), &[], put.into()),
            Failure::TooLarge
        );
        assert_eq!(
            classify(Some("ValidationException"), &[], update.into()),
            Failure::TooLarge
        );
        assert_eq!(
            classify(
                Some("TransactionCanceledException"),
                &[Some("None"), Some("ValidationError")],
                format!("Transaction cancelled; {update}")
            ),
            Failure::TooLarge,
            "a canceled transaction whose reason says so"
        );
        assert_eq!(
            classify(
                Some("ValidationException"),
                &[],
                "One or more parameter values were invalid".into()
            ),
            Failure::Other("One or more parameter values were invalid".into()),
            "other validation errors stay backend errors"
        );
        assert_eq!(
            classify(
                Some("TransactionCanceledException"),
                &[Some("ConditionalCheckFailed"), Some("ValidationError")],
                format!("Transaction cancelled; {update}")
            ),
            Failure::Condition(0),
            "a failed condition still decides first"
        );
        assert!(matches!(
            meaning(Failure::TooLarge, &[]),
            WriteError::Store(StoreError::TooLarge)
        ));
    }
}
