// Package zktest runs real ZooKeeper servers for tests, and a TCP proxy that
// injects network faults between them and their clients.
//
// # Servers
//
// Start launches a standalone ZooKeeper server of the test's own, waits until
// it serves requests, and stops it and deletes its data when the test ends:
//
//	func TestSomething(t *testing.T) {
//		s := zktest.Start(t)
//		conn, _, err := zk.Connect(s.Servers(), 2*time.Second)
//		...
//	}
//
// The server is a Java process running ZooKeeper's own server code. Start
// finds it as follows:
//
//   - If ZK_SERVERS is set to a comma-separated list of host:port addresses,
//     Start launches nothing and hands out that ensemble, giving each test a
//     fresh root path of its own (see Server.Root).
//   - If ZOOKEEPER_HOME is set, it must hold an unpacked ZooKeeper release:
//     the jars in $ZOOKEEPER_HOME and $ZOOKEEPER_HOME/lib are used.
//   - Otherwise the jars of the Debian or Ubuntu package are used
//     (sudo apt-get install zookeeper), or those of a release unpacked in
//     /opt/zookeeper or /usr/local/zookeeper.
//
// Java is found in $JAVA_HOME/bin or on PATH. If no server can be found or
// started, Start fails the test with a message that says how to install one;
// it never skips the test.
//
// Each server listens on a free port of 127.0.0.1 and keeps its
// configuration (zoo.cfg), its data (data/) and its log (zookeeper.log) in a
// temporary directory. If the test fails, the end of the log is written to
// the test's output before the directory is removed.
//
// The server's tickTime defaults to 200ms (see WithTickTime), so that it
// grants session timeouts from 400ms to 4s and sessions expire quickly. It
// allows every four-letter-word command (see Server.FourLetter), checks for
// empty container nodes every second, and allows TTL nodes. It does not sync
// its transaction log to disk: its data survive Server.Stop and Server.Kill,
// but not a crash of the machine.
//
// # Faults
//
// A Proxy stands between clients and a server. Tests make clients connect to
// Proxy.Addr and then:
//
//   - Proxy.CloseConnections drops every connection, as a network failure
//     would; clients reconnect and keep their sessions.
//   - Proxy.Blackhole silently swallows all traffic, as a network partition
//     would.
//   - Proxy.ExpireSession makes the server expire a client's session for
//     real, by hiding the client from the server until the session timeout
//     runs out.
//   - Proxy.CutAfterNextCreate lets a create reach the server and then cuts
//     the connection before the reply reaches the client, which cannot tell
//     whether its znode was created.
//   - Proxy.Delay delays every packet of one direction, or both, keeping
//     their order, as a congested network would.
//   - Proxy.HoldNextReply holds back the reply to the next request of a
//     kind (OpCreate, OpDelete, OpGetChildren...) for a while, and then
//     delivers it or drops the connection instead.
//
// StartProcess runs a child process (typically the test binary itself,
// running a helper main) that Process.Pause and Process.Resume stop and
// continue as a whole with SIGSTOP and SIGCONT, as a long garbage
// collection or a frozen virtual machine would: a paused client sends no
// pings and its timers fire late. It needs Linux and skips elsewhere.
//
// Server.Stop, Server.Kill and Server.Restart stop and start the server
// itself; the server keeps its port and its data.
//
// # Ensembles
//
// StartEnsemble runs a replicated ensemble of several members (3, usually),
// each a process of its own with its own ports, myid and directory, and
// returns once one member leads. Tests stop, kill and restart members one by
// one (Ensemble.Stop, Ensemble.Kill, Ensemble.Restart), find the leader
// (Ensemble.Leader, Ensemble.WaitReady) and the member a client is connected
// to (Ensemble.SessionMember), and put an EnsembleProxy, one Proxy per
// member, in front of a client to cut, black-hole or expire its connections
// and session alone. An ensemble is always one of the test's own: when
// ZK_SERVERS names an external ensemble, StartEnsemble skips the test with a
// message that says so.
package zktest
