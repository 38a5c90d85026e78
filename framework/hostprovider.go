package framework

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
)

// hostProvider is the zk.HostProvider of a Client: it keeps the servers as given, names and all,
// so that each dial resolves the name afresh. go-zookeeper's own provider resolves every name
// once, in Connect, and so fails for good when DNS is not ready yet, and never sees an address
// change. Like it, hostProvider shuffles the servers and tells go-zookeeper when a whole pass over
// them has failed (so that it waits before the next pass).
type hostProvider struct {
	mu      sync.Mutex
	servers []string
	curr    int
	last    int
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
	hp.curr, hp.last = -1, -1
	return nil
}

// Len returns the number of servers.
func (hp *hostProvider) Len() int {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	return len(hp.servers)
}

// Next returns the next server to dial; retryStart is true when every server has been tried since
// the last successful connection.
func (hp *hostProvider) Next() (server string, retryStart bool) {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.curr = (hp.curr + 1) % len(hp.servers)
	retryStart = hp.curr == hp.last
	if hp.last == -1 {
		hp.last = 0
	}
	return hp.servers[hp.curr], retryStart
}

// Connected records that the current server took the connection.
func (hp *hostProvider) Connected() {
	hp.mu.Lock()
	defer hp.mu.Unlock()
	hp.last = hp.curr
}
