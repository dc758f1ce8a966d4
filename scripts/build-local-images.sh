#!/usr/bin/env bash
# Build the LOCAL stand-ins for the upstream Kafka and PostgreSQL images (images/local/), for
# running docker-compose.yml where no registry is reachable (tests only; production uses
# apache/kafka and postgres from the registry):
#
#   scripts/build-local-images.sh [--kafka-tag TAG] [--postgres-tag TAG]
#
# defaults coderunner/kafka:local and coderunner/postgres:local; then
#   KAFKA_IMAGE=coderunner/kafka:local POSTGRES_IMAGE=coderunner/postgres:local docker compose up ...
#
# Needs what `make stack-up` provides: the local base images coderunner/runtime-java:bookworm and
# coderunner/base:bookworm, and the Kafka jars in .stack/kafka/libs. The jars are copied into a
# temporary build context (never into the repository). Classic builder (DOCKER_BUILDKIT=0): it
# resolves FROM against local images. PostgreSQL comes from Debian's apt mirror, which the
# build containers reach. Layers are cached: a rebuild with nothing changed takes seconds.
# One line per image with the time it took and its size; the build log on failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KAFKA_TAG=coderunner/kafka:local
POSTGRES_TAG=coderunner/postgres:local
KAFKA_BASE=coderunner/runtime-java:bookworm
POSTGRES_BASE=coderunner/base:bookworm
LIBS=$REPO/.stack/kafka/libs

say() { echo "build-local-images: $*"; }
die() { echo "build-local-images: error: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

while (($# > 0)); do
    case $1 in
    --kafka-tag) [[ -n ${2:-} ]] || die "--kafka-tag needs a value"; KAFKA_TAG=$2; shift 2 ;;
    --kafka-tag=?*) KAFKA_TAG=${1#*=}; shift ;;
    --postgres-tag) [[ -n ${2:-} ]] || die "--postgres-tag needs a value"; POSTGRES_TAG=$2; shift 2 ;;
    --postgres-tag=?*) POSTGRES_TAG=${1#*=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
    esac
done

command -v docker >/dev/null || die "no docker command: run \`make stack-up\` first"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer: run \`make stack-up\` first"
for base in "$KAFKA_BASE" "$POSTGRES_BASE"; do
    docker image inspect "$base" >/dev/null 2>&1 ||
        die "base image $base is missing: run \`make stack-up\` first (it builds the local images)"
done
compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null ||
    die "no Kafka jars in ${LIBS#"$REPO"/}: run \`make stack-up\` first (it downloads them)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/build-local-images.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# build NAME TAG CONTEXT BASE
build() {
    local name=$1 tag=$2 ctx=$3 base=$4 t0 log=$WORK/$1.log
    t0=$(now)
    say "building $tag (FROM $base) ..."
    if ! DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE="$base" -t "$tag" "$ctx" >"$log" 2>&1; then
        echo "---- last lines of the $name build log ----" >&2
        tail -n 40 "$log" >&2
        die "building $tag failed"
    fi
    say "built $tag in $(since "$t0"), $(docker image inspect --format '{{.Size}}' "$tag" |
        awk '{ printf "%.0f MB", $1 / 1e6 }')"
}

# Kafka: the Dockerfile and scripts plus the jars (hard links when on the same file system).
ctx=$WORK/kafka
mkdir -p "$ctx/libs"
cp "$REPO/images/local/kafka/Dockerfile" "$REPO/images/local/kafka/entrypoint.sh" \
    "$REPO/images/local/kafka/kafka-tool.sh" "$ctx/"
cp -l "$LIBS"/*.jar "$ctx/libs/" 2>/dev/null || cp "$LIBS"/*.jar "$ctx/libs/"
build kafka "$KAFKA_TAG" "$ctx" "$KAFKA_BASE"

build postgres "$POSTGRES_TAG" "$REPO/images/local/postgres" "$POSTGRES_BASE"
