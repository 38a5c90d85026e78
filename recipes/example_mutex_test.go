package recipes_test

import (
	"context"
	"fmt"
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
