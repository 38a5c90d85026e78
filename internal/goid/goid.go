// Package goid tells goroutines apart, for the one question the standard library leaves open: is
// the caller the goroutine that is running a callback of ours? A Close called from inside a
// listener must not wait for that listener's goroutine, and one called from anywhere else must.
package goid

import (
	"bytes"
	"runtime"
	"strconv"
	"sync"
)

// Current returns the id of the calling goroutine, as the runtime prints it in a stack trace
// ("goroutine 42 [running]:"). It costs a short stack dump: call it on rare paths only (starting a
// callback goroutine, Close), never per operation.
func Current() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// callbacks holds the ids of the goroutines that run callbacks of ours (a client's state listeners,
// a latch's listeners, a selector's leadership function).
var callbacks sync.Map // uint64 -> struct{}

// MarkCallbacks records that the calling goroutine runs callbacks, until the returned func is called
// (on the same goroutine, as it ends). A Close that waits for such goroutines must not wait when it
// is called from any of them: two of them closing each other's owner would wait for each other.
func MarkCallbacks() (unmark func()) {
	id := Current()
	callbacks.Store(id, struct{}{})
	return func() { callbacks.Delete(id) }
}

// InCallback reports whether the calling goroutine is one that MarkCallbacks recorded.
func InCallback() bool {
	_, ok := callbacks.Load(Current())
	return ok
}
