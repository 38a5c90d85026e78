// Package interop holds the tests that prove gocurator's recipes and Apache Curator's work on the
// same znodes: a Java program driving Curator (testdata/curatorpeer/CuratorPeer.java) and Go clients
// take the same locks, semaphores and leader latches on one ZooKeeper server, and the tests check
// that they exclude each other, share leases and elect one leader, and that both write the same
// node names and data.
//
// The tests compile the Java program with javac against the Curator jars of Debian's
// libcurator-recipes-java, libcurator-framework-java and libcurator-client-java packages (found
// under /usr/share/java, or under CURATOR_JARS if set). Without a JDK or those jars the tests fail
// with an install hint; GOCURATOR_SKIP_JAVA=1 skips them instead.
package interop
