// Package faults holds the tests that put gocurator's recipes through the faults a lock service
// meets in production, on a real three-member ZooKeeper ensemble started by zktest.StartEnsemble:
// the ZooKeeper leader killed while locks are held and waited for, the member a client is
// connected to killed, the quorum lost and restored, a holder's session expired in front of a
// queue of waiters, a connection cut right after each kind of create a recipe makes, and a
// guaranteed delete that runs into a dead connection.
//
// TestSoak runs clients, in this process and in child processes, that take every recipe while a
// fault injector cuts, black-holes, delays and expires their connections and sessions, holds
// replies, pauses processes and kills members and the leader at random moments, and checks each
// exclusive lock's and each election's history with porcupine; TestLeaderKillLoop kills the leader
// member round after round. Both check that no two holders that exclude each other ever hold at
// once, that fencing tokens increase, and that no znode is left behind. Flags:
//
//	-soak.duration  how long TestSoak injects faults (default 60s, or 2m when CI=true)
//	-soak.seed      the seed of the fault injector (default: from the clock; printed, to replay)
//	-leaderkill.rounds  how many times TestLeaderKillLoop kills the leader (default 20)
//
// The tests need an ensemble of their own: when ZK_SERVERS names an external ensemble, which they
// cannot stop or kill, they are skipped with a message that says so.
package faults
