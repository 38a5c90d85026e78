#!/bin/bash
# zkServer.sh start-foreground, as the official image runs it: ZooKeeper's QuorumPeerMain (which
# runs a standalone server when the configuration has one server and standaloneEnabled=true) on
# $ZOO_CONF_DIR/zoo.cfg, in the foreground as the container's main process, logging to the
# console, with JVMFLAGS and SERVER_JVMFLAGS among its Java options.
set -e
if [[ "$1" != "start-foreground" ]]; then
    echo "usage: zkServer.sh start-foreground" >&2
    exit 2
fi
cp=/usr/share/java/zookeeper.jar
for jar in zookeeper-jute.jar slf4j-simple.jar; do
    if [[ -f "/usr/share/java/$jar" ]]; then cp="$cp:/usr/share/java/$jar"; fi
done
# shellcheck disable=SC2086 # JVMFLAGS holds several options
exec java -Xmx${ZK_SERVER_HEAP:-1000}m \
    -Dzookeeper.log.dir="$ZOO_LOG_DIR" \
    -Dorg.slf4j.simpleLogger.logFile=System.out \
    -Dorg.slf4j.simpleLogger.showDateTime=true \
    -Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS \
    $JVMFLAGS $SERVER_JVMFLAGS \
    -cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZOO_CONF_DIR/zoo.cfg"
