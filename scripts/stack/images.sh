#!/usr/bin/env bash
# Sandbox runtime images, built locally (no registry needed):
#
#   coderunner/base:bookworm           Debian bookworm minbase made with debootstrap, `docker import`ed
#   coderunner/runtime-<name>:bookworm one per images/runtimes/<name>/Dockerfile, FROM the base
#
#   up      build what is missing or outdated (a runtime image is rebuilt when its Dockerfile's
#           sha256 or the base image changed; the base when its recipe version below changed)
#   down    nothing: images stay
#   status  one line per image; exit 3 when any image is missing or outdated
#   list    the runtime image tags, one per line
#
# The root filesystem is built under .stack/images/rootfs and removed after the import; logs of
# apt and debootstrap go to .stack/images/. Set DEBIAN_MIRROR to override the mirror read from
# apt's sources.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
trap 'rc=$?; say images "failed (exit $rc) at line $LINENO: $BASH_COMMAND" >&2; exit $rc' ERR
set -E

SUITE=bookworm
BASE_TAG="coderunner/base:$SUITE"
# Bump when the base recipe (build_base) changes: the base and then every runtime get rebuilt.
BASE_RECIPE=1
RUNTIMES_DIR="$REPO/images/runtimes"
IMAGES_STATE="$STACK_DIR/images"
ROOTFS="$IMAGES_STATE/rootfs"
LABEL_NS=org.coderunner
# No buildx on these machines: use the classic builder, which resolves FROM against local images.
export DOCKER_BUILDKIT=0

runtimes() {
  local d
  for d in "$RUNTIMES_DIR"/*/; do
    [ -f "$d/Dockerfile" ] && basename "$d"
  done
}

runtime_tag() { echo "coderunner/runtime-$1:$SUITE"; }

image_id() { docker image inspect --format '{{.Id}}' "$1" 2>/dev/null; }

label() { docker image inspect --format "{{index .Config.Labels \"$LABEL_NS.$2\"}}" "$1" 2>/dev/null; }

dockerfile_sha() { sha256sum "$RUNTIMES_DIR/$1/Dockerfile" | cut -d' ' -f1; }

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# prefix NAME: prefix every line of stdin so a long build shows which component is talking.
prefix() { sed -u "s|^|images: [$1] |"; }

# apt_mirrors: print "main URI" and "security URI" lines for the Debian archive apt uses here,
# read from /etc/apt/sources.list (one-line format) and sources.list.d/*.list|*.sources (deb822).
apt_mirrors() {
  local files=() f
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ ${#files[@]} -gt 0 ] || return 0
  awk -v suite="$SUITE" '
    function emit(types, uris, suites, enabled,   n, m, u, s, i, j, kind) {
      if (enabled == "no" || (" " types " ") !~ / deb /) return
      n = split(uris, u, " "); m = split(suites, s, " ")
      for (j = 1; j <= m; j++) {
        kind = ""
        if (s[j] == suite || s[j] == "stable") kind = "main"
        else if (s[j] == suite "-security" || s[j] == suite "/updates") kind = "security"
        if (kind == "") continue
        for (i = 1; i <= n; i++) { sub(/\/+$/, "", u[i]); print kind, u[i] }
      }
    }
    function flush() {
      if (deb822) emit(f["types"], f["uris"], f["suites"], f["enabled"])
      split("", f); key = ""
    }
    FNR == 1 { flush(); deb822 = (FILENAME ~ /\.sources$/) }
    !deb822 {
      if ($0 ~ /^[ \t]*#/ || NF < 3) next
      line = $0; sub(/#.*/, "", line); gsub(/\[[^]]*\]/, "", line)
      n = split(line, w, " ")
      if (w[1] == "deb" && n >= 3) emit("deb", w[2], w[3], "yes")
      next
    }
    # deb822: paragraphs separated by blank lines; continuation lines start with white space.
    /^[ \t]*$/ { flush(); next }
    /^#/ { next }
    /^[ \t]/ { if (key != "") f[key] = f[key] " " $0; next }
    {
      key = tolower(substr($0, 1, index($0, ":") - 1))
      f[key] = substr($0, index($0, ":") + 1)
      gsub(/[ \t]+/, " ", f[key]); sub(/^ /, "", f[key]); sub(/ $/, "", f[key])
    }
    END { flush() }
  ' "${files[@]}"
}

# pick_mirror KIND FALLBACK: the first URI of that kind, preferring one whose path ends in /debian
# (or /debian-security) over other repositories that happen to use the same suite name.
pick_mirror() {
  local kind=$1 fallback=$2 list
  list=$(apt_mirrors | awk -v k="$kind" '$1 == k { print $2 }')
  local want=debian
  [ "$kind" = security ] && want=debian-security
  # awk reads to the end (no early exit): a closed pipe would fail the pipeline under pipefail.
  { echo "$list" | grep -E "/$want\$" || true; echo "$list"; echo "$fallback"; } \
    | awk 'NF && !done { print; done = 1 }'
}

# remove_rootfs: delete the root filesystem folder. A debootstrap that died midway can leave
# /proc or /sys mounted inside it: unmount those first and never cross into another filesystem.
remove_rootfs() {
  [ -e "$ROOTFS" ] || return 0
  local mnt
  awk -v root="$ROOTFS/" 'index($2, root) == 1 { print $2 }' /proc/mounts | sort -r \
    | while read -r mnt; do umount -l "$mnt" || true; done
  rm -rf --one-file-system "$ROOTFS"
}

install_debootstrap() {
  command -v debootstrap >/dev/null && return 0
  say images "installing debootstrap from Debian's packages (log: $IMAGES_STATE/apt.log)"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; } \
      >"$IMAGES_STATE/apt.log" 2>&1; then
    say images "apt-get failed; last lines of $IMAGES_STATE/apt.log:"
    tail -n 20 "$IMAGES_STATE/apt.log" >&2
    exit 1
  fi
}

base_current() {
  [ -n "$(image_id "$BASE_TAG")" ] && [ "$(label "$BASE_TAG" base-recipe)" = "$BASE_RECIPE" ]
}

build_base() {
  local t0 mirror security
  if base_current; then
    say images "$BASE_TAG exists (recipe $BASE_RECIPE); skipping debootstrap"
    return 0
  fi
  t0=$(now)
  install_debootstrap
  mirror=${DEBIAN_MIRROR:-$(pick_mirror main http://deb.debian.org/debian)}
  security=$(pick_mirror security http://deb.debian.org/debian-security)
  if [ -f "$ROOTFS/.coderunner-complete" ]; then
    say images "reusing the root filesystem left by an earlier run in $ROOTFS"
  else
    remove_rootfs
    say images "debootstrap --variant=minbase $SUITE from $mirror into $ROOTFS (about a minute)"
    if ! debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$mirror" 2>&1 \
        | tee "$IMAGES_STATE/debootstrap.log" | prefix base; then
      say images "debootstrap failed; see $IMAGES_STATE/debootstrap.log"
      exit 1
    fi
    say images "trimming the root filesystem"
    # What Debian's own container images do: no docs/man pages/translations from later installs,
    # no services started by package scripts, no downloaded .debs or package lists kept.
    cat >"$ROOTFS/etc/dpkg/dpkg.cfg.d/coderunner-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
    cat >"$ROOTFS/etc/apt/apt.conf.d/coderunner-slim" <<'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
APT::Keep-Downloaded-Packages "false";
Acquire::Languages "none";
EOF
    printf '#!/bin/sh\nexit 101\n' >"$ROOTFS/usr/sbin/policy-rc.d"
    chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
    rm -f "$ROOTFS/etc/apt/sources.list"
    cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    find "$ROOTFS/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete 2>/dev/null || true
    find "$ROOTFS/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    rm -rf "$ROOTFS"/usr/share/{man,info,locale,lintian}/* \
      "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/cache/apt/*.bin \
      "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/* \
      "$ROOTFS"/etc/resolv.conf "$ROOTFS"/tmp/* "$ROOTFS"/dev/*
    echo localhost >"$ROOTFS/etc/hostname"
    # The sandbox's work dir: a tmpfs is mounted here, owned by uid/gid 65534 (nobody/nogroup).
    install -d -m 0755 -o 65534 -g 65534 "$ROOTFS/work"
    touch "$ROOTFS/.coderunner-complete"
  fi
  say images "importing $ROOTFS as $BASE_TAG"
  tar --numeric-owner --exclude=./.coderunner-complete -C "$ROOTFS" -c . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV HOME=/work' \
        --change 'ENV TMPDIR=/work' \
        --change "LABEL $LABEL_NS.base-recipe=$BASE_RECIPE" \
        --change "LABEL $LABEL_NS.mirror=$mirror" \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $SUITE $mirror" \
        - "$BASE_TAG" >/dev/null
  remove_rootfs
  say images "$BASE_TAG built in $(since "$t0") ($(image_size "$BASE_TAG")); removed $ROOTFS"
}

image_size() {
  docker image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.0f MB", $1 / 1000000 }'
}

# runtime_state NAME: ok | missing | outdated
runtime_state() {
  local tag base_id
  tag=$(runtime_tag "$1")
  [ -n "$(image_id "$tag")" ] || { echo missing; return; }
  base_id=$(image_id "$BASE_TAG")
  if [ "$(label "$tag" dockerfile-sha256)" != "$(dockerfile_sha "$1")" ] \
      || [ "$(label "$tag" base-image-id)" != "$base_id" ]; then
    echo outdated
  else
    echo ok
  fi
}

build_runtime() {
  local name=$1 tag state t0 versions
  tag=$(runtime_tag "$name")
  state=$(runtime_state "$name")
  if [ "$state" = ok ]; then
    say images "$tag is up to date ($(label "$tag" versions)); skipping"
    return 0
  fi
  say images "building $tag ($state) from images/runtimes/$name/Dockerfile"
  t0=$(now)
  if ! docker build --force-rm \
      --build-arg "BASE_IMAGE=$BASE_TAG" \
      --label "$LABEL_NS.runtime=$name" \
      --label "$LABEL_NS.dockerfile-sha256=$(dockerfile_sha "$name")" \
      --label "$LABEL_NS.base-image-id=$(image_id "$BASE_TAG")" \
      -t "$tag" "$RUNTIMES_DIR/$name" 2>&1 \
      | sed -u '1,6{/^DEPRECATED: The legacy builder/d;/^            /d;/^$/d}' \
      | tee "$IMAGES_STATE/build-$name.log" | prefix "$name"; then
    say images "building $tag failed; see $IMAGES_STATE/build-$name.log"
    exit 1
  fi
  # Each Dockerfile writes its language versions to /etc/coderunner/versions; put them in a label.
  versions=$(docker run --rm --network none "$tag" cat /etc/coderunner/versions \
    | paste -sd ';' | sed 's/;/; /g; s/"/'"'"'/g')
  printf 'FROM %s\nLABEL %s.versions="%s"\n' "$tag" "$LABEL_NS" "$versions" \
    | docker build -q -t "$tag" - >/dev/null 2>&1
  docker image prune -f --filter "label=$LABEL_NS.runtime=$name" >/dev/null
  say images "$tag built in $(since "$t0") ($(image_size "$tag")): $versions"
}

ensure_docker() {
  docker info >/dev/null 2>&1 || bash "$(dirname "$0")/docker.sh" up
}

up() {
  local t0 name
  t0=$(now)
  mkdir -p "$IMAGES_STATE"
  ensure_docker
  build_base
  for name in $(runtimes); do
    build_runtime "$name"
  done
  say images "ready: $BASE_TAG and $(runtimes | wc -l) runtime images (total $(since "$t0"))"
}

status() {
  local rc=0 name tag state
  if ! docker info >/dev/null 2>&1; then
    say images "docker does not answer; image state unknown"
    exit 3
  fi
  if base_current; then
    say images "$BASE_TAG present ($(image_size "$BASE_TAG"))"
  elif [ -n "$(image_id "$BASE_TAG")" ]; then
    say images "$BASE_TAG outdated (recipe $(label "$BASE_TAG" base-recipe), want $BASE_RECIPE)"; rc=3
  else
    say images "$BASE_TAG missing"; rc=3
  fi
  for name in $(runtimes); do
    tag=$(runtime_tag "$name")
    state=$(runtime_state "$name")
    case $state in
      ok) say images "$tag present ($(image_size "$tag")): $(label "$tag" versions)" ;;
      outdated) say images "$tag outdated (Dockerfile or base changed)"; rc=3 ;;
      *) say images "$tag missing"; rc=3 ;;
    esac
  done
  exit $rc
}

case "${1:-}" in
  up) up ;;
  down) say images "nothing to stop; the images stay (docker rmi to remove them)" ;;
  status) status ;;
  list) for name in $(runtimes); do runtime_tag "$name"; done ;;
  *) echo "usage: $0 up|down|status|list" >&2; exit 2 ;;
esac
