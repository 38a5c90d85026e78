#!/usr/bin/env bash
# Installs what the demo and the tests need on a Debian or Ubuntu machine, if it is missing:
# a ZooKeeper server (the jars of Debian's zookeeper package, libzookeeper-java, with a headless
# Java runtime) and the Go modules.
# Nothing is installed when ZOOKEEPER_HOME or ZK_SERVERS points at a ZooKeeper already.
# The interop tests also need a JDK and Apache Curator (Debian's libcurator-*-java), unless
# GOCURATOR_SKIP_JAVA=1 skips them or CURATOR_JARS points at Curator's jars.
set -euo pipefail

need=()
if [ -z "${ZK_SERVERS:-}" ] && [ -z "${ZOOKEEPER_HOME:-}" ] && [ ! -f /usr/share/java/zookeeper.jar ]; then
  need+=(libzookeeper-java)
fi
if [ -z "${ZK_SERVERS:-}" ] && ! command -v java >/dev/null 2>&1; then
  need+=(default-jre-headless)
fi
if [ "${GOCURATOR_SKIP_JAVA:-}" != "1" ]; then
  if ! command -v javac >/dev/null 2>&1; then
    need+=(default-jdk-headless)
  fi
  if [ -z "${CURATOR_JARS:-}" ]; then
    for pkg in curator-recipes curator-framework curator-client; do
      [ -f "/usr/share/java/$pkg.jar" ] || need+=("lib$pkg-java")
    done
  fi
fi
for pkg in ${EXTRA_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  echo "Go is not installed: install Go 1.21 or newer (it fetches the Go 1.26 toolchain this module asks for)." >&2
  exit 1
fi
go mod download
