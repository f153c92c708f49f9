//! [`GroupCommit`]: write transactions of the embedded store, made durable
//! together.
//!
//! A durable redb commit waits for `fsync`, which costs more than the
//! transaction itself, so one writer thread takes every write queued while the
//! previous group was being made durable and runs each in a transaction of its
//! own, committed without syncing ([`Durability::None`]); then one empty
//! durable commit persists them all, and only after it are the callers
//! answered. A caller is never told a write succeeded before it is on disk,
//! and a write that fails or aborts touches nothing of the others. A write
//! alone in its group is committed durably at once, with no extra commit.
//!
//! The price: between its commit and the group's durable commit (one fsync), a
//! write is already visible to readers; if the process dies in that window it
//! is lost, though its caller was never told it succeeded.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

use redb::{Database, Durability, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::embedded::backend;

/// Most writes made durable by one fsync.
const MAX_GROUP: usize = 256;

/// Answers a write's caller once its group is durable (or failed to be).
type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// A queued write: runs its transaction, committed with the given durability,
/// and says how to answer the caller.
type Job = Box<dyn FnOnce(&Database, Durability) -> Reply + Send>;

/// The embedded store's writer thread and its queue; cheap to clone. When the
/// last clone is dropped, the thread finishes what is queued and ends, and the
/// drop waits for it, so the database file can be opened again right away.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    inner: Arc<Writer>,
}

struct Writer {
    /// `None` only while dropping.
    jobs: Option<Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GroupCommit {
    /// Starts the writer thread of `db`; it ends when the last clone is dropped.
    pub(crate) fn start(db: Arc<Database>) -> Result<Self, StoreError> {
        let (jobs, queue) = channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("pulse-store-writer".into())
            .spawn(move || write_groups(&db, &queue))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the store's writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Writer {
                jobs: Some(jobs),
                thread: Some(thread),
            }),
        })
    }

    /// Runs `work` in a write transaction of its own, commits it when `work`
    /// returns `Ok((_, true))` (aborts it otherwise), and answers once the
    /// commit is durable.
    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |db, durability| {
            let outcome = transact(db, durability, work);
            Box::new(move |durable: Result<(), StoreError>| {
                let _ = answer.send(durable.and(outcome));
            })
        });
        self.inner
            .jobs
            .as_ref()
            .expect("present until dropped")
            .send(job)
            .map_err(|_| StoreError::Unavailable("the store's writer thread has stopped".into()))?;
        answered
            .await
            .map_err(|_| StoreError::Backend("the store's writer thread dropped a write".into()))?
    }
}

/// One write transaction: `work`, then commit (with `durability`) or abort.
fn transact<T>(
    db: &Database,
    durability: Durability,
    work: impl FnOnce(&WriteTransaction) -> Result<(T, bool), StoreError>,
) -> Result<T, StoreError> {
    let mut txn = db.begin_write().map_err(backend)?;
    txn.set_durability(durability).map_err(backend)?;
    let (result, commit) = work(&txn)?;
    if commit {
        txn.commit().map_err(backend)?;
    } else {
        txn.abort().map_err(backend)?;
    }
    Ok(result)
}

/// The writer thread: takes whatever is queued, up to [`MAX_GROUP`], runs it,
/// makes it durable, answers; until every sender is gone.
fn write_groups(db: &Database, queue: &Receiver<Job>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = queue.recv() {
        group.push(first);
        group.extend(queue.try_iter().take(MAX_GROUP - 1));
        if group.len() == 1 {
            let job = group.pop().expect("one job");
            if let Some(reply) = run(job, db, Durability::Immediate) {
                reply(Ok(()));
            }
            continue;
        }
        let replies: Vec<Reply> = group
            .drain(..)
            .filter_map(|job| run(job, db, Durability::None))
            .collect();
        let durable = transact(db, Durability::Immediate, |_| Ok(((), true)));
        for reply in replies {
            reply(durable.clone());
        }
    }
}

/// Runs one job; a job that panics (a bug) is answered by its dropped reply
/// channel, and the thread goes on with the others.
fn run(job: Job, db: &Database, durability: Durability) -> Option<Reply> {
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(db, durability)));
    if ran.is_err() {
        tracing::error!("a write to the embedded store panicked; its caller gets an error");
    }
    ran.ok()
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableDefinition};

    use super::*;

    const NUMBERS: TableDefinition<u64, u64> = TableDefinition::new("numbers");

    fn open(dir: &std::path::Path) -> Arc<Database> {
        Arc::new(Database::create(dir.join("test.redb")).unwrap())
    }

    fn count(db: &Database) -> u64 {
        let txn = db.begin_read().unwrap();
        match txn.open_table(NUMBERS) {
            Ok(table) => redb::ReadableTableMetadata::len(&table).unwrap(),
            Err(_) => 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_persist_and_an_aborted_one_touches_nothing_else() {
        let dir = std::env::temp_dir().join(format!("pulse-group-commit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::fs::remove_file(dir.join("test.redb"));
        let db = open(&dir);
        let writer = GroupCommit::start(Arc::clone(&db)).unwrap();
        let writes = (0..200_u64).map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move {
                writer
                    .write(move |txn| {
                        txn.open_table(NUMBERS)
                            .map_err(backend)?
                            .insert(n, n)
                            .map_err(backend)?;
                        // Every tenth write changes its mind after writing: it must leave no trace.
                        Ok((n, n % 10 != 0))
                    })
                    .await
            })
        });
        for (n, write) in (0..).zip(writes.collect::<Vec<_>>()) {
            assert_eq!(write.await.unwrap().unwrap(), n);
        }
        let failed = writer
            .write(|_| -> Result<((), bool), StoreError> { Err(backend("refused")) })
            .await;
        assert!(matches!(failed, Err(StoreError::Backend(message)) if message == "refused"));
        assert_eq!(count(&db), 180);
        drop((writer, db));

        let reopened = open(&dir);
        assert_eq!(count(&reopened), 180, "every answered write is on disk");
        let txn = reopened.begin_read().unwrap();
        let table = txn.open_table(NUMBERS).unwrap();
        assert!(table.get(10).unwrap().is_none() && table.get(11).unwrap().is_some());
        drop((table, txn, reopened));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
