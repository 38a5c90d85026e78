package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

// mntrValues parses a reply to mntr: one "key<TAB>value" per line.
func mntrValues(reply string) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(reply))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "\t")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

// mntrSum reads mntr from every server and returns the sum of key's values. It fails if a server
// does not answer or does not report key (mntr not in 4lw.commands.whitelist, say).
func mntrSum(servers []string, key string) (int64, error) {
	var sum int64
	for _, s := range servers {
		reply, err := zktest.FourLetterWord(s, "mntr", 5*time.Second)
		if err != nil {
			return 0, err
		}
		v, ok := mntrValues(reply)[key]
		if !ok {
			return 0, fmt.Errorf("mntr of %s has no %s: %q", s, key, firstLine(reply))
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("mntr of %s: %s=%q: %w", s, key, v, err)
		}
		sum += n
	}
	return sum, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// splitServers returns the host:port addresses of a connect string (without a chroot suffix).
func splitServers(connect string) []string {
	if i := strings.IndexByte(connect, '/'); i >= 0 {
		connect = connect[:i]
	}
	var out []string
	for _, s := range strings.Split(connect, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !strings.Contains(s, ":") {
				s += ":2181"
			}
			out = append(out, s)
		}
	}
	return out
}

// discardLogger silences go-zookeeper.
type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}

// rawConnect opens a bare go-zookeeper connection and waits until it has a session.
func rawConnect(ctx context.Context, servers []string, sessionTimeout time.Duration) (*zk.Conn, error) {
	return rawConnectVia(ctx, servers, sessionTimeout, nil)
}

// rawConnectVia is rawConnect with the connections dialled by dial (nil: go-zookeeper's own).
func rawConnectVia(ctx context.Context, servers []string, sessionTimeout time.Duration, dial zk.Dialer) (*zk.Conn, error) {
	var (
		conn   *zk.Conn
		events <-chan zk.Event
		err    error
	)
	if dial != nil {
		conn, events, err = zk.Connect(servers, sessionTimeout, zk.WithLogger(discardLogger{}), zk.WithDialer(dial))
	} else {
		conn, events, err = zk.Connect(servers, sessionTimeout, zk.WithLogger(discardLogger{}))
	}
	if err != nil {
		return nil, err
	}
	for {
		select {
		case ev := <-events:
			if ev.State == zk.StateHasSession {
				// Keep draining the session's events so that go-zookeeper never blocks on them.
				go func() {
					for range events {
					}
				}()
				return conn, nil
			}
		case <-ctx.Done():
			conn.Close()
			return nil, fmt.Errorf("connecting to %s: %w", strings.Join(servers, ","), ctx.Err())
		}
	}
}

// mkdirs creates p and its missing ancestors as persistent nodes.
func mkdirs(conn *zk.Conn, p string) error {
	if p == "/" || p == "" {
		return nil
	}
	_, err := conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	if errors.Is(err, zk.ErrNoNode) {
		i := strings.LastIndexByte(p, '/')
		if err := mkdirs(conn, p[:max(i, 1)]); err != nil {
			return err
		}
		_, err = conn.Create(p, nil, 0, zk.WorldACL(zk.PermAll))
	}
	if err == nil || errors.Is(err, zk.ErrNodeExists) {
		return nil
	}
	return fmt.Errorf("create %s: %w", p, err)
}
