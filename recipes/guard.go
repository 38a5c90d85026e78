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
	nodes []string     // the holder's own nodes; a MultiLock's: one per part
	live  func() error // the local check: nil while the hold or term stands as far as the client knows
	lost  error        // what a failed check wraps: ErrLockLost or ErrNotLeader
}

// Ops returns the guard's check ops, one per node of the hold (a MultiLock's lease has one per
// part), for a transaction of one's own (framework.Client.Multi). The guard's Multi adds them for
// you, and tells a failed check from the failure of another op.
func (g Guard) Ops() []framework.Op {
	ops := make([]framework.Op, len(g.nodes))
	for i, n := range g.nodes {
		ops[i] = framework.CheckOp(n, framework.AnyVersion)
	}
	return ops
}

// Multi applies ops as one transaction, with the guard's checks in front, only if the hold or
// term still stands on the server; it returns the results of ops (without the checks'). If a check
// fails, nothing is applied and the error wraps ErrLockLost (ErrNotLeader for a leadership guard)
// and zk.ErrNoNode. If one of ops fails, the error is a *framework.MultiError whose Index counts in
// ops. If the hold has ended as far as the client knows, nothing is sent and the error says why
// (ErrReleased, ErrLockLost, ErrNotLeader, ...). As with framework.Client.Multi, a transaction
// sent without a reply is not sent again: the error wraps framework.ErrUnknownOutcome.
func (g Guard) Multi(ctx context.Context, ops ...framework.Op) ([]framework.OpResult, error) {
	if g.c == nil {
		return nil, fmt.Errorf("guarded write: %w", ErrNotHeld)
	}
	if err := g.live(); err != nil {
		return nil, fmt.Errorf("guarded write: %w", err)
	}
	checks := g.Ops()
	res, err := g.c.Multi(ctx, append(checks, ops...)...)
	var me *framework.MultiError
	switch {
	case err == nil:
		return res[len(checks):], nil
	case errors.As(err, &me) && me.Index < len(checks):
		if errors.Is(me.Err, zk.ErrNoNode) {
			return nil, fmt.Errorf("guarded write: %w: the holder's node %s is gone: %w", g.lost, g.nodes[me.Index], me.Err)
		}
		return nil, fmt.Errorf("guarded write: checking the holder's node %s: %w", g.nodes[me.Index], me.Err)
	case errors.As(err, &me):
		return nil, &framework.MultiError{Index: me.Index - len(checks), Op: me.Op, Err: me.Err}
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
		return Guard{}
	}
	g := Guard{live: l.Err, lost: ErrLockLost}
	if l.parts == nil {
		g.c, g.nodes = l.h.c, []string{l.h.node}
		return g
	}
	for _, p := range l.parts {
		pg := p.Guard()
		if g.c != nil && pg.c != g.c {
			return Guard{c: g.c, live: func() error {
				return fmt.Errorf("%w: a MultiLock whose parts are of different clients has no guard", ErrInvalidArgument)
			}}
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
	l, ok := ctx.Value(leadershipKey{}).(leadership)
	if !ok {
		return 0, false
	}
	return l.Token(), true
}

// LeadershipGuard returns the guard of the leadership that ctx belongs to (see LeadershipToken for
// which contexts do): its guarded writes land only while that term of leadership stands on the
// server. A failed check wraps ErrNotLeader. ok is false for any other context.
func LeadershipGuard(ctx context.Context) (g Guard, ok bool) {
	l, ok := ctx.Value(leadershipKey{}).(leadership)
	if !ok {
		return Guard{}, false
	}
	g = l.Guard()
	g.lost = ErrNotLeader
	if live := g.live; live != nil {
		g.live = func() error {
			if err := live(); err != nil && !errors.Is(err, ErrNotLeader) {
				return fmt.Errorf("%w: %w", ErrNotLeader, err)
			}
			return nil
		}
	}
	return g, true
}
