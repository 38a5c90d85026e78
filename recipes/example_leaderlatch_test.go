package recipes_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// Two service instances elect a leader; when the leader leaves, the other takes over at once.
func ExampleLeaderLatch() {
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	connect := func() *framework.Client {
		c, err := framework.NewClient(srv.ConnectString(), framework.WithSessionTimeout(2*time.Second))
		if err != nil {
			panic(err)
		}
		if err := c.Start(); err != nil {
			panic(err)
		}
		if err := c.BlockUntilConnected(ctx); err != nil {
			panic(err)
		}
		return c
	}
	clientA, clientB := connect(), connect()
	defer clientA.Close()
	defer clientB.Close()

	path := srv.Root() + "/services/billing/leader"
	a := recipes.NewLeaderLatch(clientA, path, recipes.WithParticipantID("billing-a"))
	b := recipes.NewLeaderLatch(clientB, path, recipes.WithParticipantID("billing-b"))
	told := make(chan string, 4)
	b.AddListener(recipes.LeaderLatchListenerFuncs{
		OnIsLeader:  func() { told <- "billing-b: IsLeader" },
		OnNotLeader: func() { told <- "billing-b: NotLeader" },
	})

	if err := a.Start(); err != nil {
		panic(err)
	}
	if err := a.Await(ctx); err != nil {
		panic(err)
	}
	if err := b.Start(); err != nil {
		panic(err)
	}
	for b.OurPath() == "" { // wait until b has queued
		time.Sleep(10 * time.Millisecond)
	}
	participants, err := b.Participants(ctx)
	if err != nil {
		panic(err)
	}
	for _, p := range participants {
		fmt.Printf("%s leader=%v\n", p.ID, p.IsLeader)
	}

	// The leader's work runs under a context that ends when its leadership does.
	term := a.LeadershipContext()
	if err := a.Close(); err != nil { // deletes a's node: b takes over without waiting
		panic(err)
	}
	fmt.Println("billing-a term over:", term.Err() != nil)
	if err := b.Await(ctx); err != nil {
		panic(err)
	}
	fmt.Println(<-told)
	leader, err := b.Leader(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("leader:", leader.ID)
	if err := b.Close(); err != nil {
		panic(err)
	}
	// Output:
	// billing-a leader=true
	// billing-b leader=false
	// billing-a term over: true
	// billing-b: IsLeader
	// leader: billing-b
}
