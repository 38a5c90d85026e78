package framework

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-zookeeper/zk"
)

// Listing is the children of a node and its Stat, as one read returned them.
type Listing struct {
	Children []string
	Stat     *zk.Stat
}

// CreateAndList makes a protected node (parents created as needed) and lists its parent's
// children, as a lock does to learn its place in the queue. The listing is pipelined: it is sent
// right behind the create, before the create's reply is back, and ZooKeeper answers a session's
// requests in the order it receives them, so the listing sees the new node and the pair costs one
// round trip's wait instead of two. If the pipelined listing does not show the new node (after a
// reconnect, or when the parent had to be created first), the parent is listed again.
func (c *Client) CreateAndList(ctx context.Context, path string, data []byte, mode CreateMode, opts ...CreateOption) (Created, Listing, error) {
	o, data, err := c.checkCreateAndList(path, data, mode, opts)
	if err != nil {
		return Created{}, Listing{}, err
	}
	var list Listing
	created, err := c.createProtected(ctx, path, data, mode, o, &list)
	if err != nil {
		return Created{}, Listing{}, err
	}
	if list.Stat == nil || !slices.Contains(list.Children, baseName(created.Path)) {
		list, err = c.listAgain(ctx, created.Path)
	}
	return created, list, err
}

// baseName is the last element of a path.
func baseName(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// listAgain lists the parent of node, for a CreateAndList whose pipelined listing did not show the
// node.
//
//go:noinline
func (c *Client) listAgain(ctx context.Context, node string) (Listing, error) {
	parent, _ := SplitPath(node)
	names, st, err := c.Children(ctx, parent)
	if err != nil {
		return Listing{}, err
	}
	return Listing{Children: names, Stat: st}, nil
}

// checkCreateAndList checks the arguments of CreateAndList and returns its create options and
// data (the client's default data for nil). It is apart so that CreateAndList's frame, which a
// waiting create's stack holds, stays small.
//
//go:noinline
func (c *Client) checkCreateAndList(path string, data []byte, mode CreateMode, opts []CreateOption) (createOptions, []byte, error) {
	if err := c.checkPath("create", path); err != nil {
		return createOptions{}, nil, err
	}
	if path == "/" {
		return createOptions{}, nil, fmt.Errorf("curator: create: %w: path \"/\" exists always", ErrInvalidArgument)
	}
	if mode < Persistent || mode > Container {
		return createOptions{}, nil, fmt.Errorf("curator: create %s: %w: create mode %d", path, ErrInvalidArgument, int(mode))
	}
	o, err := c.createOptionsFor(path, createOptions{protected: true, parents: true}, opts)
	if err != nil {
		return createOptions{}, nil, err
	}
	if data == nil {
		data = c.data
	}
	if err := c.checkCreateRequest(path, data, mode, o); err != nil {
		return createOptions{}, nil, err
	}
	return o, data, nil
}

// createThenList makes one create on conn and, as soon as the create request has been written to
// the connection, sends a listing of parent behind it. The listing is left empty if it could not be
// pipelined or failed; the caller then lists again.
func (c *Client) createThenList(conn *zk.Conn, full, parent string, data []byte, mode CreateMode, o createOptions, list *Listing) (string, error) {
	written := c.writes.expect(writeCreate, full)
	createDone := make(chan struct{})
	listed := make(chan Listing, 1)
	listing := c.goCounted(func() {
		select {
		case <-written:
		case <-createDone:
			listed <- Listing{}
			return
		}
		c.requests.Add(1)
		names, st, err := conn.Children(parent)
		if err != nil {
			listed <- Listing{}
			return
		}
		listed <- Listing{Children: names, Stat: st}
	})
	name, err := c.createOnce(conn, full, data, mode, o)
	close(createDone)
	c.writes.forget(writeCreate, full)
	if listing {
		*list = <-listed
	}
	return name, err
}

// writeKind is the kind of request a writeWatch waits to see written.
type writeKind uint8

const (
	writeCreate writeKind = iota + 1 // any create request (create, create2, container, TTL)
	writeDelete                      // a delete request
)

// writeKey names a request a writeWatch waits for: its kind and server path.
type writeKey struct {
	kind writeKind
	path string
}

// writeWatch tells when a request of a given kind for a given server path has been written to the
// connection. go-zookeeper sends a connection's requests in the order they were made, so once a
// request is seen written, every request made after that goes out behind it.
type writeWatch struct {
	mu      sync.Mutex
	waiting map[writeKey]chan struct{}
	n       atomic.Int32 // len(waiting), read without the lock on every write
}

// expect returns a channel that is closed when a request of kind for path is written. Two waits
// for the same request share one channel.
func (w *writeWatch) expect(kind writeKind, path string) <-chan struct{} {
	k := writeKey{kind, path}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.waiting[k]; ok {
		return ch
	}
	ch := make(chan struct{})
	if w.waiting == nil {
		w.waiting = map[writeKey]chan struct{}{}
	}
	w.waiting[k] = ch
	w.n.Store(int32(len(w.waiting)))
	return ch
}

// forget stops waiting for a request of kind for path.
func (w *writeWatch) forget(kind writeKind, path string) {
	w.mu.Lock()
	delete(w.waiting, writeKey{kind, path})
	w.n.Store(int32(len(w.waiting)))
	w.mu.Unlock()
}

// written looks at a packet the client has written: if it is a create or delete request for an
// expected path, the path's channel is closed. go-zookeeper writes each request whole: length,
// xid, opcode, then the path as a length-prefixed string.
func (w *writeWatch) written(b []byte) {
	const (
		opCreate          = 1
		opDelete          = 2
		opCreate2         = 15
		opCreateContainer = 19
		opCreateTTL       = 21
	)
	if len(b) < 16 {
		return
	}
	var kind writeKind
	switch int32(binary.BigEndian.Uint32(b[8:12])) {
	case opCreate, opCreate2, opCreateContainer, opCreateTTL:
		kind = writeCreate
	case opDelete:
		kind = writeDelete
	default:
		return
	}
	n := int(int32(binary.BigEndian.Uint32(b[12:16])))
	if n <= 0 || 16+n > len(b) {
		return
	}
	k := writeKey{kind, string(b[16 : 16+n])}
	w.mu.Lock()
	if ch, ok := w.waiting[k]; ok {
		close(ch)
		delete(w.waiting, k)
		w.n.Store(int32(len(w.waiting)))
	}
	w.mu.Unlock()
}

// pending reports whether any request is waiting to be seen written.
func (w *writeWatch) pending() bool {
	return w.n.Load() > 0
}
