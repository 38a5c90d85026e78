package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// This example lets at most three workers, in any number of processes, use a resource at once.
func ExampleSemaphore() {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	c, err := framework.NewClient(srv.ConnectString())
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
	if err := c.BlockUntilConnected(ctx); err != nil {
		fmt.Println(err)
		return
	}

	sem := recipes.NewSemaphore(c, srv.Root()+"/example/workers", 3)
	two, err := sem.Acquire(ctx, 2) // waits until two leases are free
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding", len(two), "leases")

	// Two more are not free now: TryAcquire takes none of them.
	if _, err := sem.TryAcquire(ctx, 2); errors.Is(err, recipes.ErrLocked) {
		fmt.Println("two more: none free")
	}
	one, err := sem.TryAcquire(ctx, 1)
	if err != nil {
		fmt.Println(err)
		return
	}
	nodes, err := sem.ParticipantNodes(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("lease nodes:", len(nodes))

	// Each lease is released on its own.
	for _, l := range append(two, one...) {
		if err := l.Release(); err != nil {
			fmt.Println(err)
		}
	}
	nodes, _ = sem.ParticipantNodes(ctx)
	fmt.Println("lease nodes after release:", len(nodes))
	// Output:
	// holding 2 leases
	// two more: none free
	// lease nodes: 3
	// lease nodes after release: 0
}

// This example guards a critical section with a mutex that, unlike InterProcessMutex, is not
// re-entrant: the holder itself cannot take it again.
func ExampleSemaphoreMutex() {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	c, err := framework.NewClient(srv.ConnectString())
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
	if err := c.BlockUntilConnected(ctx); err != nil {
		fmt.Println(err)
		return
	}

	m := recipes.NewSemaphoreMutex(c, srv.Root()+"/example/lock")
	lease, err := m.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", m.IsAcquiredInThisProcess())

	// Not re-entrant: even with the lease's own context, TryAcquire finds the mutex taken.
	_, err = m.TryAcquire(lease.Context())
	fmt.Println("again:", errors.Is(err, recipes.ErrLocked))

	// The lease may be released from any goroutine.
	done := make(chan error)
	go func() { done <- lease.Release() }()
	if err := <-done; err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("held:", m.IsAcquiredInThisProcess(), "lease:", lease.Err())
	// Output:
	// held: true
	// again: true
	// held: false lease: curator: lock released
}
