//! The baseline of the Kafka source benchmark: bare rdkafka consumers, one
//! thread per partition (as much parallelism as pulse's workers get), that read
//! every partition of a topic from the beginning to its end offset and only
//! count the messages.
//!
//! Usage: `kafka-bare-consumer BROKERS TOPIC`; prints
//! `engine=bare-rdkafka messages=N bytes=B errors=E seconds=S messages_per_s=R`.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(10);

fn consumer(brokers: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("bare-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10") // as pulse's consumers
        .create()
        .expect("a consumer")
}

/// Reads one partition to its end offset: (messages, bytes, errors).
fn read_partition(brokers: &str, topic: &str, partition: i32) -> (u64, u64, u64) {
    let consumer = consumer(brokers);
    let end = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .expect("watermarks")
        .1;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, Offset::Beginning)
        .expect("partition");
    consumer.assign(&list).expect("assign");
    // Done at the end offset once caught up (end of partition, or nothing new):
    // the same rule as pulse's bounded reads, since tansu reports an end offset
    // short of its last record batch.
    let (mut position, mut messages, mut bytes, mut errors) = (0, 0, 0, 0);
    let mut caught_up = false;
    while !(position >= end && caught_up) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                caught_up = false;
                position = message.offset() + 1;
                messages += 1;
                bytes += message.payload().map_or(0, <[u8]>::len) as u64;
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => caught_up = true,
            Some(Err(error)) => {
                eprintln!("partition {partition}: {error}");
                errors += 1;
            }
        }
    }
    (messages, bytes, errors)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, brokers, topic] = &args[..] else {
        eprintln!("usage: kafka-bare-consumer BROKERS TOPIC");
        std::process::exit(2);
    };
    let metadata = consumer(brokers)
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    let partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let started = Instant::now();
    let totals = std::thread::scope(|scope| {
        let readers: Vec<_> = partitions
            .iter()
            .map(|p| scope.spawn(move || read_partition(brokers, topic, *p)))
            .collect();
        readers
            .into_iter()
            .map(|r| r.join().expect("a reader"))
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    });
    let seconds = started.elapsed().as_secs_f64();
    let (messages, bytes, errors) = totals;
    println!(
        "engine=bare-rdkafka messages={messages} bytes={bytes} errors={errors} seconds={seconds:.3} messages_per_s={:.0}",
        messages as f64 / seconds
    );
}
