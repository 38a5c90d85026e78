package recipes

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// Guard makes writes to ZooKeeper that land only while a hold of a lock, or a term of leadership,
// is still real on the server, whatever the holder's clock or connection believes. Its Multi sends
// the caller's ops in one transaction with a check that the holder's own znode still exists
// (framework.CheckOp, any version): ZooKeeper commits the whole transaction only if the check
// holds at the moment it is applied, and applies nothing otherwise. This closes the window every
// lock service has between "I was told I hold it" and "my write lands": a holder paused past its
// session timeout, or cut off while another was granted, has its write refused by the server.
//
// Why "our node exists" means "we still hold", at the moment the transaction is applied:
//   - The node is ephemeral: it exists only while the session that made it lives. The session's
//     expiry deletes it in the same step in which the session ends.
//   - A hold is granted when the holder's node is first of its queue (or among the first
//     maxLeases, or, for a read lock, behind no write node). Nodes ahead of ours never come back:
//     sequence numbers only grow, so every node made later sorts behind ours. Our node existing
//     therefore means every later node is still behind it: no waiter behind us can have been
//     granted, for every waiter waits until the nodes it must wait for are gone. For a read lock,
//     no writer behind us is granted while our read node exists; for a Semaphore, our lease node
//     still counts against maxLeases.
//   - Our nodes are protected ("_c_<uuid>-..."): a node of the same name made by someone else after
//     ours is gone, under a re-created lock parent, would carry another uuid.
//   - A check is an op of the transaction, so it is applied in the same step as the writes: there
//     is no moment between the check and the write in which the hold could end.
//
// A guard is also checked locally first: a guarded write of a hold the client already knows has
// ended (released, or lost under the client's error policy) fails at once without being sent.
//
// A Guard is a value; the zero Guard guards nothing and refuses every write with ErrNotHeld. A
// LeaderLatch's guard (LeaderLatch.Guard, LeadershipGuard) and a LeaderSelector's (LeadershipGuard
// of its leadership context) guard one term of leadership: the latch's node, first of the queue
// when the term began, is first for as long as it exists, for the reason above.
type Guard struct {
	c     *framework.Client
	nodes []string        // the holder's own nodes; a MultiLock's: one per part
	hctx  context.Context // ends when the hold or term ends, as the client knows it
	check func() error    // the hold's state and clock now: nil while it stands
	lost  error           // what a failed check on the server wraps: ErrLockLost or ErrNotLeader
	err   error           // why this guard can guard nothing
}

// live returns nil while the hold or term stands as far as the client knows, else why not.
func (g Guard) live() error {
	if g.err != nil {
		return g.err
	}
	if err := context.Cause(g.hctx); err != nil {
		return err
	}
	return g.check()
}

// errHoldEnded is the cause with which a guarded write's context ends when its hold ends.
var errHoldEnded = errors.New("the hold ended")

// Ops returns the guard's check ops, one per node of the hold (a MultiLock's lease has one per
// part), for a transaction of one's own (framework.Client.Multi); the guard's own Multi adds them
// for you, tells a failed check from the failure of another op, and refuses a hold the client
// knows has ended. The zero Guard, and a MultiLock's over several clients, return an error
// (ErrNotHeld, ErrInvalidArgument) rather than no ops, which would guard nothing.
func (g Guard) Ops() ([]framework.Op, error) {
	if g.err != nil {
		return nil, g.err
	}
	if g.c == nil {
		return nil, ErrNotHeld
	}
	ops := make([]framework.Op, len(g.nodes))
	for i, n := range g.nodes {
		ops[i] = framework.CheckOp(n, framework.AnyVersion)
	}
	return ops, nil
}

// Multi applies ops as one transaction, with the guard's checks in front, only if the hold or
// term still stands on the server; it returns the results of ops (without the checks').
//
// If a check fails, nothing is applied and the error wraps ErrLockLost (ErrNotLeader for a
// leadership guard) and zk.ErrNoNode; if the client has learnt meanwhile that the hold ended, the
// error wraps why instead (ErrReleased, say). If one of ops fails, the error is a
// *framework.MultiError whose Index counts in ops. If the hold has ended as far as the client
// knows, nothing is sent and the error says why (ErrReleased, ErrLockLost, ErrNotLeader, ...): at
// the call, and until the transaction is sent, for the write waits for a connection only as long
// as the hold stands. The transaction is sent only while the client is connected.
//
// A write that was sent but whose reply never came (the connection dropped, ctx ended, or the
// hold ended while it was in flight) is not sent again: the error wraps
// framework.ErrUnknownOutcome. It may have been applied, but only while the hold's nodes existed,
// so before any later holder was granted (a Release racing the write may return before the write's
// reply: the write was then sent before the release's delete, and is applied before it).
func (g Guard) Multi(ctx context.Context, ops ...framework.Op) ([]framework.OpResult, error) {
	if ctx == nil {
		return nil, fmt.Errorf("guarded write: %w: nil context", ErrInvalidArgument)
	}
	checks, err := g.Ops()
	if err != nil {
		return nil, fmt.Errorf("guarded write: %w", err)
	}
	if err := g.c.CheckMulti(ops...); err != nil {
		return nil, fmt.Errorf("guarded write: %w", err) // named by the caller's index
	}
	if err := g.live(); err != nil {
		return nil, fmt.Errorf("guarded write: %w", err)
	}
	// The write waits for a connection, and is sent, only while the hold stands.
	mctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stop := context.AfterFunc(g.hctx, func() { cancel(errHoldEnded) })
	defer stop()
	res, err := g.c.Multi(mctx, append(checks, ops...)...)
	var me *framework.MultiError
	switch {
	case err == nil:
		return res[len(checks):], nil
	case errors.As(err, &me) && me.Index < len(checks):
		if lerr := g.live(); lerr != nil {
			return nil, fmt.Errorf("guarded write: %w (the holder's node %s is gone: %w)", lerr, g.nodes[me.Index], me.Err)
		}
		if errors.Is(me.Err, zk.ErrNoNode) {
			return nil, fmt.Errorf("guarded write: %w: the holder's node %s is gone: %w", g.lost, g.nodes[me.Index], me.Err)
		}
		return nil, fmt.Errorf("guarded write: checking the holder's node %s: %w", g.nodes[me.Index], me.Err)
	case errors.As(err, &me):
		return nil, &framework.MultiError{Index: me.Index - len(checks), Op: me.Op, Err: me.Err}
	case ctx.Err() == nil && errors.Is(context.Cause(mctx), errHoldEnded):
		lerr := g.live()
		if errors.Is(err, framework.ErrUnknownOutcome) {
			return nil, fmt.Errorf("guarded write: %w (the hold ended while it was in flight: %w)", err, lerr)
		}
		return nil, fmt.Errorf("guarded write: %w (not sent)", lerr)
	}
	return nil, fmt.Errorf("guarded write: %w", err)
}

// Set writes data to the node at path, if its version is version (framework.AnyVersion for any),
// only if the hold or term still stands on the server: Multi with one framework.SetOp. It returns
// the node's new Stat.
func (g Guard) Set(ctx context.Context, path string, data []byte, version int32) (*zk.Stat, error) {
	res, err := g.Multi(ctx, framework.SetOp(path, data, version))
	if err != nil {
		return nil, err
	}
	return res[0].Stat, nil
}

// Guard returns the guard of this lease's hold: its node (a MultiLock's lease: every part's node,
// which must all be of one client). A nil or zero lease returns the zero Guard.
func (l *Lease) Guard() Guard {
	if l == nil || (l.h == nil && l.parts == nil) {
		return Guard{err: ErrNotHeld}
	}
	g := Guard{hctx: l.Context(), check: l.Err, lost: ErrLockLost}
	if l.parts == nil {
		g.c, g.nodes = l.h.c, []string{l.h.node}
		return g
	}
	for _, p := range l.parts {
		pg := p.Guard()
		if g.c != nil && pg.c != g.c {
			return Guard{err: fmt.Errorf("%w: a MultiLock whose parts are of different clients has no guard", ErrInvalidArgument)}
		}
		g.c = pg.c
		g.nodes = append(g.nodes, pg.nodes...)
	}
	return g
}

// leadership is what a leadership context carries: a LeaderSelector's lease, or a LeaderLatch's term.
type leadership interface {
	Token() int64
	Guard() Guard
}

// leadershipKey marks a context as a leadership context; its value is the term's leadership (a
// selector's *Lease, a latch's *latchTerm).
type leadershipKey struct{}

// LeadershipToken returns the fencing token of the leadership that ctx belongs to: ctx is the
// context a LeaderSelector gave its leadership function, or a LeaderLatch's LeadershipContext, or
// one derived from them. It strictly increases from one leader of the election to the next. ok is
// false for any other context (and for the LeadershipContext of a latch that does not lead).
//
// A selector's token is the Lease.Token of its mutex hold. A latch's is the latch path's pzxid in
// the listing that found its node first, for the reason Lease.Token gives for a lock's: the
// previous leader's node was deleted after its own first listing, in a transaction that the new
// leader's listing, which no longer has that node, includes.
func LeadershipToken(ctx context.Context) (token int64, ok bool) {
	if ctx == nil {
		return 0, false
	}
	l, ok := ctx.Value(leadershipKey{}).(leadership)
	if !ok {
		return 0, false
	}
	return l.Token(), true
}

// LeadershipGuard returns the guard of the leadership that ctx belongs to (see LeadershipToken for
// which contexts do): its guarded writes land only while that term of leadership stands on the
// server, and are refused locally once the term has ended (when ctx is cancelled). A failed check
// wraps ErrNotLeader. ok is false for any other context.
func LeadershipGuard(ctx context.Context) (g Guard, ok bool) {
	if ctx == nil {
		return Guard{}, false
	}
	l, ok := ctx.Value(leadershipKey{}).(leadership)
	if !ok {
		return Guard{}, false
	}
	return l.Guard(), true
}
