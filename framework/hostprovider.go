package framework

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// The reconnect schedule of a hostProvider. go-zookeeper waits a fixed second before every pass
// over the servers after the first one since its last successful connection; with one server that
// is before every reconnect, so a dropped connection to a live server cost a second at least, and
// a session timeout of a second or less was lost on every blip. A hostProvider instead starts the
// first pass after a connection drops at once, and waits before each further pass for a jittered
// backoff that starts at reconnectMinWait and doubles: pass n (n ≥ 1 failed passes) waits a random
// time in [reconnectMinWait·2^(n-1), reconnectMinWait·2^(n-1)·5/2). Once that range would reach
// past reconnectMaxWait, the outage is a long one, and every further pass waits a random time in
// [reconnectMaxWait·2/5, reconnectMaxWait): about go-zookeeper's own pace, jittered.
//
// The provider does the waiting itself and never leaves it to go-zookeeper (by returning
// retryStart=true) except once the connection is being closed: go-zookeeper's own wait is a
// second that only its close signal ends, and a Close that strikes while it runs may find its
// close request never answered, which costs Close another second.
const (
	// reconnectMinWait is the wait before the second pass: long enough that a server that refuses
	// connections (which costs a dial microseconds) is not hammered, short enough that a server
	// that blinked is back before a short session timeout runs out.
	reconnectMinWait = 10 * time.Millisecond
	// reconnectMaxWait is where the backoff stops growing.
	reconnectMaxWait = time.Second
	// reconnectStableUptime is how long a connection must have lasted for the next reconnect to
	// start afresh, at once. A connection that drops sooner (a server that takes the handshake and
	// then refuses the credentials, or drops every connection at once) counts as a failed pass, so
	// that such a server is retried under the backoff, not in a tight loop.
	reconnectStableUptime = 100 * time.Millisecond
	// reconnectMaxLevel bounds the count of failed passes the provider keeps (well past the cap,
	// see reconnectWait), so that the count never overflows a shift.
	reconnectMaxLevel = 16
)

// reconnectWait returns the range [lo, hi) the wait before a pass is drawn from, the pass
// following level failed passes in a row (level 0: the first pass, that does not wait). A
// negative level is taken as 0.
func reconnectWait(level int) (lo, hi time.Duration) {
	if level <= 0 {
		return 0, 0
	}
	capLo, capHi := reconnectMaxWait*2/5, reconnectMaxWait
	if level >= reconnectMaxLevel {
		return capLo, capHi
	}
	lo = reconnectMinWait << (level - 1)
	hi = lo * 5 / 2
	if hi > reconnectMaxWait {
		return capLo, capHi
	}
	return lo, hi
}

// hostProvider is the zk.HostProvider of one go-zookeeper connection of a Client.
//
// It keeps the servers as given, names and all, so that each dial resolves the name afresh.
// go-zookeeper's own provider resolves every name once, in Connect, and so fails for good when DNS
// is not ready yet, and never sees an address change. Like it, hostProvider shuffles the servers
// and goes round them in that order.
//
// It also paces the reconnects (see reconnectWait): Next itself sleeps before a pass that follows a
// failed one, because go-zookeeper dials again at once whenever Next returns retryStart=false.
// The sleep ends early when quit is closed (the Client is ending the connection); Next then, and
// from then on, returns retryStart=true at once, so that go-zookeeper looks at its own close signal
// and returns without its one-second wait.
//
// go-zookeeper fails the requests queued unsent (ErrNoServer) only when Next returns retryStart.
// Such requests wait for the reconnect instead, which keeps the same session (a new session gets
// a new go-zookeeper connection, and so a new provider), so they are still the session's own; the
// Client's Close, or the end of the session (the client presumes it lost after a session timeout
// without an answer), fails them. Only a request sent as its connection dropped, before the client
// noticed, is ever queued so: operations wait for a connection before they send, a try never
// goes out on a connection the client does not know to be up (see connForTry), and Close lets the
// calls in flight end before it closes the connection.
type hostProvider struct {
	quit   <-chan struct{} // closed when the connection is being closed; nil: never
	parked func()          // called when Next finds quit closed; nil: nothing

	// Hooks for tests; nil: time.Now, and a timer that quit stops.
	now   func() time.Time
	sleep func(d time.Duration, quit <-chan struct{})

	mu      sync.Mutex
	servers []string
	curr    int       // index of the server returned last, -1 before the first
	tried   int       // servers tried in the current pass
	level   int       // passes failed in a row since the last stable connection
	upSince time.Time // when the current connection was made; zero while there is none
}

// newHostProvider returns a host provider whose waits end when quit is closed (nil: never).
// parked, if not nil, is called whenever Next finds quit closed, before it returns: go-zookeeper
// is then back in its dialling loop, where it looks at its own close signal.
func newHostProvider(quit <-chan struct{}, parked func()) *hostProvider {
	return &hostProvider{quit: quit, parked: parked}
}

// Init takes the servers, "host:port" each, and checks their form; it looks nothing up.
func (hp *hostProvider) Init(servers []string) error {
	if len(servers) == 0 {
		return fmt.Errorf("%w: no servers", ErrInvalidArgument)
	}
	for _, s := range servers {
		if _, _, err := net.SplitHostPort(s); err != nil {
			return fmt.Errorf("%w: server %q: %w", ErrInvalidArgument, s, err)
		}
	}
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.servers = append([]string(nil), servers...)
	rand.Shuffle(len(hp.servers), func(i, j int) { hp.servers[i], hp.servers[j] = hp.servers[j], hp.servers[i] })
	hp.curr, hp.tried, hp.level, hp.upSince = -1, 0, 0, time.Time{}
	return nil
}

// Len returns the number of servers.
func (hp *hostProvider) Len() int {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return len(hp.servers)
}

// Next returns the next server to dial. The first pass over the servers after a stable connection
// (or at the start) goes at once; before each pass after a failed one, Next sleeps for the
// backoff. retryStart is false, except once quit is closed. Without servers (Init not called or
// failed) it returns "" and true.
func (hp *hostProvider) Next() (server string, retryStart bool) {
	hp.mu.Lock()
	if len(hp.servers) == 0 {
		hp.mu.Unlock()
		return "", true
	}
	select {
	case <-hp.quit:
		hp.curr = (hp.curr + 1) % len(hp.servers)
		server = hp.servers[hp.curr]
		hp.mu.Unlock()
		hp.quitGrace()
		return server, true // go-zookeeper sees its own close signal and returns
	default:
	}
	if !hp.upSince.IsZero() {
		// The first dial since a connection dropped.
		if hp.clock().Sub(hp.upSince) >= reconnectStableUptime {
			hp.level = 0
		} else {
			hp.level = min(hp.level+1, reconnectMaxLevel)
		}
		hp.upSince, hp.tried = time.Time{}, 0
	}
	if hp.tried == len(hp.servers) {
		// Every server has been tried since the last connection: the pass failed.
		hp.level = min(hp.level+1, reconnectMaxLevel)
		hp.tried = 0
	}
	var wait time.Duration
	if hp.tried == 0 {
		lo, hi := reconnectWait(hp.level)
		if hi > lo {
			wait = lo + rand.N(hi-lo)
		}
	}
	hp.tried++
	hp.curr = (hp.curr + 1) % len(hp.servers)
	server = hp.servers[hp.curr]
	hp.mu.Unlock()

	if wait > 0 {
		if hp.sleep != nil {
			hp.sleep(wait, hp.quit)
		} else {
			sleepUntil(wait, hp.quit)
		}
	}
	select {
	case <-hp.quit:
		hp.quitGrace()
		return server, true // go-zookeeper sees its own close signal and returns at once
	default:
	}
	return server, false
}

// quitGraceWait is how long Next waits, once quit is closed, before it returns retryStart=true.
// The Client closes quit before go-zookeeper's Close, whose first step closes go-zookeeper's own
// close signal and whose second queues a close request; go-zookeeper looks at that signal once,
// together with a fixed one-second sleep, when Next returns retryStart=true, and then fails the
// requests queued unsent, the close request among them. Returning a moment after parked makes it
// see the signal closed and the request queued, so that Close returns at once instead of waiting
// a second for an answer no session will send.
const quitGraceWait = 20 * time.Millisecond

func (hp *hostProvider) quitGrace() {
	if hp.parked != nil {
		hp.parked()
	}
	time.Sleep(quitGraceWait)
}

// Connected records that the current server took the connection.
func (hp *hostProvider) Connected() {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.upSince = hp.clock()
	hp.tried = 0
}

func (hp *hostProvider) clock() time.Time {
	if hp.now != nil {
		return hp.now()
	}
	return time.Now()
}

// sleepUntil sleeps for d, or until quit is closed.
func sleepUntil(d time.Duration, quit <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-quit:
	}
}
