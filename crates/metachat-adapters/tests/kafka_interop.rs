//! A client no one here wrote reads what `KafkaEventBus` wrote: Debian's
//! `kcat` consumes our topic; keys, headers and payloads must be what the
//! record format promises. And the reverse: a record `kcat` writes with our
//! headers is delivered to our consumer as the same envelope.

mod kafka_support;

use futures::StreamExt;
use metachat_adapters::kafka::record;
use metachat_core::bus::EventBus;
use metachat_core::event::{Envelope, Metadata, NewEvent, StreamId, Timestamp};

fn rich(stream: &StreamId, version: u64, position: u64) -> Envelope {
    let m = Metadata::correlated(uuid::Uuid::new_v4())
        .caused_by(uuid::Uuid::new_v4())
        .with_actor(format!("actor-{position}"))
        .with_header("trace", format!("t{position}"));
    let e = NewEvent::new(
        "DiaryEntryCreated",
        format!("{{\"n\":{position},\"text\":\"é✓\"}}").into_bytes(),
    )
    .with_metadata(m)
    .with_schema_version(2);
    Envelope::recorded(e, stream.clone(), version, position, Timestamp::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_reads_keys_headers_and_payloads() {
    let Some(brokers) = kafka_support::brokers() else {
        return;
    };
    let bus = kafka_support::bus(&brokers);
    let topic = format!("{}diary", bus.config().topic_prefix());
    let a = StreamId::new(format!("diary-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let b = StreamId::new(format!("diary-{}", uuid::Uuid::new_v4().simple())).unwrap();
    let published = vec![
        rich(&a, 0, 0),
        rich(&b, 0, 1),
        rich(&a, 1, 2),
        rich(&b, 1, 3),
        rich(&a, 2, 4),
    ];
    bus.publish(&topic, &published).await.expect("publish");

    let got = kafka_support::kcat_read(&brokers, &topic);
    assert_eq!(got.len(), published.len(), "kcat read {got:?}");
    // Order holds per key (partition); match records by event id.
    for e in &published {
        let r = got
            .iter()
            .find(|r| r.header(record::EVENT_ID) == Some(e.event_id.to_string().as_str()))
            .unwrap_or_else(|| panic!("event {} not read by kcat", e.event_id));
        assert_eq!(
            r.key.as_deref(),
            Some(e.stream_id.as_str()),
            "key = stream id"
        );
        assert_eq!(
            r.payload.as_deref().map(str::as_bytes),
            Some(e.payload.as_slice()),
            "value = payload bytes"
        );
        let h = |k| r.header(k).map(str::to_owned);
        assert_eq!(h(record::EVENT_TYPE), Some(e.event_type.clone()));
        assert_eq!(h(record::SCHEMA_VERSION), Some("2".into()));
        assert_eq!(h(record::CONTENT_TYPE), Some("application/json".into()));
        assert_eq!(h(record::STREAM_VERSION), Some(e.version.to_string()));
        assert_eq!(h(record::GLOBAL_POSITION), Some(e.position.to_string()));
        assert_eq!(h(record::RECORDED_AT), Some(e.recorded_at.0.to_string()));
        assert_eq!(
            h(record::CORRELATION_ID),
            e.metadata.correlation_id.map(|u| u.to_string())
        );
        assert_eq!(
            h(record::CAUSATION_ID),
            e.metadata.causation_id.map(|u| u.to_string())
        );
        assert_eq!(h(record::ACTOR), e.metadata.actor.clone());
        assert_eq!(h("meta.trace"), e.metadata.headers.get("trace").cloned());
    }
    for s in [&a, &b] {
        let versions: Vec<String> = got
            .iter()
            .filter(|r| r.key.as_deref() == Some(s.as_str()))
            .map(|r| r.header(record::STREAM_VERSION).unwrap_or("?").to_owned())
            .collect();
        let want: Vec<String> = published
            .iter()
            .filter(|e| &e.stream_id == s)
            .map(|e| e.version.to_string())
            .collect();
        assert_eq!(versions, want, "stream {s}: order per key as kcat sees it");
        let partitions: std::collections::HashSet<i64> = got
            .iter()
            .filter(|r| r.key.as_deref() == Some(s.as_str()))
            .map(|r| r.partition)
            .collect();
        assert_eq!(partitions.len(), 1, "one stream, one partition");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_kcat_writes_is_delivered_as_an_envelope() {
    let Some(brokers) = kafka_support::brokers() else {
        return;
    };
    let bus = kafka_support::bus(&brokers);
    let topic = format!("{}user", bus.config().topic_prefix());
    bus.ensure_topic(&topic).await.expect("create topic");
    let id = uuid::Uuid::new_v4();
    let corr = uuid::Uuid::new_v4();
    let stream = format!("user-{}", uuid::Uuid::new_v4().simple());
    let headers = [
        format!("{}={id}", record::EVENT_ID),
        format!("{}=UserRegistered", record::EVENT_TYPE),
        format!("{}=1", record::SCHEMA_VERSION),
        format!("{}=application/json", record::CONTENT_TYPE),
        format!("{}=0", record::STREAM_VERSION),
        format!("{}=17", record::GLOBAL_POSITION),
        format!("{}=1700000000000000", record::RECORDED_AT),
        format!("{}={corr}", record::CORRELATION_ID),
        "meta.origin=kcat".to_owned(),
    ];
    let mut args = vec!["-P", "-b", &brokers, "-t", &topic, "-K", "|"];
    for h in &headers {
        args.push("-H");
        args.push(h);
    }
    kafka_support::kcat(&args, &format!("{stream}|{{\"email\":\"a@b.c\"}}\n"));
    let mut sub = bus.subscribe(&topic, "interop").await.expect("subscribe");
    let d = tokio::time::timeout(std::time::Duration::from_secs(60), sub.next())
        .await
        .expect("a delivery within a minute")
        .expect("the stream goes on")
        .expect("a decodable record");
    let e = &d.envelope;
    assert_eq!(e.event_id.0, id);
    assert_eq!(e.stream_id.as_str(), stream);
    assert_eq!(e.event_type, "UserRegistered");
    assert_eq!(
        (e.version, e.position, e.recorded_at.0),
        (0, 17, 1_700_000_000_000_000)
    );
    assert_eq!(e.metadata.correlation_id, Some(corr));
    assert_eq!(
        e.metadata.headers.get("origin").map(String::as_str),
        Some("kcat")
    );
    assert_eq!(e.payload, b"{\"email\":\"a@b.c\"}");
    d.ack().await.expect("ack");
}
