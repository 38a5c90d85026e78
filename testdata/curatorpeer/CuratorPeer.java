/*
 * CuratorPeer is a Java program that drives Apache Curator's lock and leader recipes on command, so
 * that the Go tests in internal/interop can check that gocurator and Curator work on the same znodes.
 * The tests compile it with javac against the Curator jars (Debian's libcurator-*-java) and run it
 * with java.
 *
 * Protocol: one command per line on stdin, words separated by single spaces; one answer line on
 * stdout per command, in order:
 *
 *   OK [values...]       the command succeeded
 *   TIMEOUT              an acquire did not succeed within its timeout (it left no node behind)
 *   ERR <reason>         the command failed (unknown command, bad arguments, a Curator or
 *                        ZooKeeper exception; BadVersion is reported as "ERR BADVERSION <path>")
 *
 * Commands (ids name recipe objects inside this process; an id is created by its first use and the
 * same id used again is the same Java object, so a second acquire on it re-enters as Curator does):
 *
 *   connect <connect-string> <session-timeout-ms>  start the CuratorFramework; OK <session-id-hex>
 *   session                                        OK <session-id-hex>
 *   mutex.acquire <id> <path> <timeout-ms>         InterProcessMutex; OK <lock-node-path>
 *   mutex.release <id>                             OK
 *   read.acquire <id> <path> <timeout-ms>          read lock of InterProcessReadWriteLock <id>;
 *                                                  OK <lock-node-path>
 *   read.release <id>                              OK
 *   write.acquire <id> <path> <timeout-ms>         write lock of InterProcessReadWriteLock <id>;
 *                                                  OK <lock-node-path>
 *   write.release <id>                             OK
 *   sem.acquire <id> <path> <max-leases> <qty> <timeout-ms>
 *                                                  qty leases of InterProcessSemaphoreV2 <id>;
 *                                                  OK <lease-node-name>...
 *   sem.release <id>                               return every lease held under <id>; OK <count>
 *   semmutex.acquire <id> <path> <timeout-ms>      InterProcessSemaphoreMutex; OK
 *   semmutex.release <id>                          OK
 *   latch.start <id> <path> <participant-id>       start a LeaderLatch; OK
 *   latch.has <id>                                 OK true|false (hasLeadership)
 *   latch.await <id> <timeout-ms>                  OK true|false
 *   latch.path <id>                                OK <our-path>
 *   latch.participants <id>                        OK <participant-id>,<true|false>... in order
 *   latch.close <id>                               close the latch; OK
 *   incr <path> <pause-ms>                         read the decimal number in <path>, pause, write
 *                                                  it plus one with the version read; OK <new-value>
 *   add <path> <delta>                             add delta to the decimal number in <path> with a
 *                                                  compare-and-set loop; OK <new-value>
 *   pzxid <path>                                   OK <pzxid of path, decimal>
 *   nodes <path>                                   the ephemeral znodes under <path> (at any depth)
 *                                                  that this peer's session owns:
 *                                                  OK <relative-path>=<base64-data>... sorted
 *   quit                                           OK, then exit
 *
 * Participant ids and paths must not contain spaces. The peer writes nothing but answers to stdout
 * (logging goes to stderr). When stdin closes it runs the commands it has read, for up to 5
 * seconds, then closes its client (so its ephemeral nodes go at once) and exits, even in the
 * middle of a command.
 */

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.Participant;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreMutex;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;

public final class CuratorPeer {
    private volatile CuratorFramework client;

    private final Map<String, InterProcessMutex> mutexes = new HashMap<>();
    private final Map<String, InterProcessReadWriteLock> rwLocks = new HashMap<>();
    private final Map<String, InterProcessSemaphoreV2> semaphores = new HashMap<>();
    private final Map<String, List<Lease>> leases = new HashMap<>();
    private final Map<String, InterProcessSemaphoreMutex> semMutexes = new HashMap<>();
    private final Map<String, LeaderLatch> latches = new HashMap<>();

    /** EOF marks the end of stdin in the queue of lines read. */
    private static final String EOF = new String("<eof>");

    /** EOF_GRACE_MS is how long the commands read before stdin closed may still run. */
    private static final long EOF_GRACE_MS = 5000;

    private CuratorPeer() {
    }

    public static void main(String[] args) throws Exception {
        // Answers go to the real stdout; anything else that prints to System.out goes to stderr.
        PrintStream answers = new PrintStream(new FileOutputStream(FileDescriptor.out), true, "UTF-8");
        System.setOut(System.err);
        CuratorPeer peer = new CuratorPeer();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        // Commands run on this thread, one after the other; stdin is read on another thread so that
        // the peer also exits when stdin closes while a command blocks: the commands already read
        // are still run (for up to a few seconds), then the peer exits.
        BlockingQueue<String> lines = new LinkedBlockingQueue<>();
        Thread reader = new Thread(() -> {
            try {
                String line;
                while ((line = in.readLine()) != null) {
                    lines.put(line);
                }
                lines.put(EOF);
                Thread.sleep(EOF_GRACE_MS);
            } catch (Exception e) {
                // stdin is gone: exit.
            }
            peer.shutdown();
            System.exit(0);
        }, "stdin");
        reader.setDaemon(true);
        reader.start();
        while (true) {
            String line = lines.take();
            if (line == EOF) {
                break;
            }
            String answer;
            try {
                answer = peer.handle(line.trim().split(" "));
            } catch (KeeperException.BadVersionException e) {
                answer = "ERR BADVERSION " + e.getPath();
            } catch (Throwable e) {
                answer = "ERR " + e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            answers.println(answer.replace('\n', ' ').replace('\r', ' '));
            if (answer.equals("OK") && line.trim().equals("quit")) {
                break;
            }
        }
        peer.shutdown();
        System.exit(0);
    }

    private synchronized void shutdown() {
        CuratorFramework c = client;
        client = null;
        if (c != null) {
            try {
                c.close();
            } catch (Throwable e) {
                // exiting anyway
            }
        }
    }

    private String handle(String[] w) throws Exception {
        switch (w[0]) {
            case "connect": {
                args(w, 3);
                if (client != null) {
                    return "ERR already connected";
                }
                CuratorFramework c = CuratorFrameworkFactory.builder()
                        .connectString(w[1])
                        .sessionTimeoutMs(Integer.parseInt(w[2]))
                        .connectionTimeoutMs(Math.min(10000, Integer.parseInt(w[2])))
                        .retryPolicy(new ExponentialBackoffRetry(100, 5))
                        .build();
                c.start();
                if (!c.blockUntilConnected(20, TimeUnit.SECONDS)) {
                    c.close();
                    return "ERR not connected after 20s";
                }
                client = c;
                return "OK " + sessionId();
            }
            case "session":
                args(w, 1);
                return "OK " + sessionId();
            case "mutex.acquire": {
                args(w, 4);
                InterProcessMutex m = mutexes.computeIfAbsent(w[1], k -> new InterProcessMutex(client(), w[2]));
                if (!m.acquire(Long.parseLong(w[3]), TimeUnit.MILLISECONDS)) {
                    return "TIMEOUT";
                }
                return "OK " + lockPath(m);
            }
            case "mutex.release":
                args(w, 2);
                get(mutexes, w[1]).release();
                return "OK";
            case "read.acquire":
            case "write.acquire": {
                args(w, 4);
                InterProcessReadWriteLock rw = rwLocks.computeIfAbsent(w[1], k -> new InterProcessReadWriteLock(client(), w[2]));
                InterProcessMutex m = w[0].startsWith("read") ? rw.readLock() : rw.writeLock();
                if (!m.acquire(Long.parseLong(w[3]), TimeUnit.MILLISECONDS)) {
                    return "TIMEOUT";
                }
                return "OK " + lockPath(m);
            }
            case "read.release":
                args(w, 2);
                get(rwLocks, w[1]).readLock().release();
                return "OK";
            case "write.release":
                args(w, 2);
                get(rwLocks, w[1]).writeLock().release();
                return "OK";
            case "sem.acquire": {
                args(w, 6);
                InterProcessSemaphoreV2 s = semaphores.computeIfAbsent(w[1],
                        k -> new InterProcessSemaphoreV2(client(), w[2], Integer.parseInt(w[3])));
                Collection<Lease> got = s.acquire(Integer.parseInt(w[4]), Long.parseLong(w[5]), TimeUnit.MILLISECONDS);
                if (got == null) {
                    return "TIMEOUT";
                }
                leases.computeIfAbsent(w[1], k -> new ArrayList<>()).addAll(got);
                StringBuilder b = new StringBuilder("OK");
                for (Lease l : got) {
                    b.append(' ').append(l.getNodeName());
                }
                return b.toString();
            }
            case "sem.release": {
                args(w, 2);
                List<Lease> held = leases.remove(w[1]);
                if (held == null) {
                    return "OK 0";
                }
                get(semaphores, w[1]).returnAll(held);
                return "OK " + held.size();
            }
            case "semmutex.acquire": {
                args(w, 4);
                InterProcessSemaphoreMutex m = semMutexes.computeIfAbsent(w[1], k -> new InterProcessSemaphoreMutex(client(), w[2]));
                if (!m.acquire(Long.parseLong(w[3]), TimeUnit.MILLISECONDS)) {
                    return "TIMEOUT";
                }
                return "OK";
            }
            case "semmutex.release":
                args(w, 2);
                get(semMutexes, w[1]).release();
                return "OK";
            case "latch.start": {
                args(w, 4);
                if (latches.containsKey(w[1])) {
                    return "ERR latch " + w[1] + " exists";
                }
                LeaderLatch l = new LeaderLatch(client(), w[2], w[3]);
                l.start();
                latches.put(w[1], l);
                return "OK";
            }
            case "latch.has":
                args(w, 2);
                return "OK " + get(latches, w[1]).hasLeadership();
            case "latch.await":
                args(w, 3);
                return "OK " + get(latches, w[1]).await(Long.parseLong(w[2]), TimeUnit.MILLISECONDS);
            case "latch.path":
                args(w, 2);
                return "OK " + get(latches, w[1]).getOurPath();
            case "latch.participants": {
                args(w, 2);
                StringBuilder b = new StringBuilder("OK");
                for (Participant p : get(latches, w[1]).getParticipants()) {
                    b.append(' ').append(p.getId()).append(',').append(p.isLeader());
                }
                return b.toString();
            }
            case "latch.close":
                args(w, 2);
                get(latches, w[1]).close();
                latches.remove(w[1]);
                return "OK";
            case "incr": {
                args(w, 3);
                Stat st = new Stat();
                byte[] data = client().getData().storingStatIn(st).forPath(w[1]);
                long n = Long.parseLong(new String(data, StandardCharsets.UTF_8).trim());
                Thread.sleep(Long.parseLong(w[2]));
                client().setData().withVersion(st.getVersion())
                        .forPath(w[1], Long.toString(n + 1).getBytes(StandardCharsets.UTF_8));
                return "OK " + (n + 1);
            }
            case "add": {
                args(w, 3);
                while (true) {
                    Stat st = new Stat();
                    byte[] data = client().getData().storingStatIn(st).forPath(w[1]);
                    long n = Long.parseLong(new String(data, StandardCharsets.UTF_8).trim()) + Long.parseLong(w[2]);
                    try {
                        client().setData().withVersion(st.getVersion())
                                .forPath(w[1], Long.toString(n).getBytes(StandardCharsets.UTF_8));
                        return "OK " + n;
                    } catch (KeeperException.BadVersionException e) {
                        // someone else changed it meanwhile: again
                    }
                }
            }
            case "pzxid": {
                args(w, 2);
                Stat st = client().checkExists().forPath(w[1]);
                if (st == null) {
                    return "ERR no node " + w[1];
                }
                return "OK " + st.getPzxid();
            }
            case "nodes": {
                args(w, 2);
                List<String> found = new ArrayList<>();
                long sid = client().getZookeeperClient().getZooKeeper().getSessionId();
                walk(w[1], "", sid, found);
                Collections.sort(found);
                StringBuilder b = new StringBuilder("OK");
                for (String f : found) {
                    b.append(' ').append(f);
                }
                return b.toString();
            }
            case "quit":
                args(w, 1);
                return "OK";
            default:
                return "ERR unknown command " + w[0];
        }
    }

    /** walk adds the ephemeral nodes under base+rel that session sid owns, as rel=base64(data). */
    private void walk(String base, String rel, long sid, List<String> found) throws Exception {
        String path = rel.isEmpty() ? base : base + "/" + rel;
        List<String> children;
        try {
            children = client().getChildren().forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return;
        }
        for (String child : children) {
            String childRel = rel.isEmpty() ? child : rel + "/" + child;
            Stat st = new Stat();
            byte[] data;
            try {
                data = client().getData().storingStatIn(st).forPath(base + "/" + childRel);
            } catch (KeeperException.NoNodeException e) {
                continue;
            }
            if (st.getEphemeralOwner() == sid) {
                found.add(childRel + "=" + Base64.getEncoder().encodeToString(data == null ? new byte[0] : data));
            }
            if (st.getNumChildren() > 0) {
                walk(base, childRel, sid, found);
            }
        }
    }

    private CuratorFramework client() {
        CuratorFramework c = client;
        if (c == null) {
            throw new IllegalStateException("not connected");
        }
        return c;
    }

    private String sessionId() throws Exception {
        return Long.toHexString(client().getZookeeperClient().getZooKeeper().getSessionId());
    }

    /** lockPath returns the node of the current thread's hold (getLockPath is not public in 5.4). */
    private static String lockPath(InterProcessMutex m) throws Exception {
        Method get = InterProcessMutex.class.getDeclaredMethod("getLockPath");
        get.setAccessible(true);
        return (String) get.invoke(m);
    }

    private static <T> T get(Map<String, T> m, String id) {
        T v = m.get(id);
        if (v == null) {
            throw new IllegalArgumentException("no object " + id);
        }
        return v;
    }

    private static void args(String[] w, int n) {
        if (w.length != n) {
            throw new IllegalArgumentException(w[0] + " takes " + (n - 1) + " arguments, not " + (w.length - 1));
        }
    }
}
