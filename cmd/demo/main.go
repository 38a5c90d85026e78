// Command demo starts a throwaway local ZooKeeper server (or uses the ensemble in ZK_SERVERS) and
// has several workers, each with a ZooKeeper session of its own, take turns on one
// InterProcessMutex, printing who holds it and the fencing token of each hold.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

func main() {
	workers := flag.Int("workers", 4, "number of workers, each with its own session")
	turns := flag.Int("turns", 3, "how many times each worker takes the lock")
	flag.Parse()
	if err := run(*workers, *turns); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(workers, turns int) error {
	fmt.Println("starting ZooKeeper...")
	srv, err := zktest.StartServer()
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Printf("ZooKeeper is up at %s\n", srv.ConnectString())

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lockPath := srv.Root() + "/demo/lock"

	var (
		printMu   sync.Mutex
		lastToken int64
		wg        sync.WaitGroup
		errs      = make(chan error, workers)
	)
	for w := 1; w <= workers; w++ {
		c, err := framework.NewClient(srv.ConnectString(), framework.WithSessionTimeout(10*time.Second))
		if err != nil {
			return err
		}
		if err := c.Start(); err != nil {
			return err
		}
		defer c.Close()
		if err := c.BlockUntilConnected(ctx); err != nil {
			return err
		}
		mutex := recipes.NewInterProcessMutex(c, lockPath)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for turn := 1; turn <= turns; turn++ {
				lease, err := mutex.Acquire(ctx)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				printMu.Lock()
				order := "increasing"
				if lease.Token() <= lastToken {
					order = "NOT INCREASING"
				}
				lastToken = lease.Token()
				_, node := framework.SplitPath(lease.Node())
				fmt.Printf("worker %d (session 0x%x) holds the lock, turn %d: fencing token %d (%s), node %s\n",
					w, c.SessionID(), turn, lease.Token(), order, node)
				printMu.Unlock()
				time.Sleep(50 * time.Millisecond) // the work the lock protects
				if err := lease.Release(); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("done: %d workers took %d turns each, one holder at a time\n", workers, turns)
	return nil
}
