// Package fencing is a tiny store, behind an HTTP handler, that fences off writers whose lock may
// have been lost: each request carries the writer's fencing token (recipes.Lease.Token, or
// recipes.LeadershipToken for a leader), and the store keeps, per resource, the highest token it
// has accepted and rejects older ones. A holder paused past its session timeout, whose lock went
// to another meanwhile, is turned away when it wakes and writes, because the new holder's token is
// higher.
//
// It follows the rules of the README's "Fencing tokens" table: an exclusive hold's write (a
// mutex, a write lock, a leader) is rejected below the highest token of any kind accepted for the
// resource; a read under a read lock is rejected below the highest write token. (A Semaphore with
// more than one lease cannot fence: its holders overlap legitimately.)
//
// For state kept in ZooKeeper itself, use recipes.Guard instead: the server itself refuses the
// write once the hold is gone.
package fencing

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
)

// ErrStaleToken is the error of a request whose token is older than the store allows.
var ErrStaleToken = errors.New("fencing: stale token")

// Store keeps one value per resource, fenced by tokens. The zero Store is ready to use.
type Store struct {
	mu    sync.Mutex
	items map[string]*item
}

type item struct {
	highest      int64 // the highest token accepted, of any kind
	highestWrite int64 // the highest write token accepted
	data         []byte
}

func (s *Store) itemLocked(resource string) *item {
	if s.items == nil {
		s.items = map[string]*item{}
	}
	it := s.items[resource]
	if it == nil {
		it = &item{}
		s.items[resource] = it
	}
	return it
}

// Write stores data for resource from an exclusive holder with token, unless a higher token has
// been accepted for resource; the same holder may write again with its token.
func (s *Store) Write(resource string, token int64, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.itemLocked(resource)
	if token < it.highest {
		return fmt.Errorf("%w: write of %s with token %d, after token %d", ErrStaleToken, resource, token, it.highest)
	}
	it.highest, it.highestWrite = token, token
	it.data = append([]byte(nil), data...)
	return nil
}

// Read returns the data of resource for a reader holding a read lock with token, unless a writer
// with a higher token has written since.
func (s *Store) Read(resource string, token int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it := s.itemLocked(resource)
	if token < it.highestWrite {
		return nil, fmt.Errorf("%w: read of %s with token %d, after write token %d", ErrStaleToken, resource, token, it.highestWrite)
	}
	it.highest = max(it.highest, token)
	return append([]byte(nil), it.data...), nil
}

// TokenHeader is the request header that carries the fencing token.
const TokenHeader = "Fencing-Token"

// Handler serves the store over HTTP: PUT /{resource} writes the body, GET /{resource} reads,
// each with the token in the Fencing-Token header. A stale token gets 409 Conflict, a missing or
// malformed one 400 Bad Request.
func (s *Store) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/{resource}", func(w http.ResponseWriter, r *http.Request) {
		token, err := strconv.ParseInt(r.Header.Get(TokenHeader), 10, 64)
		if err != nil {
			http.Error(w, "missing or malformed "+TokenHeader+" header", http.StatusBadRequest)
			return
		}
		resource := r.PathValue("resource")
		switch r.Method {
		case http.MethodPut:
			body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			if err := s.Write(resource, token, body); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet:
			data, err := s.Read(resource, token)
			if err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
			w.Write(data)
		default:
			http.Error(w, "PUT or GET", http.StatusMethodNotAllowed)
		}
	})
	return mux
}
