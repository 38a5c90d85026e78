#!/usr/bin/env bash
# Builds, or reuses, the stand-in ZooKeeper image that the Docker backend's tests run (make
# test-docker), on a machine that reaches Debian's package archive but no container registry:
#
#   1. installs docker.io and debootstrap from Debian if they are missing;
#   2. starts dockerd if none answers, with --bridge=none --iptables=false (the tests' containers
#      use host networking: every server listens on 127.0.0.1 ports, no other address is used);
#   3. makes a minimal Debian bookworm base image (debootstrap --variant=minbase, docker import),
#      unless it exists;
#   4. builds testdata/docker (Debian's zookeeper and a JRE, behind an entrypoint that honours
#      the official zookeeper image's environment contract) on it, unless an image of the same
#      tag exists: the tag ends with a hash of testdata/docker, so a changed recipe is rebuilt.
#
# The image's tag is the last line of standard output. Every failure, above all a dockerd that
# cannot run here, ends the script with a message saying so and a non-zero status.
#
# Environment: ZKTEST_IMAGE (an image to use instead of the stand-in: only steps 1 and 2 are
# done, and it is printed), DEBIAN_MIRROR (default http://deb.debian.org/debian), DOCKERD_LOG (dockerd's
# log when this script starts it), ZKTEST_BASE_IMAGE (the base image's tag).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "docker-image: $*" >&2; }
die() { echo "docker-image: $*" >&2; exit 1; }

mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
base=${ZKTEST_BASE_IMAGE:-gocurator/zktest-debian:bookworm-minbase}
recipe=$(cat testdata/docker/Dockerfile testdata/docker/docker-entrypoint.sh testdata/docker/zkServer.sh | sha256sum | cut -c1-12)
tag=gocurator/zktest-zookeeper:bookworm-$recipe
dockerd_log=${DOCKERD_LOG:-${TMPDIR:-/tmp}/zktest-dockerd.log}

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi

install() {
  log "installing from Debian: $*"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null ||
    die "could not install $* from Debian"
}

answers() { command -v docker >/dev/null 2>&1 && docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# 1. The docker command and the daemon, unless a daemon answers already.
if ! answers && { ! command -v docker >/dev/null 2>&1 || ! command -v dockerd >/dev/null 2>&1; }; then
  install docker.io
fi

# 2. A daemon that answers.
if ! answers; then
  log "no Docker daemon answers: starting dockerd --bridge=none --iptables=false (log: $dockerd_log)"
  command -v dockerd >/dev/null 2>&1 || die "dockerd is not installed and no Docker daemon answers"
  $sudo nohup setsid dockerd --bridge=none --iptables=false </dev/null >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  disown
  for _ in $(seq 1 60); do
    if answers; then break; fi
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      die "dockerd cannot run on this machine: it exited at start-up. The end of its log ($dockerd_log):
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
    fi
    sleep 1
  done
  answers ||
    die "dockerd was started but does not answer after 60s. The end of its log ($dockerd_log):
$(tail -n 20 "$dockerd_log" 2>/dev/null)"
fi
log "Docker daemon $(docker version --format '{{.Server.Version}}') answers"

# An image of the caller's choice is used as it is.
if [ -n "${ZKTEST_IMAGE:-}" ]; then
  log "using ZKTEST_IMAGE=$ZKTEST_IMAGE"
  echo "$ZKTEST_IMAGE"
  exit 0
fi

# 4 first: an image of this recipe's tag is reused as it is.
if docker image inspect "$tag" >/dev/null 2>&1; then
  log "reusing $tag"
  echo "$tag"
  exit 0
fi

# 3. The base image.
if ! docker image inspect "$base" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || install debootstrap
  root=$(mktemp -d "${TMPDIR:-/tmp}/zktest-rootfs-XXXXXX")
  trap '$sudo rm -rf "$root"' EXIT
  log "debootstrap --variant=minbase bookworm from $mirror (a minute or two)"
  $sudo debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    die "debootstrap failed; the end of its log:
$(tail -n 20 "$root.log")"
  rm -f "$root.log"
  $sudo rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  log "docker import as $base"
  $sudo tar -C "$root" -c . | docker import - "$base" >/dev/null || die "docker import failed"
  $sudo rm -rf "$root"
  trap - EXIT
fi

# 4. The stand-in image. The legacy builder honours --network host without BuildKit's plugin,
# which Debian's docker.io does not ship.
log "building $tag on $base"
DOCKER_BUILDKIT=0 docker build -q --network host --build-arg "BASE=$base" \
  -t "$tag" testdata/docker >&2 || die "building $tag failed"
echo "$tag"
