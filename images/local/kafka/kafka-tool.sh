#!/usr/bin/env bash
# coderunner/kafka:local — Kafka's command-line tools, like apache/kafka's /opt/kafka/bin/*.sh.
# Installed as /opt/kafka/bin/kafka-run-class.sh (`kafka-run-class.sh CLASS ARGS...`) and
# symlinked under each tool's name, the class being chosen by the name it is called by:
#
#   kafka-broker-api-versions.sh --bootstrap-server localhost:9092    (the compose healthcheck:
#                                exit 0 when the broker answers, non-zero otherwise)
#   kafka-topics.sh, kafka-storage.sh, kafka-configs.sh, kafka-console-producer.sh,
#   kafka-console-consumer.sh, kafka-consumer-groups.sh, kafka-metadata-quorum.sh,
#   kafka-get-offsets.sh
#
# A small, quick JVM: KAFKA_TOOL_HEAP_OPTS (default -Xmx128m), serial GC, C1 only; warnings on
# stderr. KAFKA_HEAP_OPTS is the broker's and is not used here.
set -euo pipefail

KAFKA_HOME=${KAFKA_HOME:-/opt/kafka}
name=$(basename "$0" .sh)
case $name in
kafka-broker-api-versions) class=kafka.admin.BrokerApiVersionsCommand ;;
kafka-topics) class=org.apache.kafka.tools.TopicCommand ;;
kafka-storage) class=kafka.tools.StorageTool ;;
kafka-configs) class=kafka.admin.ConfigCommand ;;
kafka-console-producer) class=kafka.tools.ConsoleProducer ;;
kafka-console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
kafka-consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
kafka-metadata-quorum) class=org.apache.kafka.tools.MetadataQuorumCommand ;;
kafka-get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
kafka-run-class)
    (($# > 0)) || { echo "usage: kafka-run-class.sh CLASS [ARGS...]" >&2; exit 2; }
    class=$1
    shift
    ;;
*)
    echo "$0: unknown tool '$name'" >&2
    exit 2
    ;;
esac

# shellcheck disable=SC2086 # a list of JVM flags
exec java ${KAFKA_TOOL_HEAP_OPTS:--Xmx128m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss1m \
    -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$KAFKA_HOME/config/tools-log4j.properties" \
    -cp "$KAFKA_HOME/libs/*" "$class" "$@"
