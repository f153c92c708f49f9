//! A source's partitions and its group's committed offsets: finding them
//! before a run, committing them during and after it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::group::GroupConsumer;
use super::ledger::ResumePoint;
use super::resume::{self, ResumeLog};
use super::source::KafkaSourceSettings;
use super::{KafkaConnectorError, REQUEST_TIMEOUT, client_config};

/// How long a run waits at start for the group's coordinator to be ready.
pub const COORDINATOR_WAIT: Duration = Duration::from_secs(60);

/// Whether `code` says the group's coordinator is moving or still loading: an
/// answer that comes right once the broker is ready.
fn coordinator_not_ready(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::NotCoordinator
            | RDKafkaErrorCode::CoordinatorLoadInProgress
            | RDKafkaErrorCode::CoordinatorNotAvailable
    )
}

/// A (topic, partition).
pub type TopicPartition = (String, i32);

/// Where each partition a run read ends, filled in by the readers when their
/// input is exhausted, for the commit after a bounded run.
pub type PartitionOffsets = Arc<Mutex<BTreeMap<TopicPartition, ResumePoint>>>;

/// Every (topic, partition) the source reads, in the fixed order used to deal
/// them to workers; an error if a topic it names does not exist.
pub fn partitions(settings: &KafkaSourceSettings) -> Result<Vec<TopicPartition>, KafkaConnectorError> {
    let consumer: BaseConsumer = client_config(&settings.brokers).create()?;
    let found = matching_partitions(&consumer, settings)?;
    for topic in &settings.topics {
        if !found.iter().any(|(t, _)| t == topic) {
            return Err(KafkaConnectorError::UnknownTopic(topic.clone()));
        }
    }
    Ok(found)
}

/// The partitions of the topics `settings` names or matches that the broker
/// has now, sorted.
pub(crate) fn matching_partitions(
    consumer: &BaseConsumer,
    settings: &KafkaSourceSettings,
) -> Result<Vec<TopicPartition>, KafkaConnectorError> {
    let metadata = consumer.fetch_metadata(None, REQUEST_TIMEOUT)?;
    let pattern = settings.topic_pattern.as_deref().map(regex::Regex::new).transpose()?;
    let mut found = Vec::new();
    for topic in metadata.topics() {
        let named = settings.topics.iter().any(|t| t == topic.name());
        let matched = pattern.as_ref().is_some_and(|p| p.is_match(topic.name()));
        if named || matched {
            found.extend(topic.partitions().iter().map(|p| (topic.name().to_owned(), p.id())));
        }
    }
    found.sort();
    Ok(found)
}

/// Clients for a source's consumer group and resume log: where each
/// partition resumes from, and the commits of resume points (by each
/// worker's committer while the source runs, and at the end of a bounded run,
/// with clients connected when the run started).
pub struct GroupOffsets {
    brokers: String,
    consumer: GroupConsumer,
    log: ResumeLog,
    component: String,
}

impl GroupOffsets {
    /// Clients for `settings`' group and resume log.
    pub fn connect(settings: &KafkaSourceSettings) -> Result<Self, KafkaConnectorError> {
        Ok(Self {
            brokers: settings.brokers.clone(),
            consumer: GroupConsumer::create(client_config(&settings.brokers).set("group.id", &settings.group))?,
            log: ResumeLog::connect(&settings.brokers, &settings.resume_topic, &settings.group)?,
            component: settings.component.clone(),
        })
    }

    /// Where each of the source's `partitions` resumes: the newest point of
    /// the resume log (created if missing), or the group's committed offset
    /// where that is further on (an offset moved by another tool); partitions
    /// with neither are left out. The log and the group are asked at the same
    /// time: each takes a few broker round trips, and a run waits for both.
    pub fn resume_points(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, ResumePoint>, KafkaConnectorError> {
        let (committed, logged) = std::thread::scope(|scope| {
            let committed = scope.spawn(|| self.committed_offsets(partitions));
            let logged = resume::read_log(&self.log, &self.brokers, partitions);
            let committed = committed
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (committed, logged)
        });
        let mut points = logged?;
        for element in committed?.elements() {
            if let Offset::Offset(offset) = element.offset() {
                let partition = (element.topic().to_owned(), element.partition());
                let logged = points.get(&partition).map(|point| point.offset);
                if logged.is_none_or(|logged| logged < offset) {
                    points.insert(partition, ResumePoint::at(offset));
                }
            }
        }
        Ok(points)
    }

    /// The group's committed offsets of `partitions`. A broker whose group
    /// coordinator is not ready yet (a broker just started, whose offsets topic
    /// is still being created or loaded) is asked again for up to
    /// [`COORDINATOR_WAIT`], as Kafka's own clients do.
    fn committed_offsets(&self, partitions: &[TopicPartition]) -> Result<TopicPartitionList, KafkaConnectorError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in partitions {
            list.add_partition_offset(topic, *partition, Offset::Stored)?;
        }
        let deadline = Instant::now() + COORDINATOR_WAIT;
        let mut pause = Duration::from_millis(100);
        loop {
            match self.consumer.committed_offsets(list.clone(), REQUEST_TIMEOUT) {
                // rdkafka reports this call's errors as metadata errors.
                Err(KafkaError::MetadataFetch(code)) if coordinator_not_ready(code) && Instant::now() < deadline => {
                    tracing::info!(component = %self.component, error = %code, "the group's coordinator is not ready; asking again");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                result => return Ok(result?),
            }
        }
    }

    /// Logs `points` to the resume log, then commits them for the group, and
    /// records how long that took: each worker's committer while the source
    /// runs, and the final commit after a bounded run.
    pub fn commit(&self, points: &BTreeMap<TopicPartition, ResumePoint>) -> Result<(), KafkaConnectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let result = self
            .log
            .append(points)
            .and_then(|()| Ok(self.consumer.commit(&commit_list(points)?, CommitMode::Sync)?));
        let labels = [("component", self.component.clone())];
        metrics::histogram!("pulse_kafka_commit_seconds", &labels).record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("pulse_kafka_commit_errors_total", &labels).increment(1);
        }
        result
    }
}

/// The commit request for `points`, each with its point as metadata.
fn commit_list(points: &BTreeMap<TopicPartition, ResumePoint>) -> Result<TopicPartitionList, KafkaConnectorError> {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), point) in points {
        list.add_partition_offset(topic, *partition, Offset::Offset(point.offset))?;
        if let Some(mut element) = list.find_partition(topic, *partition) {
            element.set_metadata(point.encode());
        }
    }
    Ok(list)
}
