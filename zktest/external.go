package zktest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/internal/zkraw"
)

// externalTimeout bounds the work Start and Close do on an external ensemble.
const externalTimeout = 15 * time.Second

// startExternal returns a Server standing for the ensemble named by spec, a
// comma-separated list of host:port addresses, and creates a fresh root
// znode for it.
func startExternal(cfg config, spec string) (*Server, error) {
	var addrs []string
	for a := range strings.SplitSeq(spec, ",") {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("zktest: ZK_SERVERS=%q names no server", spec)
	}
	var b [6]byte
	rand.Read(b[:])
	s := &Server{
		cfg:      cfg,
		external: true,
		root:     "/zktest-" + hex.EncodeToString(b[:]),
		tick:     2 * time.Second, // ZooKeeper's default
		addrs:    addrs,
	}
	if conf, err := fourLetter(addrs[0], "conf", 5*time.Second); err == nil && !notExecuted(conf) {
		if v, ok := confValue(conf, "tickTime"); ok {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				s.tick = time.Duration(ms) * time.Millisecond
			}
		}
		if v, ok := confValue(conf, "maxSessionTimeout"); ok {
			if ms, err := strconv.Atoi(v); err == nil && ms > 0 {
				s.maxSess = time.Duration(ms) * time.Millisecond
			}
		}
	}
	if s.maxSess == 0 {
		s.maxSess = 20 * s.tick
	}
	conn, err := connectWait(addrs)
	if err != nil {
		return nil, fmt.Errorf("zktest: ZK_SERVERS=%s: %w", spec, err)
	}
	defer conn.Close()
	if _, err := conn.Create(s.root, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
		return nil, fmt.Errorf("zktest: ZK_SERVERS=%s: creating %s: %w", spec, s.root, err)
	}
	return s, nil
}

// deleteTree deletes the znode at root and everything below it.
func deleteTree(addrs []string, root string) error {
	conn, err := connectWait(addrs)
	if err != nil {
		return fmt.Errorf("zktest: deleting %s: %w", root, err)
	}
	defer conn.Close()
	if err := zkraw.DeleteTree(conn, root, 3); err != nil {
		return fmt.Errorf("zktest: deleting %s: %w", root, err)
	}
	return nil
}

// connectWait connects to the ensemble and waits for a session.
func connectWait(addrs []string) (*zk.Conn, error) {
	conn, events, err := zk.Connect(addrs, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(discardLogger{}))
	if err != nil {
		return nil, err
	}
	timeout := time.NewTimer(externalTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				return conn, nil
			}
		case <-timeout.C:
			conn.Close()
			return nil, fmt.Errorf("no session with %s within %v", strings.Join(addrs, ","), externalTimeout)
		}
	}
}

// discardLogger silences go-zookeeper's logging.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
