#!/usr/bin/env bash
# Apache Kafka on loopback for the tests, from Maven Central only (no tarball, no internet).
#
#   broker.sh install                          resolve the broker's jars once (cached per version) and
#                                              print their folder
#   broker.sh run DIR PORT CONTROLLER_PORT [EXTRA_PROPERTIES]
#                                              format DIR as a new single-node KRaft log (unless it
#                                              is one already: a restart keeps its data) and run the
#                                              broker in the foreground (exec: the caller's child is
#                                              the JVM, so killing it kills the broker)
#
# The cache is $STREAMFORGE_KAFKA_CACHE or ~/.cache/streamforge/apache-kafka-<version>; the JVM's
# options are $STREAMFORGE_KAFKA_JAVA_OPTS (default: 1 GiB heap, G1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache="${STREAMFORGE_KAFKA_CACHE:-$HOME/.cache/streamforge/apache-kafka-$version}"

install() {
    if [ ! -f "$cache/complete" ]; then
        command -v mvn >/dev/null || { echo "Maven (mvn) is needed to fetch Apache Kafka's jars" >&2; exit 1; }
        rm -rf "$cache"
        mkdir -p "$cache"
        mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$cache/libs" >&2
        touch "$cache/complete"
    fi
    echo "$cache/libs"
}

run() {
    local dir="$1" port="$2" controller_port="$3" extra="${4:-}"
    local libs
    libs="$(install)"
    mkdir -p "$dir"
    cat "$here/server.properties" ${extra:+"$extra"} |
        sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@CONTROLLER_PORT@|$controller_port|g" \
            >"$dir/server.properties"
    # shellcheck disable=SC2086
    local java=(java ${STREAMFORGE_KAFKA_JAVA_OPTS:--Xms256m -Xmx1g -XX:+UseG1GC}
        "-Dlog4j2.configurationFile=$here/log4j2.properties" -cp "$libs/*")
    # Formatted on the first start only: a broker started again on its directory keeps its logs and
    # its cluster id.
    if [ ! -f "$dir/data/meta.properties" ]; then
        # A new cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid`
        # prints). Like Kafka's own Uuid.randomUuid, an id that starts with '-' is drawn again: the
        # storage tool would read it as an option (1 broker in 64 failed to format before this).
        local cluster_id="-"
        while [[ "$cluster_id" == -* ]]; do
            cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
        done
        "${java[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$cluster_id" \
            -c "$dir/server.properties" >"$dir/format.log" 2>&1 || { cat "$dir/format.log" >&2; exit 1; }
    fi
    exec "${java[@]}" kafka.Kafka "$dir/server.properties"
}

case "${1:-}" in
    install) install ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 install | run DIR PORT CONTROLLER_PORT [EXTRA_PROPERTIES]" >&2; exit 2 ;;
esac
