/*
 * ZkBench is the Apache Curator twin of cmd/zkbench: it runs the same workloads with Curator's
 * recipes (and, for the raw ceilings, with ZooKeeper's own Java client) and prints its results in
 * the same format, so that "zkbench -compare" (make bench) can put the two side by side. It is
 * compiled with javac against Debian's Curator 5.4 jars (libcurator-*-java) by internal/javart.
 *
 *   java -cp <classes>:<jars> ZkBench -server host:port [flags]
 *
 * Flags, as zkbench's: -server, -root, -recipe (mutex, semaphore-mutex, read, write), -workloads
 * (W1,W2,W3,W4,W5,W6,W6s,G1,R1,R2,R3,RC), -iterations, -per-session, -sessions, -paths, -herd,
 * -failovers, -reconnects, -waiters, -shared-waiters, -warmup, -session-timeout and -timeout
 * (durations such as 30s or 30000ms), -json, -q. Results go to stdout (one line, or one JSON
 * object, per workload); progress and Curator's logging go to stderr. G1 (go-zookeeper's lock
 * recipe) and RC (zkbench's reconnect timing through its test proxy) have no twin here: they are
 * accepted and print nothing (n/a in zkbench -compare's table).
 *
 * Each result also gives the client's cost per operation over the measured part: the process's
 * CPU time (com.sun.management.OperatingSystemMXBean.getProcessCpuTime: every thread, JIT and GC
 * included) and the bytes allocated (com.sun.management.ThreadMXBean.getThreadAllocatedBytes over
 * the live threads, the workload's own threads counted up to their end). Allocations are not
 * counted by the JVM: allocs_per_op is -1 (n/a).
 *
 * Requests per operation are counted on the server (the delta of mntr's zk_packets_received) and
 * in the client: each Curator client's ZooKeeper handle is a subclass of ZooKeeperAdmin (what
 * Curator makes by default) that counts the requests made through it.
 *
 * Curator's ensemble tracker (a watch on /zookeeper/config set when a client connects) is turned
 * off, so that the server's watch count tells when waiters are queued; it costs nothing per lock.
 */

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.math.BigDecimal;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicReference;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.leader.LeaderLatchListener;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreMutex;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.curator.utils.ZookeeperFactory;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZKUtil;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.admin.ZooKeeperAdmin;
import org.apache.zookeeper.client.ZKClientConfig;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;

public final class ZkBench {
    static final String IMPL = "curator";
    static final List<String> ALL = Arrays.asList("W1", "W2", "W3", "W4", "W5", "W6", "W6s", "G1", "R1", "R2", "R3", "RC");

    // Flags.
    String server = System.getenv("ZK_SERVERS");
    String root = "";
    String recipe = "mutex";
    List<String> workloads = ALL;
    int iterations = 2000;
    int perSession = 250;
    int sessions = 8;
    int paths = 8;
    int[] herd = {8, 16, 32};
    int failovers = 10;
    int reconnects = 20; // RC has no twin: accepted for zkbench's sake
    int waiters = 10000;
    int sharedWaiters = 1000;
    int warmup = 200;
    long sessionTimeoutMs = 30000;
    long timeoutMs = 300000;
    boolean json;
    boolean quiet;

    List<String> servers;
    ZooKeeper admin;
    long deadline; // of the running workload, in System.nanoTime

    public static void main(String[] args) throws Exception {
        ZkBench b = new ZkBench();
        try {
            b.parse(args);
        } catch (IllegalArgumentException e) {
            System.err.println("ZkBench: " + e.getMessage());
            System.exit(2);
        }
        System.exit(b.run());
    }

    // ---- flags ----

    void parse(String[] args) {
        for (int i = 0; i < args.length; i++) {
            String f = args[i];
            if (f.startsWith("--")) {
                f = f.substring(1);
            }
            String v = null;
            int eq = f.indexOf('=');
            if (eq >= 0) {
                v = f.substring(eq + 1);
                f = f.substring(0, eq);
            }
            if (f.equals("-json")) {
                json = v == null || Boolean.parseBoolean(v);
                continue;
            }
            if (f.equals("-q")) {
                quiet = v == null || Boolean.parseBoolean(v);
                continue;
            }
            if (v == null) {
                if (i + 1 >= args.length) {
                    throw new IllegalArgumentException("flag needs an argument: " + f);
                }
                v = args[++i];
            }
            switch (f) {
                case "-server": server = v; break;
                case "-root": root = v; break;
                case "-recipe": recipe = v; break;
                case "-workloads": workloads = parseWorkloads(v); break;
                case "-iterations": iterations = positive(f, v); break;
                case "-per-session": perSession = positive(f, v); break;
                case "-sessions": sessions = positive(f, v); break;
                case "-paths": paths = positive(f, v); break;
                case "-herd": herd = parseInts(v); break;
                case "-failovers": failovers = positive(f, v); break;
                case "-reconnects": reconnects = positive(f, v); break;
                case "-waiters": waiters = positive(f, v); break;
                case "-shared-waiters": sharedWaiters = positive(f, v); break;
                case "-warmup": warmup = Integer.parseInt(v); break;
                case "-session-timeout": sessionTimeoutMs = parseDurationMs(v); break;
                case "-timeout": timeoutMs = parseDurationMs(v); break;
                default: throw new IllegalArgumentException("unknown flag " + f);
            }
        }
        if (!Arrays.asList("mutex", "semaphore-mutex", "read", "write").contains(recipe)) {
            throw new IllegalArgumentException("-recipe " + recipe + ": want mutex, semaphore-mutex, read or write");
        }
        if (server == null || server.trim().isEmpty()) {
            throw new IllegalArgumentException("-server (or ZK_SERVERS) is required");
        }
    }

    static int positive(String f, String v) {
        int n = Integer.parseInt(v);
        if (n < 1) {
            throw new IllegalArgumentException(f + " " + v + ": must be at least 1");
        }
        return n;
    }

    static List<String> parseWorkloads(String s) {
        List<String> out = new ArrayList<>();
        for (String w : s.split(",")) {
            w = w.trim();
            if (w.isEmpty()) {
                continue;
            }
            String found = null;
            for (String a : ALL) {
                if (a.equalsIgnoreCase(w)) {
                    found = a;
                }
            }
            if (found == null) {
                throw new IllegalArgumentException("-workloads: unknown workload " + w);
            }
            if (!out.contains(found)) {
                out.add(found);
            }
        }
        out.sort((a, b) -> ALL.indexOf(a) - ALL.indexOf(b));
        return out;
    }

    static int[] parseInts(String s) {
        return Arrays.stream(s.split(",")).map(String::trim).filter(x -> !x.isEmpty()).mapToInt(Integer::parseInt).toArray();
    }

    static final Pattern DURATION = Pattern.compile("(\\d+(?:\\.\\d+)?)(ms|s|m|h)");

    static long parseDurationMs(String s) {
        Matcher m = DURATION.matcher(s);
        double total = 0;
        int end = 0;
        while (m.find()) {
            if (m.start() != end) {
                throw new IllegalArgumentException("bad duration " + s);
            }
            end = m.end();
            double v = Double.parseDouble(m.group(1));
            switch (m.group(2)) {
                case "ms": total += v; break;
                case "s": total += v * 1000; break;
                case "m": total += v * 60000; break;
                default: total += v * 3600000; break;
            }
        }
        if (end != s.length() || end == 0) {
            throw new IllegalArgumentException("bad duration " + s);
        }
        return (long) total;
    }

    // ---- running ----

    void progress(String msg) {
        if (!quiet) {
            System.err.println("zkbench-curator: " + msg);
        }
    }

    int run() throws Exception {
        servers = new ArrayList<>();
        String cs = server.contains("/") ? server.substring(0, server.indexOf('/')) : server;
        for (String s : cs.split(",")) {
            s = s.trim();
            if (!s.isEmpty()) {
                servers.add(s.contains(":") ? s : s + ":2181");
            }
        }
        if (root.isEmpty()) {
            root = "/zkbench/" + IMPL + "-" + System.nanoTime();
        }
        admin = rawConnect();
        int failed = 0;
        try {
            mkdirs(admin, root);
            try {
                packets();
            } catch (Exception e) {
                progress("server packet counts unavailable (is mntr in 4lw.commands.whitelist?): " + e);
            }
            for (String w : workloads) {
                progress(w + " ...");
                deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
                try {
                    for (Result r : workload(w)) {
                        System.out.println(json ? r.json() : r.text());
                        System.out.flush();
                    }
                } catch (Exception e) {
                    failed++;
                    progress(w + " failed: " + e);
                    e.printStackTrace();
                }
            }
        } finally {
            try {
                ZKUtil.deleteRecursive(admin, root);
            } catch (KeeperException.NoNodeException e) {
                // gone already
            } catch (Exception e) {
                progress("cleaning up " + root + ": " + e);
            }
            admin.close();
        }
        return failed == 0 ? 0 : 1;
    }

    List<Result> workload(String w) throws Exception {
        switch (w) {
            case "W1": return List.of(w1());
            case "W2": return List.of(w2());
            case "W3": return List.of(w3());
            case "W4": {
                List<Result> out = new ArrayList<>();
                for (int n : herd) {
                    out.add(w4(n));
                }
                return out;
            }
            case "W5": return List.of(w5());
            case "W6": return List.of(w6("W6", waiters, waiters));
            case "W6s": return List.of(w6("W6s", sharedWaiters, 1));
            case "G1":
            case "RC":
                progress(w + ": no Curator twin (n/a)");
                return List.of();
            case "R1": return List.of(raw("R1", 1, 1, iterations, warmup));
            case "R2": return List.of(raw2("R2", sessions, perSession));
            case "R3": return List.of(raw("R3", sessions, paths, perSession, 0));
            default: throw new IllegalArgumentException("unknown workload " + w);
        }
    }

    String path(String... elems) {
        return root + "/" + String.join("/", elems);
    }

    long remainingMs() {
        return Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime()));
    }

    // ---- the server's counts ----

    static String fourLetter(String addr, String cmd) throws Exception {
        int i = addr.lastIndexOf(':');
        try (Socket s = new Socket()) {
            s.connect(new InetSocketAddress(addr.substring(0, i), Integer.parseInt(addr.substring(i + 1))), 5000);
            s.setSoTimeout(5000);
            OutputStream out = s.getOutputStream();
            out.write(cmd.getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            byte[] b = new byte[8192];
            int n;
            while ((n = in.read(b)) > 0) {
                buf.write(b, 0, n);
            }
            return buf.toString(StandardCharsets.UTF_8);
        }
    }

    long mntrSum(String key) throws Exception {
        long sum = 0;
        for (String s : servers) {
            String reply = fourLetter(s, "mntr");
            Long v = null;
            for (String line : reply.split("\n")) {
                String[] kv = line.split("\t", 2);
                if (kv.length == 2 && kv[0].trim().equals(key)) {
                    v = Long.parseLong(kv[1].trim());
                }
            }
            if (v == null) {
                throw new IllegalStateException("mntr of " + s + " has no " + key);
            }
            sum += v;
        }
        return sum;
    }

    long packets() throws Exception {
        return mntrSum("zk_packets_received");
    }

    /** watchCount returns the servers' watches, 0 if they cannot tell. */
    long watchCount() {
        try {
            return mntrSum("zk_watch_count");
        } catch (Exception e) {
            return 0;
        }
    }

    /** watchesPerQueue: see zkbench. */
    long watchesPerQueue(int waiters, int paths) {
        return recipe.equals("read") ? paths : waiters;
    }

    /** queueDir is where each waiter on lock path p has a node of its own while it waits. */
    String queueDir(String p) {
        return recipe.equals("semaphore-mutex") ? p + "/locks" : p;
    }

    /** The meter measuring now, if any: the workloads' threads report their end to it. */
    volatile Meter metering;

    /** ending tells the running meter that the calling thread is about to end. */
    void ending() {
        Meter m = metering;
        if (m != null) {
            m.ending();
        }
    }

    /**
     * Meter measures what the client process spends over the measured parts of a workload: the
     * process's CPU time and the bytes its threads allocate. Threads that end during a part count
     * if they call ending() first (the workloads' own threads do); other threads that end are
     * missed. Several parts (W5's rounds) add up.
     */
    final class Meter {
        final com.sun.management.OperatingSystemMXBean os =
                (com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean();
        final com.sun.management.ThreadMXBean tb = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        Map<Long, Long> bytes0 = new java.util.concurrent.ConcurrentHashMap<>();
        final AtomicLong ended = new AtomicLong();
        long cpu0, cpu, bytes;
        int parts;
        boolean cpuOK = true, bytesOK;

        Meter() {
            bytesOK = tb.isThreadAllocatedMemorySupported() && tb.isThreadAllocatedMemoryEnabled();
        }

        Map<Long, Long> threadBytes() {
            long[] ids = tb.getAllThreadIds();
            long[] b = tb.getThreadAllocatedBytes(ids);
            Map<Long, Long> out = new java.util.HashMap<>();
            for (int i = 0; i < ids.length; i++) {
                if (b[i] >= 0) {
                    out.put(ids[i], b[i]);
                }
            }
            return out;
        }

        void start() {
            bytes0 = new java.util.concurrent.ConcurrentHashMap<>(threadBytes());
            ended.set(0);
            long c = os.getProcessCpuTime();
            cpuOK = cpuOK && c >= 0;
            cpu0 = c;
            metering = this;
        }

        void ending() {
            long id = Thread.currentThread().getId();
            long b = tb.getThreadAllocatedBytes(id);
            if (b >= 0) {
                ended.addAndGet(b - bytes0.getOrDefault(id, 0L));
            }
        }

        void stop() {
            long c = os.getProcessCpuTime();
            metering = null;
            cpuOK = cpuOK && c >= 0;
            cpu += c - cpu0;
            long sum = ended.get();
            for (Map.Entry<Long, Long> e : threadBytes().entrySet()) {
                sum += e.getValue() - bytes0.getOrDefault(e.getKey(), 0L);
            }
            bytes += sum;
            parts++;
        }

        /** fill sets r's cost per op; what is unknown stays -1. */
        void fill(Result r) {
            if (parts == 0 || r.ops <= 0) {
                return;
            }
            if (cpuOK) {
                r.cpuUsPerOp = round(cpu / 1e3 / r.ops, 1);
            }
            if (bytesOK) {
                r.bytesPerOp = round((double) bytes / r.ops, 0);
            }
        }
    }

    /** Counter snapshots the server's and the clients' request counts, and meters in between. */
    final class Counter {
        final List<Client> clients;
        AtomicLong raw;
        long srv, cli;
        Meter meter = new Meter();

        Counter(List<Client> clients) {
            this.clients = clients;
        }

        long clientCount() {
            long n = 0;
            for (Client c : clients) {
                n += c.requests.get();
            }
            return raw == null ? n : n + raw.get();
        }

        void start() {
            try {
                srv = packets();
            } catch (Exception e) {
                srv = -1;
            }
            cli = clientCount();
            meter.start();
        }

        /** Returns {server delta, client delta}; the server's is -1 if unknown. */
        long[] deltas() {
            meter.stop();
            long c = clientCount() - cli;
            long s;
            try {
                // Each mntr is a packet the server counts: one of the two snapshots' is in the delta.
                s = srv < 0 ? -1 : Math.max(packets() - srv - servers.size(), 0);
            } catch (Exception e) {
                s = -1;
            }
            return new long[] {s, c};
        }
    }

    /**
     * awaitQueued waits until the waiters are queued: until the servers hold at least watches
     * watches and, if dir is not null, dir has at least children children. If the servers cannot
     * tell the watches, it waits until ready reports true instead, and a second longer.
     */
    void awaitQueued(long watches, String dir, int children, java.util.function.BooleanSupplier ready) throws Exception {
        while (true) {
            long n;
            try {
                n = mntrSum("zk_watch_count");
            } catch (Exception e) {
                n = -1;
            }
            if (n < 0) {
                if (ready.getAsBoolean()) {
                    Thread.sleep(1000);
                    return;
                }
            } else if (n >= watches) {
                if (dir == null) {
                    return;
                }
                try {
                    if (admin.getChildren(dir, false).size() >= children) {
                        return;
                    }
                } catch (KeeperException e) {
                    // not there yet
                }
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("waiting for the waiters to queue (" + watches + " watches, have " + n + "): timed out");
            }
            Thread.sleep(20);
        }
    }

    // ---- clients ----

    /** CountingZooKeeper counts the requests made through it (not pings, not the session's own). */
    static final class CountingZooKeeper extends ZooKeeperAdmin {
        static final ThreadLocal<int[]> DEPTH = ThreadLocal.withInitial(() -> new int[1]);
        final AtomicLong n;

        CountingZooKeeper(String cs, int timeout, Watcher w, boolean ro, AtomicLong n) throws java.io.IOException {
            super(cs, timeout, w, ro);
            this.n = n;
        }

        CountingZooKeeper(String cs, int timeout, Watcher w, boolean ro, ZKClientConfig conf, AtomicLong n) throws java.io.IOException {
            super(cs, timeout, w, ro, conf);
            this.n = n;
        }

        /** enter counts a request unless it is made by another counted call (an overload). */
        private void enter() {
            if (DEPTH.get()[0]++ == 0) {
                n.incrementAndGet();
            }
        }

        private static void exit() {
            DEPTH.get()[0]--;
        }

        @Override public String create(String p, byte[] d, List<ACL> a, CreateMode m) throws KeeperException, InterruptedException {
            enter(); try { return super.create(p, d, a, m); } finally { exit(); } }
        @Override public String create(String p, byte[] d, List<ACL> a, CreateMode m, Stat s) throws KeeperException, InterruptedException {
            enter(); try { return super.create(p, d, a, m, s); } finally { exit(); } }
        @Override public String create(String p, byte[] d, List<ACL> a, CreateMode m, Stat s, long ttl) throws KeeperException, InterruptedException {
            enter(); try { return super.create(p, d, a, m, s, ttl); } finally { exit(); } }
        @Override public void create(String p, byte[] d, List<ACL> a, CreateMode m, AsyncCallback.StringCallback cb, Object ctx) {
            enter(); try { super.create(p, d, a, m, cb, ctx); } finally { exit(); } }
        @Override public void create(String p, byte[] d, List<ACL> a, CreateMode m, AsyncCallback.Create2Callback cb, Object ctx) {
            enter(); try { super.create(p, d, a, m, cb, ctx); } finally { exit(); } }
        @Override public void create(String p, byte[] d, List<ACL> a, CreateMode m, AsyncCallback.Create2Callback cb, Object ctx, long ttl) {
            enter(); try { super.create(p, d, a, m, cb, ctx, ttl); } finally { exit(); } }
        @Override public void delete(String p, int v) throws InterruptedException, KeeperException {
            enter(); try { super.delete(p, v); } finally { exit(); } }
        @Override public void delete(String p, int v, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.delete(p, v, cb, ctx); } finally { exit(); } }
        @Override public List<OpResult> multi(Iterable<Op> ops) throws InterruptedException, KeeperException {
            enter(); try { return super.multi(ops); } finally { exit(); } }
        @Override public void multi(Iterable<Op> ops, AsyncCallback.MultiCallback cb, Object ctx) {
            enter(); try { super.multi(ops, cb, ctx); } finally { exit(); } }
        @Override public Stat exists(String p, Watcher w) throws KeeperException, InterruptedException {
            enter(); try { return super.exists(p, w); } finally { exit(); } }
        @Override public Stat exists(String p, boolean w) throws KeeperException, InterruptedException {
            enter(); try { return super.exists(p, w); } finally { exit(); } }
        @Override public void exists(String p, Watcher w, AsyncCallback.StatCallback cb, Object ctx) {
            enter(); try { super.exists(p, w, cb, ctx); } finally { exit(); } }
        @Override public void exists(String p, boolean w, AsyncCallback.StatCallback cb, Object ctx) {
            enter(); try { super.exists(p, w, cb, ctx); } finally { exit(); } }
        @Override public byte[] getData(String p, Watcher w, Stat s) throws KeeperException, InterruptedException {
            enter(); try { return super.getData(p, w, s); } finally { exit(); } }
        @Override public byte[] getData(String p, boolean w, Stat s) throws KeeperException, InterruptedException {
            enter(); try { return super.getData(p, w, s); } finally { exit(); } }
        @Override public void getData(String p, Watcher w, AsyncCallback.DataCallback cb, Object ctx) {
            enter(); try { super.getData(p, w, cb, ctx); } finally { exit(); } }
        @Override public void getData(String p, boolean w, AsyncCallback.DataCallback cb, Object ctx) {
            enter(); try { super.getData(p, w, cb, ctx); } finally { exit(); } }
        @Override public Stat setData(String p, byte[] d, int v) throws KeeperException, InterruptedException {
            enter(); try { return super.setData(p, d, v); } finally { exit(); } }
        @Override public void setData(String p, byte[] d, int v, AsyncCallback.StatCallback cb, Object ctx) {
            enter(); try { super.setData(p, d, v, cb, ctx); } finally { exit(); } }
        @Override public List<String> getChildren(String p, Watcher w) throws KeeperException, InterruptedException {
            enter(); try { return super.getChildren(p, w); } finally { exit(); } }
        @Override public List<String> getChildren(String p, boolean w) throws KeeperException, InterruptedException {
            enter(); try { return super.getChildren(p, w); } finally { exit(); } }
        @Override public void getChildren(String p, Watcher w, AsyncCallback.ChildrenCallback cb, Object ctx) {
            enter(); try { super.getChildren(p, w, cb, ctx); } finally { exit(); } }
        @Override public void getChildren(String p, boolean w, AsyncCallback.ChildrenCallback cb, Object ctx) {
            enter(); try { super.getChildren(p, w, cb, ctx); } finally { exit(); } }
        @Override public List<String> getChildren(String p, Watcher w, Stat s) throws KeeperException, InterruptedException {
            enter(); try { return super.getChildren(p, w, s); } finally { exit(); } }
        @Override public List<String> getChildren(String p, boolean w, Stat s) throws KeeperException, InterruptedException {
            enter(); try { return super.getChildren(p, w, s); } finally { exit(); } }
        @Override public void getChildren(String p, Watcher w, AsyncCallback.Children2Callback cb, Object ctx) {
            enter(); try { super.getChildren(p, w, cb, ctx); } finally { exit(); } }
        @Override public void getChildren(String p, boolean w, AsyncCallback.Children2Callback cb, Object ctx) {
            enter(); try { super.getChildren(p, w, cb, ctx); } finally { exit(); } }
        @Override public void sync(String p, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.sync(p, cb, ctx); } finally { exit(); } }
        @Override public void removeWatches(String p, Watcher w, Watcher.WatcherType t, boolean local) throws InterruptedException, KeeperException {
            enter(); try { super.removeWatches(p, w, t, local); } finally { exit(); } }
        @Override public void removeWatches(String p, Watcher w, Watcher.WatcherType t, boolean local, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.removeWatches(p, w, t, local, cb, ctx); } finally { exit(); } }
        @Override public void removeAllWatches(String p, Watcher.WatcherType t, boolean local) throws InterruptedException, KeeperException {
            enter(); try { super.removeAllWatches(p, t, local); } finally { exit(); } }
        @Override public void removeAllWatches(String p, Watcher.WatcherType t, boolean local, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.removeAllWatches(p, t, local, cb, ctx); } finally { exit(); } }
        @Override public void addWatch(String p, Watcher w, AddWatchMode m) throws KeeperException, InterruptedException {
            enter(); try { super.addWatch(p, w, m); } finally { exit(); } }
        @Override public void addWatch(String p, AddWatchMode m) throws KeeperException, InterruptedException {
            enter(); try { super.addWatch(p, m); } finally { exit(); } }
        @Override public void addWatch(String p, Watcher w, AddWatchMode m, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.addWatch(p, w, m, cb, ctx); } finally { exit(); } }
        @Override public void addWatch(String p, AddWatchMode m, AsyncCallback.VoidCallback cb, Object ctx) {
            enter(); try { super.addWatch(p, m, cb, ctx); } finally { exit(); } }
    }

    /** Client is a started Curator client and the count of the requests it made. */
    static final class Client {
        final CuratorFramework cf;
        final AtomicLong requests;

        Client(CuratorFramework cf, AtomicLong requests) {
            this.cf = cf;
            this.requests = requests;
        }
    }

    Client newClient() throws Exception {
        AtomicLong n = new AtomicLong();
        ZookeeperFactory factory = new ZookeeperFactory() {
            @Override
            public ZooKeeper newZooKeeper(String cs, int timeout, Watcher w, boolean ro) throws Exception {
                return new CountingZooKeeper(cs, timeout, w, ro, n);
            }

            @Override
            public ZooKeeper newZooKeeper(String cs, int timeout, Watcher w, boolean ro, ZKClientConfig conf) throws Exception {
                return new CountingZooKeeper(cs, timeout, w, ro, conf, n);
            }
        };
        CuratorFramework cf = CuratorFrameworkFactory.builder()
                .connectString(server)
                .sessionTimeoutMs((int) sessionTimeoutMs)
                .connectionTimeoutMs(15000)
                .retryPolicy(new ExponentialBackoffRetry(1000, 3))
                .ensembleTracker(false)
                .zookeeperFactory(factory)
                .build();
        cf.start();
        if (!cf.blockUntilConnected(30, TimeUnit.SECONDS)) {
            cf.close();
            throw new IllegalStateException("not connected to " + server + " after 30s");
        }
        return new Client(cf, n);
    }

    /** newClients returns count connected clients, connected in parallel. */
    List<Client> newClients(int count) throws Exception {
        AtomicReference<Exception> failure = new AtomicReference<>();
        List<Thread> ts = new ArrayList<>();
        Client[] slots = new Client[count];
        for (int i = 0; i < count; i++) {
            final int k = i;
            Thread t = new Thread(() -> {
                try {
                    slots[k] = newClient();
                } catch (Exception e) {
                    failure.compareAndSet(null, e);
                }
            });
            t.start();
            ts.add(t);
        }
        for (Thread t : ts) {
            t.join();
        }
        List<Client> out = new ArrayList<>(Arrays.asList(slots));
        if (failure.get() != null) {
            closeAll(out);
            throw failure.get();
        }
        return out;
    }

    static void closeAll(List<Client> clients) {
        List<Thread> ts = new ArrayList<>();
        for (Client c : clients) {
            if (c != null) {
                Thread t = new Thread(c.cf::close);
                t.start();
                ts.add(t);
            }
        }
        for (Thread t : ts) {
            try {
                t.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    InterProcessLock newLock(Client c, String p) {
        switch (recipe) {
            case "semaphore-mutex": return new InterProcessSemaphoreMutex(c.cf, p);
            case "read": return new InterProcessReadWriteLock(c.cf, p).readLock();
            case "write": return new InterProcessReadWriteLock(c.cf, p).writeLock();
            default: return new InterProcessMutex(c.cf, p);
        }
    }

    ZooKeeper rawConnect() throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(server, (int) sessionTimeoutMs, ev -> {
            if (ev.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
        });
        if (!connected.await(30, TimeUnit.SECONDS)) {
            zk.close();
            throw new IllegalStateException("not connected to " + server + " after 30s");
        }
        return zk;
    }

    static void mkdirs(ZooKeeper zk, String p) throws Exception {
        if (p.isEmpty() || p.equals("/")) {
            return;
        }
        try {
            zk.create(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
        } catch (KeeperException.NodeExistsException e) {
            // there already
        } catch (KeeperException.NoNodeException e) {
            mkdirs(zk, p.substring(0, Math.max(p.lastIndexOf('/'), 1)));
            try {
                zk.create(p, new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT);
            } catch (KeeperException.NodeExistsException e2) {
                // made by someone else meanwhile
            }
        }
    }

    static void acquire(InterProcessLock lk, long timeoutMs) throws Exception {
        if (!lk.acquire(timeoutMs, TimeUnit.MILLISECONDS)) {
            throw new IllegalStateException("acquire timed out");
        }
    }

    /** pair acquires and releases lk once and returns how long it took, in nanoseconds. */
    static long pair(InterProcessLock lk) throws Exception {
        long t0 = System.nanoTime();
        lk.acquire();
        lk.release();
        return System.nanoTime() - t0;
    }

    /** Runs body on n threads released together; returns the elapsed nanoseconds. */
    interface Body {
        void run(int i) throws Exception;
    }

    /**
     * thread starts a thread that runs body(k), records its exception in failure (the first one
     * only), and tells the running meter when it ends.
     */
    Thread thread(int k, Body body, AtomicReference<Exception> failure) {
        Thread t = new Thread(() -> {
            try {
                body.run(k);
            } catch (Exception e) {
                failure.compareAndSet(null, e);
            } finally {
                ending();
            }
        });
        t.start();
        return t;
    }

    long together(int n, Body body) throws Exception {
        CountDownLatch begin = new CountDownLatch(1);
        AtomicReference<Exception> failure = new AtomicReference<>();
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ts.add(thread(i, k -> {
                begin.await();
                body.run(k);
            }, failure));
        }
        long t0 = System.nanoTime();
        begin.countDown();
        for (Thread t : ts) {
            t.join(remainingMs());
            if (t.isAlive()) {
                throw new IllegalStateException("workload timed out");
            }
        }
        long elapsed = System.nanoTime() - t0;
        if (failure.get() != null) {
            throw failure.get();
        }
        return elapsed;
    }

    /** An action that may throw: a holder's release. */
    interface Action {
        void run() throws Exception;
    }

    /**
     * Waiters are n threads, thread i taking lock(i) once (acquire, then release) behind a holder.
     * started counts the threads that have begun; drain lets the holder go and waits for them all.
     */
    final class Waiters {
        final AtomicInteger started = new AtomicInteger();
        /** got[i] is when thread i was granted, in nanoseconds after drain's start. */
        final long[] got;
        private final AtomicLong t0 = new AtomicLong();
        private final AtomicReference<Exception> failure = new AtomicReference<>();
        private final List<Thread> ts = new ArrayList<>();

        Waiters(int n, java.util.function.IntFunction<InterProcessLock> lock) {
            got = new long[n];
            for (int i = 0; i < n; i++) {
                InterProcessLock lk = lock.apply(i);
                ts.add(thread(i, k -> {
                    started.incrementAndGet();
                    acquire(lk, remainingMs());
                    got[k] = System.nanoTime() - t0.get();
                    lk.release();
                }, failure));
            }
        }

        /**
         * drain runs release (the holder's), waits for every waiter, and returns the nanoseconds
         * from just before release to the last waiter's end; it rethrows a waiter's failure.
         */
        long drain(Action release) throws Exception {
            long start = System.nanoTime();
            t0.set(start);
            release.run();
            for (Thread t : ts) {
                t.join(remainingMs());
            }
            long elapsed = System.nanoTime() - start;
            if (failure.get() != null) {
                throw failure.get();
            }
            return elapsed;
        }
    }

    // ---- workloads ----

    Result w1() throws Exception {
        Client c = newClient();
        try {
            InterProcessLock lk = newLock(c, path("w1"));
            for (int i = 0; i < warmup; i++) {
                pair(lk);
            }
            long[] lat = new long[iterations];
            Counter cnt = new Counter(List.of(c));
            cnt.start();
            long t0 = System.nanoTime();
            for (int i = 0; i < iterations; i++) {
                lat[i] = pair(lk);
            }
            long elapsed = System.nanoTime() - t0;
            long[] d = cnt.deltas();
            return Result.of("W1", recipe, iterations, elapsed, lat, d[0], d[1], cnt.meter);
        } finally {
            c.cf.close();
        }
    }

    static int overlaps(List<long[]> holds) {
        holds.sort((a, b) -> Long.compare(a[0], b[0]));
        int n = 0;
        long last = Long.MIN_VALUE;
        for (long[] h : holds) {
            if (last != Long.MIN_VALUE && h[0] < last) {
                n++;
            }
            last = Math.max(last, h[1]);
        }
        return n;
    }

    Result w2() throws Exception {
        List<Client> clients = newClients(sessions);
        try {
            String p = path("w2");
            long[][] waits = new long[sessions][perSession];
            List<long[]> holds = Collections.synchronizedList(new ArrayList<>());
            InterProcessLock[] locks = new InterProcessLock[sessions];
            for (int i = 0; i < sessions; i++) {
                locks[i] = newLock(clients.get(i), p);
            }
            Counter cnt = new Counter(clients);
            cnt.start();
            long elapsed = together(sessions, i -> {
                List<long[]> mine = new ArrayList<>(perSession);
                for (int k = 0; k < perSession; k++) {
                    long t0 = System.nanoTime();
                    acquire(locks[i], remainingMs());
                    long t1 = System.nanoTime();
                    waits[i][k] = t1 - t0;
                    // The critical section yields, so that a second holder (if the lock let one in)
                    // would be seen in it.
                    Thread.yield();
                    mine.add(new long[] {t1, System.nanoTime()});
                    locks[i].release();
                }
                holds.addAll(mine);
            });
            long[] d = cnt.deltas();
            Result r = Result.of("W2", recipe, sessions * perSession, elapsed, flatten(waits), d[0], d[1], cnt.meter);
            r.extra.put("overlaps", (double) overlaps(new ArrayList<>(holds)));
            return r;
        } finally {
            closeAll(clients);
        }
    }

    Result w3() throws Exception {
        List<Client> clients = newClients(sessions);
        try {
            long[][] lat = new long[sessions][perSession];
            InterProcessLock[] locks = new InterProcessLock[sessions];
            for (int i = 0; i < sessions; i++) {
                locks[i] = newLock(clients.get(i), path("w3", "p" + (i % paths)));
            }
            Counter cnt = new Counter(clients);
            cnt.start();
            long elapsed = together(sessions, i -> {
                for (int k = 0; k < perSession; k++) {
                    lat[i][k] = pair(locks[i]);
                }
            });
            long[] d = cnt.deltas();
            Result r = Result.of("W3", recipe, sessions * perSession, elapsed, flatten(lat), d[0], d[1], cnt.meter);
            r.extra.put("paths", (double) Math.min(paths, sessions));
            return r;
        } finally {
            closeAll(clients);
        }
    }

    Result w4(int n) throws Exception {
        List<Client> clients = newClients(n + 1);
        try {
            String p = path("w4-" + n);
            InterProcessLock holder = recipe.equals("read")
                    ? new InterProcessReadWriteLock(clients.get(0).cf, p).writeLock() // readers queue behind a writer
                    : newLock(clients.get(0), p);
            long base = watchCount();
            acquire(holder, remainingMs());
            Waiters ws = new Waiters(n, i -> newLock(clients.get(i + 1), p));
            // Each waiter has a session of its own, so each watch counts, readers' included. (base is
            // from before the holder's acquire: a semaphore holder's watch on the leases fires when the
            // first waiter adds its lease.)
            awaitQueued(base + n, queueDir(p), n, () -> ws.started.get() == n);
            Counter cnt = new Counter(clients);
            cnt.start();
            long elapsed = ws.drain(holder::release);
            long[] d = cnt.deltas();
            long[] got = ws.got.clone();
            Arrays.sort(got);
            long[] handoffs = new long[n];
            long prev = 0;
            for (int i = 0; i < n; i++) {
                handoffs[i] = got[i] - prev;
                prev = got[i];
            }
            Result r = Result.of("W4/" + n, recipe, n, elapsed, handoffs, d[0], d[1], cnt.meter);
            r.extra.put("waiters", (double) n);
            return r;
        } finally {
            closeAll(clients);
        }
    }

    /** One W5 participant: a LeaderLatch with a client of its own. */
    static final class Participant {
        String id;
        Client c;
        LeaderLatch latch;
    }

    Result w5() throws Exception {
        final int size = 3;
        String p = path("w5");
        BlockingQueue<String> leaders = new ArrayBlockingQueue<>(64);
        List<Participant> all = new ArrayList<>();
        Map<String, Participant> live = new LinkedHashMap<>();
        int[] seq = {0};
        try {
            java.util.concurrent.Callable<Participant> join = () -> {
                Participant pt = new Participant();
                pt.id = "p" + (++seq[0]);
                pt.c = newClient();
                pt.latch = new LeaderLatch(pt.c.cf, p, pt.id);
                final String id = pt.id;
                pt.latch.addListener(new LeaderLatchListener() {
                    @Override
                    public void isLeader() {
                        leaders.offer(id);
                    }

                    @Override
                    public void notLeader() {
                    }
                });
                all.add(pt);
                pt.latch.start();
                return pt;
            };
            for (int i = 0; i < size; i++) {
                Participant pt = join.call();
                live.put(pt.id, pt);
            }
            awaitParticipants(all.get(0), size);
            String leader = leaders.poll(remainingMs(), TimeUnit.MILLISECONDS);
            if (leader == null) {
                throw new IllegalStateException("no leader");
            }
            long[] fo = new long[failovers];
            long[] closes = new long[failovers];
            long srvTotal = 0, cliTotal = 0, total = 0;
            Meter meter = new Meter(); // the rounds' measured parts, added up
            for (int round = 0; round < failovers; round++) {
                Participant old = live.remove(leader);
                List<Client> others = new ArrayList<>();
                for (Participant q : live.values()) {
                    others.add(q.c);
                }
                Counter cnt = new Counter(others);
                cnt.meter = meter;
                cnt.start();
                long[] closed = {-1};
                long t0 = System.nanoTime();
                Thread closer = new Thread(() -> {
                    old.c.cf.close();
                    closed[0] = System.nanoTime() - t0;
                });
                closer.start();
                String next;
                do {
                    next = leaders.poll(remainingMs(), TimeUnit.MILLISECONDS);
                    if (next == null) {
                        throw new IllegalStateException("no leader after " + old.id + "'s client closed");
                    }
                } while (next.equals(old.id));
                fo[round] = System.nanoTime() - t0;
                total += fo[round];
                long[] d = cnt.deltas();
                srvTotal = (d[0] < 0 || srvTotal < 0) ? -1 : srvTotal + d[0];
                cliTotal += d[1];
                closer.join();
                closes[round] = closed[0];
                leader = next;
                Participant np = join.call();
                live.put(np.id, np);
                awaitParticipants(np, size);
            }
            Result r = Result.of("W5", "latch", failovers, total, fo, srvTotal, cliTotal, meter);
            r.p99Ms = round(max(fo) / 1e6, 3); // with few rounds, p99 is the maximum
            r.extra.put("close_p50_ms", round(percentile(closes, 0.5) / 1e6, 3));
            r.extra.put("close_max_ms", round(max(closes) / 1e6, 3));
            return r;
        } finally {
            for (Participant pt : all) {
                try {
                    pt.latch.close();
                } catch (Exception e) {
                    // its client is closed already
                }
                pt.c.cf.close();
            }
        }
    }

    void awaitParticipants(Participant pt, int size) throws Exception {
        while (true) {
            try {
                if (pt.latch.getParticipants().size() == size) {
                    return;
                }
            } catch (Exception e) {
                // not there yet
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("waiting for " + size + " participants: timed out");
            }
            Thread.sleep(10);
        }
    }

    String[] holderNode() {
        switch (recipe) {
            case "semaphore-mutex": return new String[] {"/leases", "lease-"};
            case "read":
            case "write": return new String[] {"", "__WRIT__"};
            default: return new String[] {"", "lock-"};
        }
    }

    static String protectedName(String name) {
        return "_c_" + UUID.randomUUID() + "-" + name;
    }

    /** rssMB returns {VmRSS, VmHWM} of this process in MiB, -1 for what cannot be read. */
    static double[] rssMB() {
        double[] out = {-1, -1};
        try {
            for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    out[0] = Double.parseDouble(line.substring(6).replace("kB", "").trim()) / 1024;
                } else if (line.startsWith("VmHWM:")) {
                    out[1] = Double.parseDouble(line.substring(6).replace("kB", "").trim()) / 1024;
                }
            }
        } catch (Exception e) {
            // not Linux
        }
        return out;
    }

    Result w6(String name, int n, int npaths) throws Exception {
        ZooKeeper holder = rawConnect();
        try {
            String[] hn = holderNode();
            String[] ps = new String[npaths];
            mkdirs(admin, path(name));
            // Take every lock with the bare connection: the requests of one session are served in
            // order, so each node's parents exist by the time its create is served.
            CountDownLatch made = new CountDownLatch(npaths);
            AtomicReference<String> bad = new AtomicReference<>();
            for (int i = 0; i < npaths; i++) {
                ps[i] = path(name, "p" + i);
                AsyncCallback.StringCallback ignore = (rc, path, ctx, nm) -> { };
                holder.create(ps[i], new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, ignore, null);
                if (!hn[0].isEmpty()) {
                    holder.create(ps[i] + hn[0], new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE, CreateMode.PERSISTENT, ignore, null);
                }
                holder.create(ps[i] + hn[0] + "/" + protectedName(hn[1]), new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                        CreateMode.EPHEMERAL_SEQUENTIAL, (rc, path, ctx, nm) -> {
                            if (rc != 0) {
                                bad.compareAndSet(null, path + ": " + KeeperException.Code.get(rc));
                            }
                            made.countDown();
                        }, null);
            }
            if (!made.await(remainingMs(), TimeUnit.MILLISECONDS) || bad.get() != null) {
                throw new IllegalStateException("taking the locks: " + (bad.get() == null ? "timed out" : bad.get()));
            }
            Client c = newClient();
            try {
                long base = watchCount();
                long q0 = System.nanoTime();
                Waiters ws = new Waiters(n, i -> newLock(c, ps[i % npaths]));
                awaitQueued(base + watchesPerQueue(n, npaths), npaths == 1 ? queueDir(ps[0]) : null, n,
                        () -> ws.started.get() == n);
                long queued = System.nanoTime() - q0;
                double[] rss = rssMB();
                Runtime rt = Runtime.getRuntime();
                double heap = (rt.totalMemory() - rt.freeMemory()) / 1048576.0;
                int threads = ManagementFactory.getThreadMXBean().getThreadCount();

                Counter cnt = new Counter(List.of(c));
                cnt.start();
                long elapsed = ws.drain(holder::close);
                long[] d = cnt.deltas();
                Result r = Result.of(name, recipe, n, elapsed, ws.got, d[0], d[1], cnt.meter);
                r.extra.put("waiters", (double) n);
                r.extra.put("paths", (double) npaths);
                r.extra.put("rss_mb", round(rss[0], 1));
                r.extra.put("rss_peak_mb", round(rss[1], 1));
                r.extra.put("heap_mb", round(heap, 1));
                r.extra.put("threads", (double) threads);
                r.extra.put("queue_s", round(queued / 1e9, 3));
                r.extra.put("drain_s", round(elapsed / 1e9, 3));
                return r;
            } finally {
                c.cf.close();
            }
        } finally {
            holder.close();
        }
    }

    /**
     * raw makes the requests of a lock pair with ZooKeeper's own client: an ephemeral-sequential
     * create sent asynchronously with the listing of the parent right behind it (the client keeps
     * a session's requests in order, so the listing sees the new node), then a delete.
     */
    Result raw(String name, int nsessions, int npaths, int pairs, int warm) throws Exception {
        List<ZooKeeper> conns = new ArrayList<>();
        try {
            for (int i = 0; i < nsessions; i++) {
                conns.add(rawConnect());
            }
            String[] parents = new String[Math.min(npaths, nsessions)];
            for (int i = 0; i < parents.length; i++) {
                parents[i] = path(name, "p" + i);
                mkdirs(admin, parents[i]);
            }
            AtomicLong requests = new AtomicLong();
            for (int i = 0; i < warm; i++) {
                rawPair(conns.get(0), parents[0], requests);
            }
            long[][] lat = new long[nsessions][pairs];
            Counter cnt = new Counter(List.of());
            cnt.raw = requests;
            cnt.start();
            long elapsed = together(nsessions, i -> {
                for (int k = 0; k < pairs; k++) {
                    lat[i][k] = rawPair(conns.get(i), parents[i % parents.length], requests);
                }
            });
            long[] d = cnt.deltas();
            Result r = Result.of(name, "raw", nsessions * pairs, elapsed, flatten(lat), d[0], d[1], cnt.meter);
            if (nsessions > 1) {
                r.extra.put("paths", (double) parents.length);
            }
            return r;
        } finally {
            for (ZooKeeper z : conns) {
                z.close();
            }
        }
    }

    /** seqOf returns the sequence suffix of a sequential node's name, by which a queue is ordered. */
    static String seqOf(String name) {
        return name.length() < 10 ? name : name.substring(name.length() - 10);
    }

    /**
     * raw2 is the contended raw workload, the ceiling for W2: the lock protocol made with
     * ZooKeeper's own client, nsessions sessions on one path, pairs pairs each (rawAcquire, then a
     * delete); the wait in acquire and the overlapping holds are measured as in W2.
     */
    Result raw2(String name, int nsessions, int pairs) throws Exception {
        List<ZooKeeper> conns = new ArrayList<>();
        try {
            for (int i = 0; i < nsessions; i++) {
                conns.add(rawConnect());
            }
            String parent = path(name, "p0");
            mkdirs(admin, parent);
            AtomicLong requests = new AtomicLong();
            long[][] waits = new long[nsessions][pairs];
            List<long[]> holds = Collections.synchronizedList(new ArrayList<>());
            Counter cnt = new Counter(List.of());
            cnt.raw = requests;
            cnt.start();
            long elapsed = together(nsessions, i -> {
                ZooKeeper zk = conns.get(i);
                List<long[]> mine = new ArrayList<>(pairs);
                for (int k = 0; k < pairs; k++) {
                    long t0 = System.nanoTime();
                    String node = rawAcquire(zk, parent, requests);
                    long t1 = System.nanoTime();
                    waits[i][k] = t1 - t0;
                    Thread.yield(); // as in W2: a second holder would be seen
                    mine.add(new long[] {t1, System.nanoTime()});
                    requests.incrementAndGet();
                    zk.delete(node, -1);
                }
                holds.addAll(mine);
            });
            long[] d = cnt.deltas();
            Result r = Result.of(name, "raw", nsessions * pairs, elapsed, flatten(waits), d[0], d[1], cnt.meter);
            r.extra.put("overlaps", (double) overlaps(new ArrayList<>(holds)));
            return r;
        } finally {
            for (ZooKeeper z : conns) {
                z.close();
            }
        }
    }

    /**
     * rawAcquire makes the requests of a mutex's acquire with ZooKeeper's own client and returns
     * the path of the node that holds the lock: an ephemeral-sequential create sent asynchronously
     * with the listing of the parent right behind it (the client keeps a session's requests in
     * order, so the listing shows the new node), then, while a node ahead is there, an exists
     * watch on the node just ahead and a new listing once it fires.
     */
    String rawAcquire(ZooKeeper zk, String parent, AtomicLong requests) throws Exception {
        requests.addAndGet(2);
        Made made = createAndList(zk, parent);
        List<String> names = made.names();
        String own = made.path().substring(made.path().lastIndexOf('/') + 1);
        while (true) {
            if (!names.contains(own)) {
                throw new IllegalStateException(made.path() + ": own node not listed");
            }
            names = new ArrayList<>(names);
            names.sort((a, b) -> seqOf(a).compareTo(seqOf(b)));
            int i = names.indexOf(own);
            if (i == 0) {
                return made.path();
            }
            CountDownLatch fired = new CountDownLatch(1);
            requests.incrementAndGet();
            Stat st = zk.exists(parent + "/" + names.get(i - 1), ev -> fired.countDown());
            if (st != null && !fired.await(remainingMs(), TimeUnit.MILLISECONDS)) {
                throw new IllegalStateException("acquire timed out");
            }
            requests.incrementAndGet();
            names = zk.getChildren(parent, false);
        }
    }

    static long rawPair(ZooKeeper zk, String parent, AtomicLong requests) throws Exception {
        long t0 = System.nanoTime();
        requests.addAndGet(3);
        zk.delete(createAndList(zk, parent).path(), -1);
        return System.nanoTime() - t0;
    }

    /** A lock node made by createAndList, and the listing of its parent sent right behind it. */
    record Made(String path, List<String> names) {}

    /**
     * createAndList creates an ephemeral-sequential lock node under parent, sent asynchronously,
     * with the listing of the parent right behind it (the client keeps a session's requests in
     * order, so the listing shows the new node); two requests.
     */
    static Made createAndList(ZooKeeper zk, String parent) throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        String[] created = new String[1];
        int[] code = new int[1];
        zk.create(parent + "/" + protectedName("lock-"), new byte[0], ZooDefs.Ids.OPEN_ACL_UNSAFE,
                CreateMode.EPHEMERAL_SEQUENTIAL, (rc, path, ctx, nm) -> {
                    code[0] = rc;
                    created[0] = nm;
                    done.countDown();
                }, null);
        List<String> names = zk.getChildren(parent, false);
        done.await();
        if (code[0] != 0) {
            throw KeeperException.create(KeeperException.Code.get(code[0]), parent);
        }
        return new Made(created[0], names);
    }

    // ---- results ----

    static long[] flatten(long[][] a) {
        return Arrays.stream(a).flatMapToLong(Arrays::stream).toArray();
    }

    static long max(long[] a) {
        return Arrays.stream(a).max().orElse(0);
    }

    static double round(double v, int decimals) {
        if (v < 0) {
            return v;
        }
        double p = Math.pow(10, decimals);
        return Math.round(v * p) / p;
    }

    /** percentile is the nearest-rank p-th percentile of a, in a's unit. */
    static double percentile(long[] a, double p) {
        if (a.length == 0) {
            return 0;
        }
        long[] s = a.clone();
        Arrays.sort(s);
        int i = (int) Math.ceil(p * s.length) - 1;
        return s[Math.min(Math.max(i, 0), s.length - 1)];
    }

    static final List<String> EXTRA_ORDER = Arrays.asList("overlaps", "waiters", "paths", "rss_mb", "rss_peak_mb",
            "heap_mb", "stack_mb", "goroutines", "threads", "queue_s", "drain_s", "close_p50_ms", "close_max_ms");

    /** Result is what one workload measured; the same fields as zkbench's Result. */
    static final class Result {
        String workload, recipe;
        int ops;
        double seconds, opsPerSec, p50Ms, p99Ms, srvPerOp, cliPerOp;
        double cpuUsPerOp = -1, allocsPerOp = -1, bytesPerOp = -1; // -1: unknown (allocs: never counted)
        Map<String, Double> extra = new LinkedHashMap<>();

        static double perOp(long delta, int ops) {
            if (delta < 0 || ops <= 0) {
                return -1;
            }
            return round((double) delta / ops, 3);
        }

        static Result of(String workload, String recipe, int ops, long elapsedNanos, long[] latNanos, long srv, long cli, Meter m) {
            Result r = new Result();
            r.workload = workload;
            r.recipe = recipe;
            r.ops = ops;
            r.seconds = round(elapsedNanos / 1e9, 3);
            r.srvPerOp = perOp(srv, ops);
            r.cliPerOp = perOp(cli, ops);
            if (elapsedNanos > 0) {
                r.opsPerSec = round(ops / (elapsedNanos / 1e9), 1);
            }
            if (latNanos.length > 0) {
                r.p50Ms = round(percentile(latNanos, 0.50) / 1e6, 3);
                r.p99Ms = round(percentile(latNanos, 0.99) / 1e6, 3);
            }
            if (m != null) {
                m.fill(r);
            }
            return r;
        }

        static String describe(String w) {
            if (w.equals("W1")) return "uncontended";
            if (w.equals("W2")) return "contended";
            if (w.equals("W3")) return "independent";
            if (w.startsWith("W4")) return "herd";
            if (w.equals("W5")) return "failover";
            if (w.equals("W6")) return "scale/own";
            if (w.equals("W6s")) return "scale/shared";
            if (w.equals("G1")) return "go-zk lock";
            if (w.equals("R1")) return "raw/1 session";
            if (w.equals("R2")) return "raw/contended";
            if (w.equals("R3")) return "raw/sessions";
            if (w.equals("RC")) return "reconnect";
            return "";
        }

        static String fmt(double v, int decimals) {
            if (v < 0 || Double.isNaN(v)) {
                return "n/a";
            }
            return String.format(Locale.ROOT, "%." + decimals + "f", v);
        }

        static String plain(double v) {
            return BigDecimal.valueOf(v).stripTrailingZeros().toPlainString();
        }

        List<String> extraKeys() {
            List<String> keys = new ArrayList<>();
            for (String k : EXTRA_ORDER) {
                if (extra.containsKey(k)) {
                    keys.add(k);
                }
            }
            List<String> rest = new ArrayList<>();
            for (String k : extra.keySet()) {
                if (!EXTRA_ORDER.contains(k)) {
                    rest.add(k);
                }
            }
            Collections.sort(rest);
            keys.addAll(rest);
            return keys;
        }

        String text() {
            StringBuilder b = new StringBuilder(String.format(Locale.ROOT,
                    "%-6s %-14s %-10s %-15s ops=%d time=%ss ops/s=%s p50=%sms p99=%sms srv_pkts/op=%s cli_req/op=%s"
                            + " cpu_us/op=%s allocs/op=%s bytes/op=%s",
                    workload, describe(workload), IMPL, recipe, ops, fmt(seconds, 3), fmt(opsPerSec, 1),
                    fmt(p50Ms, 3), fmt(p99Ms, 3), fmt(srvPerOp, 2), fmt(cliPerOp, 2),
                    fmt(cpuUsPerOp, 1), fmt(allocsPerOp, 1), fmt(bytesPerOp, 0)));
            for (String k : extraKeys()) {
                b.append(' ').append(k).append('=').append(plain(extra.get(k)));
            }
            return b.toString();
        }

        static String num(double v) {
            if (v == Math.rint(v) && Math.abs(v) < 1e15) {
                return Long.toString((long) v);
            }
            return plain(v);
        }

        String json() {
            StringBuilder b = new StringBuilder("{");
            b.append("\"workload\":\"").append(workload).append("\",");
            b.append("\"impl\":\"").append(IMPL).append("\",");
            b.append("\"recipe\":\"").append(recipe).append("\",");
            b.append("\"ops\":").append(ops).append(',');
            b.append("\"seconds\":").append(num(seconds)).append(',');
            b.append("\"ops_per_sec\":").append(num(opsPerSec)).append(',');
            b.append("\"p50_ms\":").append(num(p50Ms)).append(',');
            b.append("\"p99_ms\":").append(num(p99Ms)).append(',');
            b.append("\"server_packets_per_op\":").append(num(srvPerOp)).append(',');
            b.append("\"client_requests_per_op\":").append(num(cliPerOp)).append(',');
            b.append("\"cpu_us_per_op\":").append(num(cpuUsPerOp)).append(',');
            b.append("\"allocs_per_op\":").append(num(allocsPerOp)).append(',');
            b.append("\"bytes_per_op\":").append(num(bytesPerOp));
            if (!extra.isEmpty()) {
                b.append(",\"extra\":{");
                boolean first = true;
                for (String k : extraKeys()) {
                    if (!first) {
                        b.append(',');
                    }
                    first = false;
                    b.append('"').append(k).append("\":").append(num(extra.get(k)));
                }
                b.append('}');
            }
            return b.append('}').toString();
        }
    }
}
