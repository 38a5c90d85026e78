package framework

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/retry"
)

// An Op is one operation of a transaction: see Client.Multi. Make one with CreateOp, SetOp,
// DeleteOp or CheckOp.
type Op struct {
	kind    opKind
	path    string
	data    []byte
	version int32
	mode    CreateMode
	opts    []CreateOption
}

type opKind int

const (
	opNone opKind = iota
	opCreate
	opSet
	opDelete
	opCheck
)

func (k opKind) String() string {
	switch k {
	case opCreate:
		return "create"
	case opSet:
		return "set"
	case opDelete:
		return "delete"
	case opCheck:
		return "check"
	}
	return "invalid op"
}

// AnyVersion, as the version of SetOp, DeleteOp or CheckOp (or of Set and Delete), matches every
// version of the node.
const AnyVersion int32 = -1

// CreateOp creates the node at path with data (nil means the client's default data) in mode. Of
// the create options, only WithNodeACL applies: a transaction cannot make parents, and a protected
// create needs the retries that a transaction does not get (Multi refuses either with
// ErrInvalidArgument). The created path, with its sequence number, is in the op's OpResult.
func CreateOp(path string, data []byte, mode CreateMode, opts ...CreateOption) Op {
	return Op{kind: opCreate, path: path, data: data, mode: mode, opts: opts}
}

// SetOp writes data to the node at path if its version is version (AnyVersion for any).
func SetOp(path string, data []byte, version int32) Op {
	return Op{kind: opSet, path: path, data: data, version: version}
}

// DeleteOp deletes the node at path if its version is version (AnyVersion for any).
func DeleteOp(path string, version int32) Op {
	return Op{kind: opDelete, path: path, version: version}
}

// CheckOp changes nothing: it fails the transaction unless the node at path exists and, unless
// version is AnyVersion, has that version. With AnyVersion it asserts that the node exists: a
// lock's guard (see recipes.Guard) is this op on the holder's own node.
func CheckOp(path string, version int32) Op {
	return Op{kind: opCheck, path: path, version: version}
}

// Path returns the path the op names, as the caller gave it.
func (o Op) Path() string { return o.path }

// String describes the op, e.g. `check /locks/a/_c_…-lock-0000000001`.
func (o Op) String() string { return o.kind.String() + " " + o.path }

// OpResult is what one op of a committed transaction did.
type OpResult struct {
	// Path is the op's path; for a create, the created node's (with its sequence number, if
	// sequential), without the client's namespace.
	Path string
	// Stat is the node's Stat after a SetOp; nil for the other ops.
	Stat *zk.Stat
}

// MultiError is the error of a transaction that the server refused: the op at Index (in the order
// given to Multi) failed because of Err, and so none of the ops was applied. errors.Is matches
// Err: zk.ErrNoNode, zk.ErrNodeExists, zk.ErrBadVersion, zk.ErrNotEmpty, zk.ErrNoAuth, ...
type MultiError struct {
	Index int
	Op    Op
	Err   error
}

func (e *MultiError) Error() string {
	return fmt.Sprintf("curator: multi: op %d (%v) failed, nothing applied: %v", e.Index, e.Op, e.Err)
}

func (e *MultiError) Unwrap() error { return e.Err }

// ErrUnknownOutcome is wrapped, with the cause, by the error of a transaction that was sent but
// whose reply never came: the connection dropped, the context ended or the client was closed while
// it was in flight. The server may or may not have applied it (all of it or none). A transaction is
// not idempotent, so Multi does not send it again; find out by reading back what it would have
// changed (a create's node, a set's data and version) before deciding to send it again.
var ErrUnknownOutcome = errors.New("curator: transaction outcome unknown")

// errUnknownOutcome stops the retry loop: a sent transaction is never sent again.
var errUnknownOutcome = errors.New("sent, no reply")

// Multi applies ops as one transaction: all of them, in order, or none. It returns one OpResult per
// op. If the server refuses the transaction, the error is a *MultiError naming the op that failed
// and why. A transaction not yet sent is retried under the retry policy as any operation, and it is
// sent only while the client is connected (never queued for after a reconnect); one that was sent
// and got no reply is not retried: its error wraps ErrUnknownOutcome and the cause (a connection
// loss, ctx's error or ErrClosed). Bad ops (an invalid path, a protected create, a request larger
// than the client sends) fail with ErrInvalidArgument before anything is sent (see CheckMulti).
// Multi with no ops sends nothing.
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	if ctx == nil {
		return nil, fmt.Errorf("curator: multi: %w: nil context", ErrInvalidArgument)
	}
	if len(ops) == 0 {
		return nil, nil
	}
	reqs, err := c.multiRequests(ops)
	if err != nil {
		return nil, err
	}
	var (
		res     []zk.MultiResponse
		outcome error // the cause, once the transaction was sent and no reply came
	)
	err = c.retryOp(ctx, func() error {
		conn, _, err := c.connForTry(ctx)
		if err != nil {
			return err // not sent: another try is safe
		}
		var (
			mu   sync.Mutex
			sent bool // handed to go-zookeeper
			r    []zk.MultiResponse
		)
		err = c.translate(c.call(ctx, func() error {
			mu.Lock()
			sent = true
			mu.Unlock()
			c.requests.Add(1)
			rr, err := conn.Multi(reqs...)
			mu.Lock()
			r = rr
			mu.Unlock()
			return err
		}, nil))
		mu.Lock()
		defer mu.Unlock()
		switch {
		case !sent:
			return err // ctx ended or the client closed before it was sent
		case isRefusal(r):
			res = r // the server's answer, even if the call was given up meanwhile
			return err
		case errors.Is(err, zk.ErrNoServer):
			// go-zookeeper fails the requests it never sent with ErrNoServer.
			return err
		case retry.IsRetryable(err) || errors.Is(err, ErrClosed) || ctx.Err() != nil || errors.Is(err, zk.ErrSessionExpired):
			outcome = err
			return errUnknownOutcome
		}
		return err
	})
	if outcome != nil {
		c.log.Debug("transaction sent, no reply", zap.Int("ops", len(ops)), zap.Error(outcome))
		return nil, fmt.Errorf("curator: multi: %w: %w", ErrUnknownOutcome, outcome)
	}
	if isRefusal(res) {
		return c.multiResults(ops, res)
	}
	if err != nil {
		return nil, fmt.Errorf("curator: multi: %w", c.translate(err))
	}
	return nil, errors.New("curator: multi: no results") // go-zookeeper answered nothing: cannot happen
}

// CheckMulti reports, without sending anything, whether Multi(ctx, ops...) may be sent as far as
// the client can tell: each op is one of CreateOp, SetOp, DeleteOp or CheckOp with a valid path,
// and the transaction is no larger than the client sends. The error wraps ErrInvalidArgument and
// names the op (by its index in ops).
func (c *Client) CheckMulti(ops ...Op) error {
	_, err := c.multiRequests(ops)
	return err
}

// isRefusal reports whether res is the server's answer to a transaction, one entry per op.
func isRefusal(res []zk.MultiResponse) bool { return len(res) > 0 }

// multiRequests checks ops and makes go-zookeeper's requests of them, with namespaced paths.
func (c *Client) multiRequests(ops []Op) ([]any, error) {
	const opHeaderBytes = int32Bytes + 1 + int32Bytes // type, done, err
	reqs := make([]any, len(ops))
	size := requestHeaderBytes + opHeaderBytes // the closing header
	for i, op := range ops {
		bad := func(format string, args ...any) error {
			return fmt.Errorf("curator: multi: op %d (%v): %w: %s", i, op, ErrInvalidArgument, fmt.Sprintf(format, args...))
		}
		if err := ValidatePath(op.path); err != nil {
			return nil, fmt.Errorf("curator: multi: op %d (%v): %w", i, op, err)
		}
		p := c.serverPath(op.path)
		size += opHeaderBytes
		switch op.kind {
		case opCreate:
			if op.path == "/" {
				return nil, bad("path \"/\" exists always")
			}
			if op.mode < Persistent || op.mode > EphemeralSequential {
				// go-zookeeper sends every create of a transaction with the plain create opcode;
				// a container node is made with its own (createContainer).
				return nil, bad("create mode %v cannot be used in a transaction", op.mode)
			}
			o, err := c.createOptionsFor(op.path, createOptions{}, op.opts)
			if err != nil {
				return nil, fmt.Errorf("curator: multi: op %d (%v): %w", i, op, err)
			}
			if o.protected || o.parents {
				return nil, bad("WithProtection and WithParents cannot be used in a transaction")
			}
			data := op.data
			if data == nil {
				data = c.data
			}
			name := p
			if op.mode.isSequential() {
				name += strings.Repeat("0", sequenceDigits)
			}
			size += createRequestBytes(name, data, o.acl) - requestHeaderBytes
			reqs[i] = &zk.CreateRequest{Path: p, Data: data, Acl: o.acl, Flags: op.mode.flags()}
		case opSet:
			size += setRequestBytes(p, op.data) - requestHeaderBytes
			reqs[i] = &zk.SetDataRequest{Path: p, Data: op.data, Version: op.version}
		case opDelete:
			size += deleteRequestBytes(p) - requestHeaderBytes
			reqs[i] = &zk.DeleteRequest{Path: p, Version: op.version}
		case opCheck:
			size += deleteRequestBytes(p) - requestHeaderBytes // a path and a version, as a delete
			reqs[i] = &zk.CheckVersionRequest{Path: p, Version: op.version}
		default:
			return nil, bad("not an op made by CreateOp, SetOp, DeleteOp or CheckOp")
		}
	}
	if size > c.opts.maxRequestBytes {
		return nil, fmt.Errorf("curator: multi of %d ops: %w: %w: the request would be %d bytes, more than the limit of %d bytes (the server's jute.maxbuffer)",
			len(ops), ErrInvalidArgument, ErrRequestTooLarge, size, c.opts.maxRequestBytes)
	}
	return reqs, nil
}

// multiResults turns the server's answer to ops into results, or into a *MultiError naming the op
// that failed. (The server answers a refused transaction with OK for the ops before the one that
// failed, rolled back, and a runtime inconsistency for those after it.)
func (c *Client) multiResults(ops []Op, res []zk.MultiResponse) ([]OpResult, error) {
	if len(res) != len(ops) {
		return nil, fmt.Errorf("curator: multi: %d results for %d ops", len(res), len(ops))
	}
	out := make([]OpResult, len(ops))
	for i, r := range res {
		if r.Error != nil {
			return nil, &MultiError{Index: i, Op: ops[i], Err: r.Error}
		}
		out[i] = OpResult{Path: ops[i].path, Stat: r.Stat}
		if ops[i].kind == opCreate {
			out[i].Path = c.userPath(r.String)
		}
	}
	return out, nil
}
