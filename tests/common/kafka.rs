//! The Kafka-protocol brokers the tests run against, as a matrix: Apache Kafka
//! (`STREAMFORGE_TEST_KAFKA`, the broker users run) and tansu (`STREAMFORGE_TEST_TANSU`, a second,
//! independent implementation of the protocol), both started by `.ci/run`; and private brokers that
//! a test starts for itself (its own listeners, or a broker it may stop).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use streamforge::config::{BrokerFlavor, Config};

/// A broker a test may use.
#[derive(Debug, Clone)]
pub struct Broker {
    pub flavor: BrokerFlavor,
    /// `HOST:PORT` of its plaintext listener.
    pub addr: String,
}

impl Broker {
    pub fn name(&self) -> &'static str {
        match self.flavor {
            BrokerFlavor::Kafka => "Apache Kafka",
            BrokerFlavor::Tansu => "tansu",
        }
    }

    /// Its `bus.kafka.flavor` as a config file spells it.
    pub fn flavor_setting(&self) -> &'static str {
        match self.flavor {
            BrokerFlavor::Kafka => "kafka",
            BrokerFlavor::Tansu => "tansu",
        }
    }

    /// The lag of `group` on `topic` as the independent client computes it (JSON lines
    /// `{partition, committed, end}`): on Apache Kafka the way KEDA does (listed end − committed
    /// offset); on tansu with the end a fetch reports (its listed end is short, see docs/kafka.md).
    pub fn independent_lag(&self, topic: &str, group: &str) -> Vec<serde_json::Value> {
        let how = match self.flavor {
            BrokerFlavor::Kafka => "keda-lag",
            BrokerFlavor::Tansu => "offsets",
        };
        python(&[how, &self.addr, topic, group])
    }

    pub fn bus_url(&self) -> String {
        format!("kafka://{}", self.addr)
    }

    /// [`super::test_config`] on this broker, with its flavor.
    pub fn config(&self, store_url: &str) -> Config {
        let mut c = super::test_config(store_url);
        c.bus.url = self.bus_url();
        c.bus.kafka.flavor = self.flavor;
        c
    }
}

fn from_env(var: &str, flavor: BrokerFlavor, started_by: &str) -> Option<Broker> {
    match std::env::var(var) {
        Ok(addr) if !addr.is_empty() => Some(Broker { flavor, addr }),
        _ => {
            super::missing(&format!("{var} is not set (HOST:PORT of {started_by}; .ci/run starts one)"));
            None
        }
    }
}

/// The shared Apache Kafka broker, or `None` (see [`super::missing`]).
pub fn apache() -> Option<Broker> {
    from_env("STREAMFORGE_TEST_KAFKA", BrokerFlavor::Kafka, "an Apache Kafka broker")
}

/// The shared tansu broker, or `None` (see [`super::missing`]).
pub fn tansu() -> Option<Broker> {
    from_env("STREAMFORGE_TEST_TANSU", BrokerFlavor::Tansu, "a tansu broker")
}

/// Runs each named `async fn NAME(broker: &Broker)` once per broker of the matrix, as the tests
/// `apache_kafka::NAME` and `tansu::NAME`.
#[macro_export]
macro_rules! on_every_broker {
    ($($test:ident),* $(,)?) => {
        mod apache_kafka {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(broker) = $crate::common::kafka::apache() {
                        super::$test(&broker).await
                    }
                }
            )*
        }
        mod tansu {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    if let Some(broker) = $crate::common::kafka::tansu() {
                        super::$test(&broker).await
                    }
                }
            )*
        }
    };
}

/// Runs the independent client (`tests/tools/kafka_client.py`: Python confluent-kafka, its own
/// librdkafka build) and returns the JSON lines it printed.
pub fn python(args: &[&str]) -> Vec<serde_json::Value> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/kafka_client.py");
    let out = Command::new("python3").arg(script).args(args).output().expect("python3 runs");
    assert!(out.status.success(), "kafka_client.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Exactly `n` records from `consumer`; fails after a minute.
pub async fn consume(
    consumer: &mut Box<dyn streamforge::bus::Consumer>,
    n: usize,
) -> Vec<streamforge::bus::BusMessage> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(std::time::Instant::now() < deadline, "only {} of {n} records", got.len());
        got.extend(consumer.poll(n - got.len(), Duration::from_millis(200)).await.unwrap());
    }
    got
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `server.properties` lines for a private Apache Kafka that listens for clients on `direct_port`
/// but advertises `relay_port`, where a test's relay (`common::proxy`) stands in front of it; its
/// own plaintext listener stays on `@PORT@`.
pub fn relayed_listeners(direct_port: u16, relay_port: u16) -> String {
    format!(
        "listeners=PLAINTEXT://127.0.0.1:@PORT@,CONTROLLER://127.0.0.1:@CONTROLLER_PORT@,RELAYED://127.0.0.1:{direct_port}\n\
         advertised.listeners=PLAINTEXT://127.0.0.1:@PORT@,RELAYED://127.0.0.1:{relay_port}\n\
         listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,RELAYED:PLAINTEXT\n"
    )
}

/// A broker process of a test's own, killed when dropped.
pub struct PrivateBroker {
    pub broker: Broker,
    child: Child,
    pub dir: tempfile::TempDir,
    /// Apache Kafka's listener and controller ports, to start it again on the same data.
    ports: Option<(u16, u16)>,
}

/// The Apache Kafka broker process of `dir` (formatted on its first start, kept on later ones).
fn spawn_apache(dir: &Path, port: u16, controller: u16) -> Child {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/apache-kafka/broker.sh");
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("broker.log")).unwrap();
    Command::new("bash")
        .arg(script)
        .arg("run")
        .arg(dir.join("broker"))
        .args([port.to_string(), controller.to_string()])
        .arg(dir.join("extra.properties"))
        .env("STREAMFORGE_KAFKA_JAVA_OPTS", "-Xms128m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

impl PrivateBroker {
    /// A single-node Apache Kafka with a plaintext listener on a free port, `extra` appended to its
    /// `server.properties` (later lines win; `@PORT@`, `@CONTROLLER_PORT@`, `@DIR@` filled in), through `tests/tools/apache-kafka/broker.sh` with the
    /// jars `.ci/run` cached. `None` where Java is missing (see [`super::missing`]).
    pub fn apache(extra: &str) -> Option<PrivateBroker> {
        if !Command::new("java").arg("-version").output().is_ok_and(|o| o.status.success()) {
            super::missing("java is not installed (a private Apache Kafka broker needs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let (port, controller) = (free_port(), free_port());
        std::fs::write(dir.path().join("extra.properties"), extra).unwrap();
        let child = spawn_apache(dir.path(), port, controller);
        let mut b = PrivateBroker::serving(BrokerFlavor::Kafka, port, child, dir, "Kafka Server started");
        b.ports = Some((port, controller));
        Some(b)
    }

    /// Kills the broker process (SIGKILL: no clean shutdown) and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Apache Kafka only: starts the killed broker again on the same data directory and ports and
    /// returns once it serves (blocking: call it inside `block_in_place` from a test's runtime).
    pub fn start_again(&mut self) {
        let (port, controller) = self.ports.expect("only a private Apache Kafka broker keeps its data");
        let started = self.log().matches("Kafka Server started").count();
        self.child = spawn_apache(self.dir.path(), port, controller);
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.log().matches("Kafka Server started").count() <= started {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the restarted broker exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "the broker did not start again:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A tansu broker (memory storage) on a free port. `None` where `tansu` is not on PATH.
    pub fn tansu() -> Option<PrivateBroker> {
        if Command::new("tansu").arg("--version").output().is_err() {
            super::missing("tansu is not on PATH (.ci/run installs it)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let listener = format!("tcp://127.0.0.1:{port}");
        let child = Command::new("tansu")
            .args(["broker", "--listener-url", &listener, "--advertised-listener-url", &listener])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("broker.log")).unwrap())
            .spawn()
            .unwrap();
        Some(PrivateBroker::serving(BrokerFlavor::Tansu, port, child, dir, ""))
    }

    /// A private broker of the same flavor as `like`.
    pub fn like(like: &Broker) -> Option<PrivateBroker> {
        match like.flavor {
            BrokerFlavor::Kafka => PrivateBroker::apache(""),
            BrokerFlavor::Tansu => PrivateBroker::tansu(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
    }

    /// A started broker process serving on `port`, once it does (see [`Self::wait_listening`]).
    fn serving(flavor: BrokerFlavor, port: u16, child: Child, dir: tempfile::TempDir, started: &str) -> PrivateBroker {
        let mut b =
            PrivateBroker { broker: Broker { flavor, addr: format!("127.0.0.1:{port}") }, child, dir, ports: None };
        b.wait_listening(port, started);
        b
    }

    /// Waits (up to two minutes: a JVM on a busy 2-core machine) until `port` accepts connections
    /// and, when `started` is not empty, the log has that line.
    fn wait_listening(&mut self, port: u16, started: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let up = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && (started.is_empty() || self.log().contains(started));
            if up {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the private {} broker exited ({status}):\n{}", self.broker.name(), self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the private {} broker did not start:\n{}",
                self.broker.name(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
