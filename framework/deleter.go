package framework

import (
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/retry"
)

// deleteJob is a node to delete in the background: a path, or the children of parent whose names
// start with prefix (the clean-up of a protected create whose outcome is unknown). Paths are
// server paths.
type deleteJob struct {
	path           string
	parent, prefix string
}

func (j deleteJob) String() string {
	if j.path != "" {
		return j.path
	}
	return j.parent + "/" + j.prefix + "*"
}

// deleter does guaranteed deletes: it keeps trying each job, after every reconnect and once a
// second while any is left, until the node is gone or the client is closed.
type deleter struct {
	c      *Client
	mu     sync.Mutex
	jobs   []deleteJob
	wakeCh chan struct{}
}

// deleterRetryInterval is how often the deleter tries again while jobs are left.
const deleterRetryInterval = time.Second

func newDeleter(c *Client) *deleter {
	return &deleter{c: c, wakeCh: make(chan struct{}, 1)}
}

func (d *deleter) add(j deleteJob) {
	d.mu.Lock()
	for _, old := range d.jobs {
		if old == j {
			d.mu.Unlock()
			return
		}
	}
	d.jobs = append(d.jobs, j)
	d.mu.Unlock()
	d.wake()
}

func (d *deleter) wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

func (d *deleter) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs)
}

func (d *deleter) run() {
	t := time.NewTimer(deleterRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-d.c.closedCh:
			d.mu.Lock()
			left := d.jobs
			d.jobs = nil
			d.mu.Unlock()
			for _, j := range left {
				// Ephemeral nodes go with the closed session; anything else is reported.
				d.c.log.Info("client closed before a background delete was done", zap.Stringer("node", j))
			}
			return
		case <-d.wakeCh:
		case <-t.C:
		}
		d.runOnce()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(deleterRetryInterval)
	}
}

// runOnce tries every job once, if the client is connected.
func (d *deleter) runOnce() {
	d.c.mu.Lock()
	conn, connected := d.c.conn, d.c.state == Connected || d.c.state == Reconnected // a read-only server takes no deletes
	d.c.mu.Unlock()
	if !connected || conn == nil {
		return
	}
	d.mu.Lock()
	jobs := append([]deleteJob(nil), d.jobs...)
	d.mu.Unlock()
	for _, j := range jobs {
		if d.c.isClosed() {
			return
		}
		err := d.do(conn, j)
		if err != nil && (retry.IsRetryable(d.c.translate(err)) || errors.Is(err, zk.ErrSessionExpired)) {
			// Tried on a connection whose session has just ended: try again on the next one (a
			// persistent node, or a protected create's clean-up, outlives the session).
			continue
		}
		if err != nil {
			d.c.log.Warn("background delete failed for good", zap.Stringer("node", j), zap.Error(err))
		} else {
			d.c.log.Debug("background delete done", zap.Stringer("node", j))
		}
		d.remove(j)
	}
}

func (d *deleter) remove(j deleteJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, old := range d.jobs {
		if old == j {
			d.jobs = append(d.jobs[:i], d.jobs[i+1:]...)
			return
		}
	}
}

// do runs one job; nil means the node is gone.
func (d *deleter) do(conn *zk.Conn, j deleteJob) error {
	if j.path != "" {
		d.c.requests.Add(1)
		err := conn.Delete(j.path, -1)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		return err
	}
	d.c.requests.Add(1)
	names, _, err := conn.Children(j.parent)
	if errors.Is(err, zk.ErrNoNode) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, n := range names {
		if !strings.HasPrefix(n, j.prefix) {
			continue
		}
		d.c.requests.Add(1)
		if err := conn.Delete(JoinPath(j.parent, n), -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
			return err
		}
	}
	return nil
}
