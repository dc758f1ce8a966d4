#!/usr/bin/env bash
# Save the local sandbox runtime images as tars for the DinD daemon (images/dind), which loads
# every /runtime-images/*.tar when it starts:
#
#   scripts/export-runtime-images.sh OUT_DIR [RUNTIME...]
#
# writes OUT_DIR/<runtime>.tar for each local coderunner/runtime-<runtime>:bookworm image (or only
# the RUNTIMEs named, e.g. `python bash`), and the image's id beside it in <runtime>.tar.id. An
# image whose id equals the recorded one is skipped, so running it again costs seconds. One line
# per image.
set -euo pipefail

SUITE=bookworm
PREFIX=coderunner/runtime-

usage() { echo "usage: $0 OUT_DIR [RUNTIME...]" >&2; exit 2; }
say() { echo "export-runtime-images: $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# local_runtimes: the runtime names of the local coderunner/runtime-*:bookworm images.
local_runtimes() {
  docker image ls --format '{{.Repository}}:{{.Tag}}' "${PREFIX}*:$SUITE" \
    | sed -n "s|^${PREFIX}\(.*\):$SUITE\$|\1|p" | sort -u
}

export_one() {
  local name=$1 out=$2 tag id tar t0 tmp
  tag="$PREFIX$name:$SUITE"
  tar="$out/$name.tar"
  if ! id=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null); then
    say "$tag: no such local image (make stack-up builds the runtime images)" >&2
    return 1
  fi
  if [ -f "$tar" ] && [ "$(cat "$tar.id" 2>/dev/null)" = "$id" ]; then
    say "$tag: unchanged ($id), kept $tar"
    return 0
  fi
  t0=$(now)
  tmp="$out/.$name.tar.partial"
  rm -f "$tar.id"
  if ! docker save --output "$tmp" "$tag"; then
    rm -f "$tmp"
    say "$tag: docker save failed" >&2
    return 1
  fi
  chmod 0644 "$tmp"
  mv "$tmp" "$tar"
  echo "$id" >"$tar.id"
  say "$tag: saved to $tar ($(du -h "$tar" | cut -f1)) in $(since "$t0")"
}

main() {
  [ $# -ge 1 ] || usage
  local out=$1 names name rc=0
  shift
  mkdir -p "$out"
  if [ $# -gt 0 ]; then
    names=("$@")
  else
    mapfile -t names < <(local_runtimes)
    if [ ${#names[@]} -eq 0 ]; then
      say "no local ${PREFIX}*:$SUITE images: run make stack-up first" >&2
      exit 1
    fi
  fi
  for name in "${names[@]}"; do
    export_one "$name" "$out" || rc=1
  done
  exit "$rc"
}

main "$@"
