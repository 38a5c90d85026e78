package framework

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// second while any is left, until the node is gone or the client is closed. Each job may have
// Deletions waiting for it, which it ends when the job ends. It also keeps count of the deletes
// SendDelete has sent and not yet had answered, so that a reconnect can put the deletes whose
// replies were lost ahead of the client's next requests (see sendFirst).
type deleter struct {
	c        *Client
	mu       sync.Mutex
	jobs     []deleteJob
	busy     map[deleteJob]bool // jobs whose try is under way
	waiters  map[deleteJob][]*Deletion
	inFlight map[*Deletion]<-chan struct{} // sent by SendDelete, unanswered: the connected period each went out in
	changed  chan struct{}                 // closed, and replaced, whenever jobs or inFlight change
	stopped  bool                          // the client was closed: jobs are no longer taken
	gating   bool                          // sendFirst is at work: runOnce leaves the jobs to it
	wakeCh   chan struct{}
}

// deleterRetryInterval is how often the deleter tries again while jobs are left.
const deleterRetryInterval = time.Second

func newDeleter(c *Client) *deleter {
	return &deleter{
		c: c, wakeCh: make(chan struct{}, 1), changed: make(chan struct{}),
		busy: map[deleteJob]bool{}, waiters: map[deleteJob][]*Deletion{}, inFlight: map[*Deletion]<-chan struct{}{},
	}
}

// changedLocked wakes those waiting for the jobs or the deletes in flight to change. d.mu is held.
func (d *deleter) changedLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// add takes job j; dl, if not nil, is ended when j ends. Once the client is closed, dl is ended at
// once with ErrClosed.
func (d *deleter) add(j deleteJob, dl *Deletion) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		if dl != nil {
			dl.finish(fmt.Errorf("curator: delete %s: %w", dl.path, ErrClosed))
		}
		return
	}
	if dl != nil {
		d.waiters[j] = append(d.waiters[j], dl)
		dl.markTried()
	}
	added := !slices.Contains(d.jobs, j)
	if added {
		d.jobs = append(d.jobs, j)
	}
	d.changedLocked()
	d.mu.Unlock()
	d.wake()
	if added && d.c.Observed() {
		d.c.observeQueued(Event{Kind: EventDeleteQueued, Path: d.c.userPath(j.String())})
	}
}

// sent records that dl's request went out in the connected period that ends when period closes.
func (d *deleter) sent(dl *Deletion, period <-chan struct{}) {
	d.mu.Lock()
	d.inFlight[dl] = period
	d.changedLocked()
	d.mu.Unlock()
}

// answered records that dl's request has its answer (or has been left to the deleter).
func (d *deleter) answered(dl *Deletion) {
	d.mu.Lock()
	delete(d.inFlight, dl)
	d.changedLocked()
	d.mu.Unlock()
}

func (d *deleter) wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// pending returns the jobs left plus the deletes in flight.
func (d *deleter) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.jobs) + len(d.inFlight)
}

func (d *deleter) run() {
	t := time.NewTimer(deleterRetryInterval)
	defer t.Stop()
	for {
		select {
		case <-d.c.closedCh:
			d.mu.Lock()
			left, waiters := d.jobs, d.waiters
			d.jobs, d.waiters, d.stopped = nil, nil, true
			d.changedLocked()
			d.mu.Unlock()
			for _, j := range left {
				// Ephemeral nodes go with the closed session; anything else is reported.
				d.c.log.Info("client closed before a background delete was done", zap.Stringer("node", j))
				for _, dl := range waiters[j] {
					dl.finish(fmt.Errorf("curator: delete %s: %w", dl.path, ErrClosed))
				}
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

// runOnce starts a try of every job not under way, if the client is connected.
func (d *deleter) runOnce() {
	d.c.mu.Lock()
	conn, connected := d.c.conn, d.c.state == Connected || d.c.state == Reconnected // a read-only server takes no deletes
	d.c.mu.Unlock()
	if !connected || conn == nil {
		return
	}
	d.mu.Lock()
	gating := d.gating
	d.mu.Unlock()
	if gating {
		return
	}
	d.start(conn)
}

// start begins a try on conn of every job not under way, each on a goroutine of its own, so that
// the deletes go out together, in the order of the jobs. It returns channels that are closed once
// each path job's request has been written to the connection.
func (d *deleter) start(conn *zk.Conn) []<-chan struct{} {
	d.mu.Lock()
	var todo []deleteJob
	for _, j := range d.jobs {
		if !d.busy[j] {
			d.busy[j] = true
			todo = append(todo, j)
		}
	}
	d.mu.Unlock()
	var written []<-chan struct{}
	// Each try makes its request once the one before has been written (or its try is over), so
	// that the deletes reach the connection in the order of the jobs: a child's before its
	// parent's.
	prev := closedChan
	for _, j := range todo {
		var w <-chan struct{}
		if j.path != "" {
			w = d.c.writes.expect(writeDelete, j.path)
			written = append(written, w)
		}
		done := make(chan struct{})
		after := prev
		d.c.wg.Add(1)
		go func() {
			defer d.c.wg.Done()
			defer close(done)
			<-after
			d.try(conn, j)
		}()
		if w == nil {
			prev = done
		} else {
			next := make(chan struct{})
			d.c.wg.Add(1)
			go func() {
				defer d.c.wg.Done()
				defer close(next)
				select {
				case <-w:
				case <-done:
				}
			}()
			prev = next
		}
	}
	return written
}

// try makes one try of job j on conn.
func (d *deleter) try(conn *zk.Conn, j deleteJob) {
	err := d.do(conn, j)
	if j.path != "" {
		d.c.writes.forget(writeDelete, j.path)
	}
	if err != nil && !isServerRefusal(d.c.translate(err)) {
		// A connection loss, or a session that has just ended: try again on the next connection
		// (a persistent node, or a protected create's clean-up, outlives the session).
		d.mu.Lock()
		delete(d.busy, j)
		d.changedLocked()
		d.mu.Unlock()
		return
	}
	if err != nil {
		d.c.log.Error("background delete failed for good", zap.Stringer("node", j), zap.Error(err))
		err = fmt.Errorf("curator: delete %s: %w", d.c.userPath(j.String()), err)
	} else {
		d.c.log.Debug("background delete done", zap.Stringer("node", j))
	}
	d.remove(j, err)
}

// remove ends job j with err (nil: the node is gone) and ends the Deletions waiting for it.
func (d *deleter) remove(j deleteJob, err error) {
	d.mu.Lock()
	if i := slices.Index(d.jobs, j); i >= 0 {
		d.jobs = slices.Delete(d.jobs, i, i+1)
	}
	delete(d.busy, j)
	waiters := d.waiters[j]
	delete(d.waiters, j)
	d.changedLocked()
	d.mu.Unlock()
	for _, dl := range waiters {
		dl.finish(err)
	}
	if d.c.Observed() {
		d.c.observeQueued(Event{Kind: EventDeleteDone, Path: d.c.userPath(j.String()), Err: err})
	}
}

// mustSendFirst reports whether a new connected period must send deletes before the client's other
// requests: there are jobs, or deletes whose connected period has ended without their answer. If
// so, the deleter leaves its jobs to sendFirst, which the caller must run.
func (d *deleter) mustSendFirst() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.jobs) > 0 || d.lostInFlightLocked() {
		d.gating = true
		return true
	}
	return false
}

// lostInFlightLocked reports whether a delete sent in a connected period that has ended is still
// unanswered. d.mu is held.
func (d *deleter) lostInFlightLocked() bool {
	for _, period := range d.inFlight {
		select {
		case <-period:
			return true
		default:
		}
	}
	return false
}

// sendFirst runs when a connected period starts while deletes are left (see mustSendFirst): it
// waits until the deletes of ended periods have their outcome (go-zookeeper fails the requests of a
// connection before it makes the next, so that is at once), sends every job on conn and waits until
// they are written, and then lets the client's other requests go by calling open. So the deletes of
// releases made before the connection dropped are applied before anything else the client sends on
// the new connection, as they would have been on the old one. It waits for at most sendWait, and
// not past Close.
func (d *deleter) sendFirst(conn *zk.Conn, open func()) {
	t := time.NewTimer(sendWait)
	defer t.Stop()
	defer open()
	defer func() {
		d.mu.Lock()
		d.gating = false
		d.mu.Unlock()
		d.wake() // the jobs left, if sendFirst gave up waiting
	}()
	for {
		d.mu.Lock()
		busy, changed := d.lostInFlightLocked() || len(d.busy) > 0, d.changed
		d.mu.Unlock()
		if !busy {
			break
		}
		select {
		case <-changed:
		case <-t.C:
			return
		case <-d.c.closedCh:
			return
		}
	}
	for _, w := range d.start(conn) {
		select {
		case <-w:
		case <-t.C:
			return
		case <-d.c.closedCh:
			return
		}
	}
}

// isServerRefusal reports whether err, a request's translated error, is the server's answer that no try
// can change (no auth, not empty, ...), rather than a connection loss or a session that ended.
func isServerRefusal(err error) bool {
	return err != nil && !retry.IsRetryable(err) && !errors.Is(err, zk.ErrSessionExpired) && !errors.Is(err, ErrClosed)
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

// Deletion is a guaranteed delete under way: one that SendDelete handed to the connection, or that
// went to the client's background deleter. It ends when the node is known to be gone, when the
// server refuses the delete for a reason that trying again cannot change (no auth, say), or when
// the client is closed.
type Deletion struct {
	path  string        // as the caller gave it
	tried chan struct{} // closed once the first try is over: answered, or left to the deleter
	done  chan struct{}

	mu       sync.Mutex
	err      error
	isTried  bool
	finished bool
}

func newDeletion(path string) *Deletion {
	return &Deletion{path: path, tried: make(chan struct{}), done: make(chan struct{})}
}

// Path returns the path of the node being deleted.
func (d *Deletion) Path() string { return d.path }

// Done returns a channel that is closed when the delete is over (see Err).
func (d *Deletion) Done() <-chan struct{} { return d.done }

// Err returns nil while the delete is under way. Once Done is closed it returns nil if the node is
// gone (deleted, or gone already: an ephemeral node also goes with its expired session), an error
// wrapping the server's (zk.ErrNoAuth, zk.ErrNotEmpty, ...) if the server refused the delete, or an
// error wrapping ErrClosed if the client was closed first (a closed client's session, and with it
// its ephemeral nodes, is gone).
func (d *Deletion) Err() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// Wait waits until the delete is over and returns Err, or returns an error wrapping ctx's if ctx
// ends first (the delete goes on).
func (d *Deletion) Wait(ctx context.Context) error {
	select {
	case <-d.done:
		return d.Err()
	default:
	}
	select {
	case <-d.done:
		return d.Err()
	case <-ctx.Done():
		return fmt.Errorf("curator: delete %s: not confirmed yet (it goes on in the background): %w", d.path, ctxErr(ctx))
	}
}

// over reports whether the delete is over, and its error.
func (d *Deletion) over() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.finished, d.err
}

// markTried records that the first try is over.
func (d *Deletion) markTried() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.isTried {
		d.isTried = true
		close(d.tried)
	}
}

// finish ends the delete with err; later calls do nothing.
func (d *Deletion) finish(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return
	}
	d.finished, d.err = true, err
	if !d.isTried {
		d.isTried = true
		close(d.tried)
	}
	close(d.done)
}

// sendWait bounds how long SendDelete waits to see its request written to the connection, and how
// long a new connected period holds the client's requests back behind the deletes left over.
const sendWait = 300 * time.Millisecond

// SendDelete starts a guaranteed delete of the node at path (as Curator's delete().guaranteed())
// and returns without waiting for the server's reply.
//
// While the client is connected (to a server that takes writes), the delete request is handed to
// the connection, and SendDelete returns once it has been written there (or, if that has not
// happened by the time ctx ends or a few hundred milliseconds have passed, while it is still
// queued). go-zookeeper sends a connection's requests in the order they are made, and ZooKeeper
// applies a session's requests in the order it receives them, so every request this client makes
// after SendDelete returns is applied after the delete: a create and a listing of the same parent
// that follow it see the node gone. While the client is not connected, or if the delete's reply is
// lost with the connection, the node goes to the background deleter, which deletes it once the
// client is connected again, and before the client's other requests on that connection, so the
// order holds across the reconnect too; it tries again after every reconnect until the node is
// gone or the client is closed (see PendingDeletes). SendDelete never waits for a reconnect or a
// round trip.
//
// The returned Deletion tells when the node is known to be gone, and whether the server refused the
// delete (which is also logged at Error level). SendDelete itself returns an error only for bad
// input or a closed (ErrClosed) or unstarted client. A node that is already gone counts as deleted.
//
// The background delete goes by path: do not create a node at the same path again (a
// non-sequential node) while its delete may be pending.
func (c *Client) SendDelete(ctx context.Context, path string) (*Deletion, error) {
	if ctx == nil {
		return nil, fmt.Errorf("curator: delete %s: %w: nil context", path, ErrInvalidArgument)
	}
	d, _, err := c.startDelete(ctx, path)
	return d, err
}

// startDelete is SendDelete; it also returns the channel closed when the connected period the
// request was sent in ends (nil if it went to the background deleter).
func (c *Client) startDelete(ctx context.Context, path string) (*Deletion, <-chan struct{}, error) {
	if err := c.checkPath("delete", path); err != nil {
		return nil, nil, err
	}
	sp := c.serverPath(path)
	if err := c.checkRequest("delete", path, deleteRequestBytes(sp)); err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	closed, started := c.closed, c.started
	conn, writable, connDone := c.conn, c.state == Connected || c.state == Reconnected, c.connDone
	send := !closed && started && writable && conn != nil
	if send {
		// Counted under c.mu, where Close marks the client closed before it waits for the count.
		c.wg.Add(1)
	}
	c.mu.Unlock()
	switch {
	case closed:
		return nil, nil, fmt.Errorf("curator: delete %s: %w", path, ErrClosed)
	case !started:
		return nil, nil, fmt.Errorf("curator: delete %s: %w", path, ErrNotStarted)
	}
	d := newDeletion(path)
	job := deleteJob{path: sp}
	if !send {
		c.log.Info("not connected, deleting in the background", zap.String("path", path))
		c.deleter.add(job, d)
		return d, nil, nil
	}
	written := c.writes.expect(writeDelete, sp)
	// Counted before it can be sent: a reconnect that finds it unanswered puts it first.
	c.deleter.sent(d, connDone)
	go func() {
		defer c.wg.Done()
		// Answered last: PendingDeletes never reads 0 while the node may remain.
		defer c.deleter.answered(d)
		c.requests.Add(1)
		err := c.translate(conn.Delete(sp, -1))
		c.writes.forget(writeDelete, sp)
		switch {
		case err == nil, errors.Is(err, zk.ErrNoNode):
			d.finish(nil)
		case errors.Is(err, ErrClosed):
			d.finish(fmt.Errorf("curator: delete %s: %w", path, err))
		case !isServerRefusal(err):
			c.log.Info("delete not confirmed, deleting in the background", zap.String("path", path), zap.Error(err))
			c.deleter.add(job, d)
		default:
			c.log.Error("delete refused", zap.String("path", path), zap.Error(err))
			d.finish(fmt.Errorf("curator: delete %s: %w", path, err))
		}
	}()
	t := time.NewTimer(sendWait)
	defer t.Stop()
	select {
	case <-written:
	case <-d.tried:
	case <-t.C:
	case <-ctx.Done():
	case <-c.closedCh:
	}
	return d, connDone, nil
}

// DeleteGuaranteed deletes the node at path, as Curator's delete().guaranteed(), without ever
// making the caller wait for a connection: it is SendDelete that also waits for the server's reply
// while that can come soon.
//
// While the client is not connected (to a server that takes writes) it hands the node to the
// background deleter at once and returns nil. While connected it makes one try, and waits until it
// is answered, ctx ends, or the connection drops, whichever comes first; if the try fails for a
// connection reason, ctx ends or the connection drops, the node is left to the background deleter
// and DeleteGuaranteed returns nil. So it never blocks past ctx, nor for a round trip while
// disconnected, and never sleeps to retry.
//
// A node that is already gone counts as deleted. It returns an error only for bad input, a logical
// failure (zk.ErrNoAuth, zk.ErrNotEmpty, ...) or a closed (ErrClosed) or unstarted client. Use the
// Deletion of SendDelete to wait for the background delete too.
func (c *Client) DeleteGuaranteed(ctx context.Context, path string) error {
	if ctx == nil {
		return fmt.Errorf("curator: delete %s: %w: nil context", path, ErrInvalidArgument)
	}
	d, connDone, err := c.startDelete(ctx, path)
	if err != nil {
		return err
	}
	select {
	case <-d.tried:
	case <-ctx.Done():
	case <-connDone:
	case <-c.closedCh:
	}
	if over, err := d.over(); over {
		return err
	}
	if c.isClosed() {
		return fmt.Errorf("curator: delete %s: %w", path, ErrClosed)
	}
	return nil // the background deleter has it, or will once the reply is known lost
}

// PendingDeletes returns how many guaranteed deletes (and clean-ups of abandoned protected
// creates) are not done yet: left to the background deleter, or sent by SendDelete and not yet
// answered.
func (c *Client) PendingDeletes() int { return c.deleter.pending() }

// DeleteInBackground hands the node at path to the client's guaranteed-delete worker without
// trying it here: the worker deletes it as soon as the client is connected, and keeps trying until
// the node is gone or the client is closed. It never blocks.
func (c *Client) DeleteInBackground(path string) {
	if ValidatePath(path) != nil || c.isClosed() {
		return
	}
	c.deleter.add(deleteJob{path: c.serverPath(path)}, nil)
}
