#!/usr/bin/env bash
# Local Apache Kafka broker (KRaft mode, single node, no ZooKeeper) for development and CI.
#
#   bash scripts/stack/kafka.sh up       install (first run) and start the broker; wait until it is ready
#   bash scripts/stack/kafka.sh down     stop it (SIGTERM, SIGKILL after 30 s); the data is kept
#   bash scripts/stack/kafka.sh status   one line; exit 0 running, 3 stopped, 1 process alive but not serving
#
# Listeners (all on 127.0.0.1):
#   9092  PLAINTEXT   no authentication
#   9093  SASL_SSL    mechanism PLAIN, like Azure Event Hubs: username is the literal string
#                     $ConnectionString, password a full connection string. Both are in
#                     .stack/kafka/sasl.env (KAFKA_SASL_USERNAME, KAFKA_CONNECTION_STRING);
#                     the server certificate (CN=localhost, SAN localhost + 127.0.0.1) is signed by
#                     the CA in .stack/kafka/tls/ca.pem. TLS 1.2 and 1.3 only.
#   9094  CONTROLLER  KRaft controller (internal)
#
# Everything lives in .stack/kafka/ (git-ignored): jars from Maven Central (scripts/stack/kafka-pom.xml),
# generated config, TLS material, credentials, data and logs. Delete that folder for a fresh broker.
# Environment overrides: KAFKA_READY_TIMEOUT (seconds, default 90), KAFKA_HEAP_OPTS.
#
# Note on the JAAS line in server.properties: user_$ConnectionString="Endpoint=...;...=...";
# works as is. Kafka's JaasConfig tokenizer treats '$' (like '_' and '-') as a word character, and
# ';' '=' '/' inside the double-quoted value are plain characters. Only '"' and '\' cannot appear
# in the password, which the script checks.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd)
POM=$SCRIPT_DIR/kafka-pom.xml

KHOME=$REPO/.stack/kafka
LIBS=$KHOME/libs
CONF=$KHOME/config
DATA=$KHOME/data
LOGS=$KHOME/logs
TLS=$KHOME/tls
PID_FILE=$KHOME/kafka.pid
CLUSTER_ID_FILE=$KHOME/cluster.id
SASL_ENV=$KHOME/sasl.env
LOCK_FILE=$KHOME/.lock

HOST=127.0.0.1
PLAINTEXT_PORT=9092
SASL_SSL_PORT=9093
CONTROLLER_PORT=9094
READY_TIMEOUT=${KAFKA_READY_TIMEOUT:-90}
STOP_TIMEOUT=30
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}

log() { printf 'kafka: %s\n' "$*"; }
err() { printf 'kafka: %s\n' "$*" >&2; }
die() { err "error: $*"; exit 1; }
rel() { printf '%s' "${1#"$REPO"/}"; }

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

# ---------------------------------------------------------------- process helpers

port_open() { # port -> 0 if something accepts TCP connections on $HOST:port
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$HOST" "$1" 2>/dev/null
}

alive() { # pid -> 0 if the process exists and is not a zombie
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $state != Z ]]
}

broker_pid() { # prints the pid from the pid file if that process is our broker
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    alive "$pid" || return 1
    # Guard against pid reuse: it must be a JVM running kafka.Kafka with our config.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONF/server.properties" || return 1
    printf '%s\n' "$pid"
}

tool_java() { # short-lived Kafka tool JVM (quiet logging, fast start)
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
        -Dlog4j.configuration="file:$CONF/tools-log4j.properties" \
        -cp "$LIBS/*" "$@"
}

LOG_OFFSET=0 # size of server.log when this run started the broker: show only what this run wrote

show_logs() {
    if [[ -s $LOGS/server.out ]]; then
        err "---- last lines of $(rel "$LOGS/server.out") ----"
        tail -n 20 "$LOGS/server.out" >&2
    fi
    local size=0
    [[ -f $LOGS/server.log ]] && size=$(stat -c %s "$LOGS/server.log")
    ((size < LOG_OFFSET)) && LOG_OFFSET=0 # rotated meanwhile
    if ((size > LOG_OFFSET)); then
        err "---- last lines of $(rel "$LOGS/server.log") ----"
        tail -c +"$((LOG_OFFSET + 1))" "$LOGS/server.log" | tail -n 40 >&2
    else
        err "(nothing new in $(rel "$LOGS/server.log"))"
    fi
}

# ---------------------------------------------------------------- installation

ensure_tools() {
    local missing=() pkgs=()
    command -v java >/dev/null || { missing+=(java); pkgs+=(openjdk-17-jre-headless); }
    command -v mvn >/dev/null || { missing+=(mvn); pkgs+=(maven); }
    command -v openssl >/dev/null || { missing+=(openssl); pkgs+=(openssl); }
    if ! command -v setsid >/dev/null || ! command -v flock >/dev/null; then
        missing+=(setsid/flock)
        pkgs+=(util-linux)
    fi
    ((${#missing[@]} == 0)) && return 0
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        log "installing ${pkgs[*]} with apt-get ..."
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null; } ||
            die "could not install ${pkgs[*]}"
    else
        die "missing ${missing[*]}; install: ${pkgs[*]}"
    fi
}

ensure_jars() {
    local want have=""
    want=$(sha256sum "$POM" | cut -d' ' -f1)
    [[ -f $LIBS/.complete ]] && have=$(<"$LIBS/.complete")
    if [[ $have == "$want" ]]; then
        return 0
    fi
    log "downloading Kafka jars from Maven Central into $(rel "$LIBS") (first run only, ~50 MB) ..."
    rm -rf "$LIBS.partial"
    if ! mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$LIBS.partial" >"$LOGS/mvn.log" 2>&1; then
        err "---- last lines of $(rel "$LOGS/mvn.log") ----"
        tail -n 30 "$LOGS/mvn.log" >&2
        die "mvn dependency:copy-dependencies failed"
    fi
    compgen -G "$LIBS.partial/kafka_2.13-*.jar" >/dev/null || die "no kafka_2.13 jar after mvn"
    rm -rf "$LIBS"
    mv "$LIBS.partial" "$LIBS"
    printf '%s\n' "$want" >"$LIBS/.complete"
    log "jars ready: $(basename "$(compgen -G "$LIBS/kafka_2.13-*.jar")" .jar)"
}

ensure_tls() {
    if [[ -s $TLS/ca.pem && -s $TLS/server.p12 && -s $TLS/keystore.pass ]]; then
        return 0
    fi
    log "generating a self-signed CA and a server certificate (CN=localhost) in $(rel "$TLS") ..."
    rm -rf "$TLS"
    mkdir -p "$TLS"
    (
        umask 077
        cd "$TLS"
        cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
[v3_server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
EOF
        openssl rand -hex 24 >keystore.pass
        openssl req -x509 -config openssl.cnf -extensions v3_ca -newkey rsa:2048 -nodes -sha256 -days 3650 \
            -subj '/O=coderunner local stack/CN=coderunner local Kafka CA' -keyout ca.key -out ca.pem
        openssl req -new -config openssl.cnf -newkey rsa:2048 -nodes -sha256 \
            -subj '/O=coderunner local stack/CN=localhost' -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
            -days 3650 -sha256 -extfile openssl.cnf -extensions v3_server -out server.pem
        openssl verify -CAfile ca.pem server.pem >/dev/null
        openssl pkcs12 -export -name kafka -in server.pem -inkey server.key -certfile ca.pem \
            -passout file:keystore.pass -out server.p12
        rm -f server.csr openssl.cnf
        chmod 644 ca.pem server.pem
    ) >"$LOGS/tls.log" 2>&1 || { cat "$LOGS/tls.log" >&2; rm -rf "$TLS"; die "certificate generation failed"; }
}

ensure_sasl() {
    if [[ ! -s $SASL_ENV ]]; then
        log "generating SASL PLAIN credentials (Event Hubs style) in $(rel "$SASL_ENV") ..."
        local key
        key=$(openssl rand -base64 32)
        (
            umask 077
            # Single quotes: the file is meant to be sourced; $ConnectionString is a literal string.
            # shellcheck disable=SC2016
            printf '%s\n' \
                "KAFKA_SASL_USERNAME='\$ConnectionString'" \
                "KAFKA_CONNECTION_STRING='Endpoint=sb://localhost/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=$key'" \
                >"$SASL_ENV.tmp"
        )
        mv "$SASL_ENV.tmp" "$SASL_ENV"
    fi
    KAFKA_SASL_USERNAME=""
    KAFKA_CONNECTION_STRING=""
    # shellcheck disable=SC1090
    source "$SASL_ENV"
    [[ -n $KAFKA_SASL_USERNAME && -n $KAFKA_CONNECTION_STRING ]] ||
        die "$(rel "$SASL_ENV") must set KAFKA_SASL_USERNAME and KAFKA_CONNECTION_STRING"
    # The JAAS option is user_<username>=\"<password>\": the name must be one JaasConfig word token
    # (letters, digits, _ - $) and the password must not contain a double quote or a backslash.
    [[ $KAFKA_SASL_USERNAME =~ ^[A-Za-z_$][A-Za-z0-9_$-]*$ ]] ||
        die "KAFKA_SASL_USERNAME in $(rel "$SASL_ENV") has characters a JAAS option name cannot hold"
    [[ $KAFKA_CONNECTION_STRING != *[\"\\]* ]] ||
        die "KAFKA_CONNECTION_STRING in $(rel "$SASL_ENV") must not contain \" or \\"
}

write_config() {
    local pass
    pass=$(<"$TLS/keystore.pass")
    mkdir -p "$CONF"
    (
        umask 077 # server.properties and client-sasl_ssl.properties hold the credentials
        cat >"$CONF/server.properties.tmp" <<EOF
# Generated by scripts/stack/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$HOST:$PLAINTEXT_PORT,SASL_SSL://$HOST:$SASL_SSL_PORT,CONTROLLER://$HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$PLAINTEXT_PORT,SASL_SSL://$HOST:$SASL_SSL_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT

# SASL_SSL listener: PLAIN over TLS, like Azure Event Hubs.
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$KAFKA_SASL_USERNAME="$KAFKA_CONNECTION_STRING";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS/server.p12
listener.name.sasl_ssl.ssl.keystore.password=$pass
listener.name.sasl_ssl.ssl.key.password=$pass
listener.name.sasl_ssl.ssl.enabled.protocols=TLSv1.2,TLSv1.3
listener.name.sasl_ssl.ssl.client.auth=none
ssl.enabled.protocols=TLSv1.2,TLSv1.3

log.dirs=$DATA
num.partitions=4
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.ms=-1
log.retention.bytes=-1
group.initial.rebalance.delay.ms=0
message.max.bytes=1048576
num.network.threads=3
num.io.threads=4
EOF
        mv "$CONF/server.properties.tmp" "$CONF/server.properties"

        cat >"$KHOME/client-sasl_ssl.properties.tmp" <<EOF
# Client settings for the SASL_SSL listener $HOST:$SASL_SSL_PORT (Kafka's Java tools: --command-config,
# --producer.config, --consumer.config). Generated by scripts/stack/kafka.sh.
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="$KAFKA_SASL_USERNAME" password="$KAFKA_CONNECTION_STRING";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS/ca.pem
EOF
        mv "$KHOME/client-sasl_ssl.properties.tmp" "$KHOME/client-sasl_ssl.properties"
    )

    cat >"$CONF/log4j.properties" <<'EOF'
# Broker logging: files in ${kafka.logs.dir} (.stack/kafka/logs), nothing on stdout.
log4j.rootLogger=INFO, server

log4j.appender.server=org.apache.log4j.RollingFileAppender
log4j.appender.server.File=${kafka.logs.dir}/server.log
log4j.appender.server.MaxFileSize=20MB
log4j.appender.server.MaxBackupIndex=3
log4j.appender.server.layout=org.apache.log4j.PatternLayout
log4j.appender.server.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.controller=org.apache.log4j.RollingFileAppender
log4j.appender.controller.File=${kafka.logs.dir}/controller.log
log4j.appender.controller.MaxFileSize=20MB
log4j.appender.controller.MaxBackupIndex=2
log4j.appender.controller.layout=org.apache.log4j.PatternLayout
log4j.appender.controller.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.appender.stateChange=org.apache.log4j.RollingFileAppender
log4j.appender.stateChange.File=${kafka.logs.dir}/state-change.log
log4j.appender.stateChange.MaxFileSize=20MB
log4j.appender.stateChange.MaxBackupIndex=2
log4j.appender.stateChange.layout=org.apache.log4j.PatternLayout
log4j.appender.stateChange.layout.ConversionPattern=[%d] %p %m (%c)%n

log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.org.apache.zookeeper=WARN
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.kafka.authorizer.logger=WARN

log4j.logger.kafka.controller=INFO, controller
log4j.additivity.kafka.controller=false
log4j.logger.org.apache.kafka.controller=INFO, controller
log4j.additivity.org.apache.kafka.controller=false
log4j.logger.state.change.logger=INFO, stateChange
log4j.additivity.state.change.logger=false
EOF

    cat >"$CONF/tools-log4j.properties" <<'EOF'
# Command-line tools (StorageTool, TopicCommand, console producer/consumer): warnings on stderr only.
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

ensure_storage() {
    local cid
    if [[ ! -s $CLUSTER_ID_FILE ]]; then
        if [[ -f $DATA/meta.properties ]]; then
            cid=$(sed -n 's/^cluster\.id=//p' "$DATA/meta.properties")
        else
            cid=$(tool_java kafka.tools.StorageTool random-uuid)
        fi
        [[ $cid =~ ^[A-Za-z0-9_-]{22}$ ]] || die "bad cluster id: '$cid'"
        printf '%s\n' "$cid" >"$CLUSTER_ID_FILE"
    fi
    [[ -f $DATA/meta.properties ]] && return 0
    cid=$(<"$CLUSTER_ID_FILE")
    log "formatting storage in $(rel "$DATA") (cluster id $cid) ..."
    mkdir -p "$DATA"
    tool_java kafka.tools.StorageTool format --ignore-formatted -t "$cid" -c "$CONF/server.properties" \
        >"$LOGS/format.log" 2>&1 || { cat "$LOGS/format.log" >&2; die "kafka-storage format failed"; }
}

# ---------------------------------------------------------------- commands

listeners_text() {
    printf '%s:%s PLAINTEXT, %s:%s SASL_SSL' "$HOST" "$PLAINTEXT_PORT" "$HOST" "$SASL_SSL_PORT"
}

start_broker() {
    local p
    for p in "$PLAINTEXT_PORT" "$SASL_SSL_PORT" "$CONTROLLER_PORT"; do
        if port_open "$p"; then
            die "port $HOST:$p is already in use by another process (not the broker in $(rel "$PID_FILE"))"
        fi
    done
    log "starting the broker (logs in $(rel "$LOGS")) ..."
    rm -f "$PID_FILE"
    : >"$LOGS/server.out"
    [[ -f $LOGS/server.log ]] && LOG_OFFSET=$(stat -c %s "$LOGS/server.log")
    # setsid: own session, survives the calling shell. The inner bash writes its pid and then execs
    # java, so the pid file holds the JVM's pid. 9>&- : do not pass the lock to the broker.
    # shellcheck disable=SC2016,SC2086 # $$/$0/$@ belong to the inner bash; HEAP_OPTS is a list of flags
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
        java $HEAP_OPTS -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        "-Xlog:gc*:file=$LOGS/gc.log:time,tags:filecount=3,filesize=10M" \
        -Dkafka.logs.dir="$LOGS" -Dlog4j.configuration="file:$CONF/log4j.properties" \
        -cp "$LIBS/*" kafka.Kafka "$CONF/server.properties" \
        </dev/null >>"$LOGS/server.out" 2>&1 9>&- &
    local i
    for ((i = 0; i < 50; i++)); do
        [[ -s $PID_FILE ]] && break
        sleep 0.1
    done
    [[ -s $PID_FILE ]] || die "the broker did not start (no pid file)"
}

wait_ready() { # pid
    local pid=$1 start=$SECONDS left
    while :; do
        left=$((READY_TIMEOUT - (SECONDS - start)))
        if ! alive "$pid"; then
            rm -f "$PID_FILE"
            err "the broker exited during startup"
            show_logs
            exit 1
        fi
        if ((left <= 0)); then
            err "the broker (pid $pid) is not ready after ${READY_TIMEOUT} s; stopping it"
            show_logs
            stop_pid "$pid" >/dev/null
            rm -f "$PID_FILE"
            exit 1
        fi
        # Ready = both client ports accept connections and an admin request (list topics) succeeds.
        if port_open "$PLAINTEXT_PORT" && port_open "$SASL_SSL_PORT" &&
            tool_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PLAINTEXT_PORT" --list \
                >/dev/null 2>>"$LOGS/ready-check.log" </dev/null; then
            return 0
        fi
        sleep 1
    done
}

stop_pid() { # pid
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
        alive "$pid" || return 0
        sleep 0.25
    done
    log "the broker did not stop within ${STOP_TIMEOUT} s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
        alive "$pid" || return 0
        sleep 0.25
    done
    die "pid $pid survived SIGKILL"
}

take_lock() {
    exec 9>"$LOCK_FILE"
    flock -w 300 9 || die "another kafka.sh up/down is still running (lock $(rel "$LOCK_FILE"))"
}

cmd_up() {
    local t0=$SECONDS pid
    mkdir -p "$KHOME" "$LOGS"
    take_lock
    if pid=$(broker_pid); then
        if port_open "$PLAINTEXT_PORT"; then
            log "already running (pid $pid) on $(listeners_text)"
            return 0
        fi
        log "broker process $pid exists but does not accept connections yet; waiting ..."
    else
        ensure_tools
        ensure_jars
        ensure_tls
        ensure_sasl
        write_config
        ensure_storage
        : >"$LOGS/ready-check.log"
        start_broker
        pid=$(<"$PID_FILE")
    fi
    log "waiting for the broker (pid $pid) to be ready (timeout ${READY_TIMEOUT} s) ..."
    wait_ready "$pid"
    log "ready in $((SECONDS - t0)) s (pid $pid) on $(listeners_text)"
    log "SASL credentials: $(rel "$SASL_ENV"); CA certificate: $(rel "$TLS/ca.pem")"
}

cmd_down() {
    local pid
    mkdir -p "$KHOME"
    take_lock
    if ! pid=$(broker_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping the broker (pid $pid) ..."
    stop_pid "$pid"
    rm -f "$PID_FILE"
    log "stopped (data kept in $(rel "$DATA"))"
}

cmd_status() {
    local pid
    if ! pid=$(broker_pid); then
        echo "kafka: stopped"
        return 3
    fi
    if port_open "$PLAINTEXT_PORT" && port_open "$SASL_SSL_PORT"; then
        echo "kafka: running (pid $pid) on $(listeners_text)"
        return 0
    fi
    echo "kafka: process $pid alive but not accepting connections on $(listeners_text) (starting or unhealthy)"
    return 1
}

case "${1:-}" in
up) cmd_up ;;
down) cmd_down ;;
status) cmd_status ;;
-h | --help | help) usage ;;
*)
    usage >&2
    exit 2
    ;;
esac
