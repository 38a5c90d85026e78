package recipes_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// Who holds a lock and who waits: the holder's and the waiter's nodes, with their ids (the node
// data) and sessions; and the same read by InspectLock, which tells the recipe from the nodes.
func ExampleInterProcessMutex_Participants() {
	srv, err := zktest.StartServer() // a throwaway ZooKeeper; use your ensemble's address instead
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	newClient := func(id string) *framework.Client {
		c, err := framework.NewClient(srv.ConnectString(), framework.WithDefaultData([]byte(id)))
		if err != nil {
			panic(err)
		}
		c.Start()
		return c
	}
	billing, backup := newClient("billing-1"), newClient("billing-2")
	defer billing.Close()
	defer backup.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	path := srv.Root() + "/locks/billing"
	lease, err := recipes.NewInterProcessMutex(billing, path).Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease.Release()

	// The backup waits for the lock until waitCtx ends.
	waitCtx, stopWaiting := context.WithCancel(ctx)
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		if l, err := recipes.NewInterProcessMutex(backup, path).Acquire(waitCtx); err == nil {
			l.Release()
		}
	}()
	defer func() { stopWaiting(); <-waited }()
	// Wait, with a child watch, until the backup's node is there.
	for {
		names, _, w, err := billing.ChildrenW(ctx, path)
		if err != nil {
			fmt.Println(err)
			return
		}
		if len(names) == 2 {
			break
		}
		<-w
	}
	nodes, err := recipes.NewInterProcessMutex(billing, path).Participants(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, n := range nodes {
		fmt.Printf("%s %s holds=%v ours=%v\n", n.Kind, n.ID(), n.Holds, n.SessionID == billing.SessionID())
	}

	info, err := recipes.InspectLock(ctx, billing, path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d holder, %d waiter\n", info.Recipe, len(info.Holders()), len(info.Waiters()))
	// Output:
	// mutex billing-1 holds=true ours=true
	// mutex billing-2 holds=false ours=false
	// mutex: 1 holder, 1 waiter
}
