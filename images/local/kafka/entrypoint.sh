#!/usr/bin/env bash
# coderunner/kafka:local — start the broker like apache/kafka's /etc/kafka/docker/run does
# (the subset docker-compose.yml uses; see images/local/README.md):
#
#   CLUSTER_ID       KRaft cluster id (22 characters, base64url of 16 bytes);
#                    default 5L6g3nShT-eMCtK--X86sw, as upstream
#   KAFKA_*          one server property each: prefix dropped, lower case, `_` -> `.`,
#                    `__` -> `_`, `___` -> `-` (KAFKA_LOG_DIRS -> log.dirs). Not properties: the
#                    JVM and logging settings below. With no KAFKA_* property at all, upstream's
#                    default single-node KRaft config (localhost:9092) is used instead.
#                    KAFKA_LISTENERS defaults to KAFKA_ADVERTISED_LISTENERS on 0.0.0.0.
#   KAFKA_HEAP_OPTS  broker heap, default -Xmx512m -Xms256m (upstream: -Xmx1G -Xms1G)
#   KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_OPTS, KAFKA_LOG4J_OPTS   more JVM flags
#   KAFKA_LOG4J_ROOT_LOGLEVEL   broker log level on stdout, default INFO
#
# Writes /opt/kafka/config/server.properties, formats the storage once (kafka-storage format
# --ignore-formatted) and execs the JVM, which thus gets SIGTERM and shuts down cleanly.
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
CONF_DIR=$KAFKA_HOME/config
PROPS=$CONF_DIR/server.properties

say() { printf '[kafka-entrypoint] %s\n' "$*"; }
die() { printf '[kafka-entrypoint] error: %s\n' "$*" >&2; exit 1; }

# Not server properties (upstream's exclude list): JVM, logging and image settings.
EXCLUDED=" KAFKA_VERSION KAFKA_HOME KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS
 KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS KAFKA_LOG4J_ROOT_LOGLEVEL KAFKA_LOG4J_LOGGERS
 KAFKA_TOOLS_LOG4J_LOGLEVEL KAFKA_JMX_HOSTNAME KAFKA_JMX_PORT KAFKA_DEBUG KAFKA_TOOL_HEAP_OPTS "
EXCLUDED=${EXCLUDED//$'\n'/ }

# KAFKA_FOO_BAR -> foo.bar; KAFKA_FOO__BAR -> foo_bar; KAFKA_FOO___BAR -> foo-bar
prop_name() {
    local k=${1#KAFKA_}
    k=${k//___/$'\x01'}
    k=${k//__/$'\x02'}
    k=${k//_/.}
    k=${k//$'\x01'/-}
    k=${k//$'\x02'/_}
    printf '%s' "${k,,}"
}

property_vars() { # the names of the KAFKA_* variables that are server properties, sorted
    local v
    while IFS= read -r v; do
        [[ $v == KAFKA_?* ]] || continue
        [[ $EXCLUDED == *" $v "* ]] && continue
        printf '%s\n' "$v"
    done < <(compgen -e | LC_ALL=C sort)
}

write_properties() {
    [[ -w $CONF_DIR ]] || die "$CONF_DIR is not writable by uid $(id -u)"
    local tmp=$PROPS.tmp vars v
    vars=$(property_vars)
    if [[ -z $vars ]]; then
        say "no KAFKA_* property set: using the default single-node KRaft config (localhost:9092)"
        cat >"$tmp" <<'DEFAULTS'
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://:9093
advertised.listeners=PLAINTEXT://localhost:9092
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=/tmp/kraft-combined-logs
num.partitions=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
DEFAULTS
    else
        # Upstream: listeners default to the advertised ones on every interface (not for a
        # controller-only node, which has no advertised listeners).
        if [[ -z ${KAFKA_LISTENERS:-} && -n ${KAFKA_ADVERTISED_LISTENERS:-} && ${KAFKA_PROCESS_ROLES:-} != controller ]]; then
            export KAFKA_LISTENERS
            KAFKA_LISTENERS=$(sed -e 's|://[^:]*:|://0.0.0.0:|g' <<<"$KAFKA_ADVERTISED_LISTENERS")
            vars=$(property_vars)
        fi
        : >"$tmp"
        while IFS= read -r v; do
            # A property value is one line: a newline would start another property.
            [[ ${!v} == *$'\n'* ]] && die "$v contains a newline"
            printf '%s=%s\n' "$(prop_name "$v")" "${!v}" >>"$tmp"
        done <<<"$vars"
    fi
    mv "$tmp" "$PROPS"
}

prop() { sed -n "s/^$1=//p" "$PROPS" | tail -n 1; }

check_log_dirs() {
    local dirs d
    dirs=$(prop log.dirs)
    [[ -n $dirs ]] || dirs=$(prop log.dir)
    [[ -n $dirs ]] || dirs=/tmp/kafka-logs
    IFS=, read -ra dirs <<<"$dirs"
    for d in "${dirs[@]}"; do
        mkdir -p "$d" 2>/dev/null || true
        [[ -d $d && -w $d ]] ||
            die "log dir $d is not a directory writable by uid $(id -u) (a bind mount must be owned by uid 1000)"
    done
}

if [[ ${1:-} == -* ]]; then
    die "unexpected arguments: $* (configure the broker with KAFKA_* variables)"
fi
if (($# > 0)); then
    exec "$@"
fi

if [[ -n ${KAFKA_PROCESS_ROLES:-} ]]; then
    say "running in KRaft mode ..."
fi
if [[ -z ${CLUSTER_ID:-} ]]; then
    CLUSTER_ID=5L6g3nShT-eMCtK--X86sw
    say "CLUSTER_ID not set: using the default $CLUSTER_ID"
fi
[[ $CLUSTER_ID =~ ^[A-Za-z0-9_-]{22}$ ]] ||
    die "CLUSTER_ID must be 22 characters of base64url (16 bytes), like kafka-storage random-uuid prints; got '$CLUSTER_ID'"
[[ -n ${KAFKA_ZOOKEEPER_CONNECT:-} ]] && die "ZooKeeper mode is not supported by this image: use KRaft (KAFKA_PROCESS_ROLES)"

write_properties
check_log_dirs

# Format once; on later starts the storage is already formatted and this is a no-op.
java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j.configuration="file:$CONF_DIR/tools-log4j.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.tools.StorageTool format \
    --cluster-id "$CLUSTER_ID" --config "$PROPS" --ignore-formatted ||
    die "formatting the storage failed"

say "starting Kafka $(cat "$KAFKA_HOME/VERSION" 2>/dev/null || echo '?') (node.id=$(prop node.id), log.dirs=$(prop log.dirs))"
# shellcheck disable=SC2086 # each *_OPTS is a list of JVM flags
exec java ${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true} \
    ${KAFKA_LOG4J_OPTS:--Dlog4j.configuration=file:$CONF_DIR/log4j.properties} \
    -Dkafka.root.loglevel="${KAFKA_LOG4J_ROOT_LOGLEVEL:-INFO}" \
    ${KAFKA_OPTS:-} \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$PROPS"
