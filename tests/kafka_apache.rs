//! What only the real broker can show, each on a private Apache Kafka of the test's own
//! (`common::kafka::PrivateBroker`, from the jars `.ci/run` caches): SASL_SSL with SCRAM-SHA-512 as
//! the seeds' Strimzi cluster runs it (a CA and a broker certificate made here with `openssl`, the
//! user created through the broker's admin API), and the idempotent producer's duplicate detection
//! when a connection dies after the broker appended a batch and before its answer arrived. Built
//! with `--features kafka`.
#![cfg(feature = "kafka")]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::kafka::{free_port, python, PrivateBroker};
use common::proxy::TcpProxy;
use streamforge::app::NodeContext;
use streamforge::bus::OutRecord;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A throw-away CA and a broker certificate it signed, for 127.0.0.1 and localhost; the broker's
/// key store (key + certificate, PKCS#12, password [`KEYSTORE_PASSWORD`]) is `broker.p12`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streamforge-test-ca"]
            .iter()
            .copied()
            .chain(["-keyout", "ca.key", "-out", "ca.crt"])
            .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "broker.key",
            "-out",
            "broker.csr",
        ],
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "broker.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "broker.crt",
        ],
    );
    let pass = format!("pass:{KEYSTORE_PASSWORD}");
    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "broker.crt",
            "-inkey",
            "broker.key",
            "-name",
            "broker",
            "-passout",
            &pass,
            "-out",
            "broker.p12",
        ],
    );
}

const KEYSTORE_PASSWORD: &str = "keystore-for-tests";

/// The node's config file for the SCRAM listener, loaded through the real loader.
fn sasl_config(dir: &Path, sasl_port: u16, password: &str) -> streamforge::config::Config {
    let password_file = dir.join(format!("password-{}", password.len()));
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let file = dir.join(format!("node-{}.toml", password.len()));
    std::fs::write(
        &file,
        format!(
            "[bus]\nurl = \"kafka://127.0.0.1:{sasl_port}\"\n[bus.kafka]\nsecurity_protocol = \"SASL_SSL\"\n\
             sasl_mechanism = \"SCRAM-SHA-512\"\nsasl_username = \"user-streamforge\"\n\
             sasl_password_file = \"{}\"\nssl_ca_location = \"{}\"\ndelivery_timeout_ms = 15000\n\
             [store]\nurl = \"sqlite::memory:\"\n",
            password_file.display(),
            dir.join("ca.crt").display()
        ),
    )
    .unwrap();
    streamforge::config::load(Some(&file), Vec::new()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_works_over_sasl_ssl_with_scram_sha_512_and_a_wrong_password_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let sasl_port = free_port();
    let listener = format!(
        "listeners=PLAINTEXT://127.0.0.1:@PORT@,CONTROLLER://127.0.0.1:@CONTROLLER_PORT@,SASL_SSL://127.0.0.1:{sasl_port}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:@PORT@,SASL_SSL://127.0.0.1:{sasl_port}\n\
         sasl.enabled.mechanisms=SCRAM-SHA-512\n\
         listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n\
         listener.name.sasl_ssl.ssl.keystore.type=PKCS12\n\
         listener.name.sasl_ssl.ssl.keystore.location={}\n\
         listener.name.sasl_ssl.ssl.keystore.password={KEYSTORE_PASSWORD}\n",
        certs.path().join("broker.p12").display()
    );
    let Some(broker) = PrivateBroker::apache(&listener) else { return };
    // The user, created through the admin API on the plaintext listener (as Strimzi's user
    // operator would for a KafkaUser).
    let made = python(&["scram-user", &broker.broker.addr, "user-streamforge", "s3cret-for-tests"]);
    assert_eq!(made[0]["user"], "user-streamforge");

    let ctx = NodeContext::open(sasl_config(certs.path(), sasl_port, "s3cret-for-tests")).await.unwrap();
    let topic = common::unique_name("scram");
    ctx.bus.ensure_topic(&topic, 2).await.unwrap();
    let records: Vec<OutRecord> = (0..200).map(|i| OutRecord::keyed(format!("k{}", i % 7), format!("{i}"))).collect();
    ctx.bus.publish(&topic, records).await.unwrap();
    let mut consumer = ctx.bus.subscribe(&common::unique_name("scram-g"), &topic).await.unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while got.len() < 200 && std::time::Instant::now() < deadline {
        got.extend(consumer.poll(200, Duration::from_millis(200)).await.unwrap());
    }
    let mut values: Vec<u32> = got.iter().map(|m| std::str::from_utf8(&m.payload).unwrap().parse().unwrap()).collect();
    values.sort();
    assert_eq!(values, (0..200).collect::<Vec<u32>>(), "every record through the SCRAM listener, once");
    // The same records as the plaintext listener serves them: one broker, one log.
    assert_eq!(python(&["read", &broker.broker.addr, &topic, "200"]).len(), 200);

    // A wrong password: the broker refuses the client, and the node's start says so at once
    // instead of waiting for the admin request to time out.
    let started = std::time::Instant::now();
    let wrong = NodeContext::open(sasl_config(certs.path(), sasl_port, "not-the-password")).await;
    let took = started.elapsed();
    let refused = match wrong {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a node with a wrong password started"),
    };
    eprintln!("a wrong password, after {took:?}: {refused}");
    assert!(refused.contains("uthentication") || refused.contains("SASL"), "the error says why: {refused}");
    assert_eq!(python(&["read", &broker.broker.addr, &topic, "1000"]).len(), 200, "nothing written without auth");
    assert!(!broker.log().contains("s3cret-for-tests"), "the password is never logged");
}

/// The broker advertises a listener whose port is a relay of the test's. While records flow, the
/// relay swallows the broker's answers (the produce requests still reach it and are appended), then
/// drops the connections: the producer resends those batches with the same producer id and
/// sequence numbers, and the broker's duplicate detection must answer them without appending
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_killed_mid_batch_leaves_no_duplicate_with_the_idempotent_producer() {
    let (relay_port, direct_port) = (free_port(), free_port());
    let relay_listener = tokio::net::TcpListener::bind(("127.0.0.1", relay_port)).await.unwrap();
    let listeners = common::kafka::relayed_listeners(direct_port, relay_port);
    let Some(broker) = PrivateBroker::apache(&listeners) else { return };
    let relay = TcpProxy::start_on(relay_listener, format!("127.0.0.1:{direct_port}").parse().unwrap());

    let mut config = common::test_config("sqlite::memory:");
    config.bus.url = format!("kafka://127.0.0.1:{relay_port}");
    let ctx = NodeContext::open(config).await.unwrap();
    let topic = common::unique_name("idempotent");
    ctx.bus.ensure_topic(&topic, 3).await.unwrap();

    const TOTAL: usize = 30_000;
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let (bus, t, acked) = (ctx.bus.clone(), topic.clone(), acknowledged.clone());
    let publisher = tokio::spawn(async move {
        for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
            let records = chunk.iter().map(|i| OutRecord::keyed(format!("k{}", i % 11), format!("{i}"))).collect();
            bus.publish(&t, records).await.unwrap();
            acked.fetch_add(chunk.len(), Ordering::AcqRel);
        }
    });
    // Once records flow, lose the answers to whatever is sent next, then the connections.
    common::wait_until("the first records acknowledged", Duration::from_secs(60), || {
        let n = acknowledged.load(Ordering::Acquire);
        async move { (n >= 2_000).then_some(()) }
    })
    .await;
    relay.swallow_answers();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (swallowed, passed) = relay.swallowed();
    relay.reset_connections();
    assert!(acknowledged.load(Ordering::Acquire) < TOTAL, "the cut came while records were in flight");
    tokio::time::timeout(Duration::from_secs(180), publisher).await.expect("the publisher finishes").unwrap();
    // An answer exists only for a request the broker has handled: those batches are in the log.
    assert!(swallowed > 0, "answers to handled requests were lost ({swallowed} B; {passed} B of requests meanwhile)");

    let read = python(&["read", &broker.broker.addr, &topic, &(TOTAL + 1000).to_string()]);
    let mut seen: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for v in &read {
        let value: u64 = v["value"].as_str().unwrap().parse().unwrap();
        let at = (v["partition"].as_u64().unwrap(), v["offset"].as_u64().unwrap());
        if let Some(first) = seen.insert(value, at) {
            panic!("record {value} is stored twice: at {first:?} and {at:?}");
        }
    }
    assert_eq!(seen.len(), TOTAL, "every record is there");
    assert_eq!(read.len(), TOTAL, "and nothing else");
}
