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

func ExampleLeaderSelector() {
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

	var selector *recipes.LeaderSelector
	leading := make(chan struct{})
	selector = recipes.NewLeaderSelector(client, srv.Root()+"/leader/reports", func(ctx context.Context) error {
		// This runs only while this participant leads. ctx is cancelled the moment leadership may
		// be lost, or when the selector is closed; returning gives leadership up.
		token, _ := recipes.LeadershipToken(ctx) // fences the leader's writes
		ps, err := selector.Participants(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("leading: %+v, token > 0: %v\n", ps, token > 0)
		close(leading)
		<-ctx.Done()
		fmt.Println("stepping down, not the leader:", errors.Is(context.Cause(ctx), recipes.ErrNotLeader))
		return nil
	}, recipes.WithSelectorID("reporter-1"))
	if err := selector.Start(); err != nil {
		fmt.Println(err)
		return
	}
	<-leading
	if err := selector.Close(); err != nil { // waits for the function to return
		fmt.Println(err)
	}
	fmt.Println("leads after Close:", selector.HasLeadership())
	// Output:
	// leading: [{ID:reporter-1 IsLeader:true}], token > 0: true
	// stepping down, not the leader: true
	// leads after Close: false
}
