package recipes_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// A write to ZooKeeper that lands only while the lock is held: the guard's check of the holder's
// own node travels in the same transaction.
func ExampleGuard() {
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

	config := srv.Root() + "/config/billing"
	if _, err := client.Create(ctx, config, []byte("v1"), framework.Persistent, framework.WithParents()); err != nil {
		fmt.Println(err)
		return
	}
	mutex := recipes.NewInterProcessMutex(client, srv.Root()+"/locks/billing")
	lease, err := mutex.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	guard := lease.Guard()

	// Commits: the hold stands on the server.
	st, err := guard.Set(ctx, config, []byte("v2"), framework.AnyVersion)
	fmt.Println("while held:", st.Version, err)

	// Several ops, all or none, still only while held.
	_, err = guard.Multi(ctx,
		framework.SetOp(config, []byte("v3"), st.Version),
		framework.CreateOp(config+"-audit", []byte("v3 by billing"), framework.Persistent))
	fmt.Println("transaction:", err)

	// Once the hold is gone on the server (here its node is deleted by hand; an expired session
	// does the same), the server refuses the write, whatever this process believes.
	client.Delete(ctx, lease.Node(), framework.AnyVersion)
	_, err = guard.Set(ctx, config, []byte("stale"), framework.AnyVersion)
	fmt.Println("lost:", errors.Is(err, recipes.ErrLockLost), errors.Is(err, zk.ErrNoNode))

	data, _, _ := client.Get(ctx, config)
	fmt.Println("config:", string(data))
	lease.Release()
	// Output:
	// while held: 1 <nil>
	// transaction: <nil>
	// lost: true true
	// config: v3
}
