package recipes_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

func ExampleInterProcessMutex() {
	srv, err := zktest.StartServer() // a throwaway ZooKeeper; use your ensemble's address instead
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	client, err := framework.NewClient(srv.ConnectString(), framework.WithSessionTimeout(10*time.Second))
	if err != nil {
		fmt.Println(err)
		return
	}
	client.Start()
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mutex := recipes.NewInterProcessMutex(client, srv.Root()+"/locks/billing")
	lease, err := mutex.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", mutex.IsAcquiredInThisProcess())

	// Re-entry goes through the lease's context.
	again, err := mutex.Acquire(lease.Context())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same node:", again.Node() == lease.Node())
	again.Release()

	// lease.Context() is cancelled the moment the lock may be lost; lease.Token() fences writes.
	fmt.Println("token > 0:", lease.Token() > 0)
	if err := lease.Release(); err != nil {
		fmt.Println(err)
	}
	fmt.Println("held:", mutex.IsAcquiredInThisProcess(), "err:", lease.Err())
	// Output:
	// held: true
	// same node: true
	// token > 0: true
	// held: false err: curator: lock released
}

// An observer sees every acquire, hold and request of a client and its recipes: here it counts
// the grants and the ended holds, as a metrics adapter would (the Prometheus adapter in
// github.com/gocurator/curator/prometheus does this and more).
func ExampleInterProcessMutex_observed() {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	var mu sync.Mutex
	seen := map[framework.EventKind]int{}
	obs := framework.ObserverFunc(func(e framework.Event) {
		if e.Recipe == "" {
			return // the client's own events: requests, states, sessions
		}
		mu.Lock()
		seen[e.Kind]++
		mu.Unlock()
	})
	c, err := framework.NewClient(srv.ConnectString(), framework.WithObserver(obs))
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := c.Start(); err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := recipes.NewInterProcessMutex(c, srv.Root()+"/observed-lock")
	for range 3 {
		lease, err := m.Acquire(ctx)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := lease.Release(); err != nil {
			fmt.Println(err)
			return
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, k := range []framework.EventKind{framework.EventAcquireStarted, framework.EventAcquireGranted, framework.EventHoldEnded} {
		fmt.Printf("%s: %d\n", k, seen[k])
	}
	// Output:
	// acquire-started: 3
	// acquire-granted: 3
	// hold-ended: 3
}
