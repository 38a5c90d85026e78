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

func ExampleMultiLock() {
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
	alice, bob := srv.Root()+"/accounts/alice", srv.Root()+"/accounts/bob"

	// A transfer holds both accounts; every process takes them in the same order.
	transfer := recipes.NewMultiLockPaths(client, alice, bob)
	lease, err := transfer.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("holding both; token > 0:", lease.Token() > 0)
	lease.Release()

	// Someone else holds bob: a transfer that cannot have both by its deadline takes neither.
	other, err := recipes.NewInterProcessMutex(client, bob).Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = transfer.Acquire(short)
	cancelShort()
	fmt.Println("timed out:", errors.Is(err, context.DeadlineExceeded))
	free, err := recipes.NewInterProcessMutex(client, alice).TryAcquire(ctx)
	fmt.Println("alice left free:", err == nil)
	free.Release()
	other.Release()
	// Output:
	// holding both; token > 0: true
	// timed out: true
	// alice left free: true
}
