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

func ExampleReadWriteLock() {
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
	rw := recipes.NewReadWriteLock(client, srv.Root()+"/locks/catalog")

	// Readers share the lock.
	r1, err := rw.ReadLock().Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	r2, err := rw.ReadLock().Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("two readers:", r1.Err() == nil && r2.Err() == nil)

	// A writer waits for them (TryAcquire does not wait).
	_, err = rw.WriteLock().TryAcquire(ctx)
	fmt.Println("writer while they read:", errors.Is(err, recipes.ErrLocked))
	r1.Release()
	r2.Release()

	// Write, then downgrade: the write lease's context takes the read lock at once, and the read
	// lock stays when the write lock is released.
	w, err := rw.WriteLock().Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	r, err := rw.ReadLock().Acquire(w.Context())
	if err != nil {
		fmt.Println(err)
		return
	}
	w.Release()
	fmt.Println("still reading after the write release:", r.Err() == nil)
	r.Release()
	// Output:
	// two readers: true
	// writer while they read: true
	// still reading after the write release: true
}
