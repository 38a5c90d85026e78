package framework_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/zktest"
)

func ExampleNewClient() {
	// A ZooKeeper server for the example; a program would name its ensemble instead.
	srv, err := zktest.StartServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	c, err := framework.NewClient(srv.ConnectString(),
		framework.WithSessionTimeout(4*time.Second),
		framework.WithNamespace(srv.Root()+"/example"))
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
	fmt.Println("state:", c.State())

	created, err := c.Create(ctx, "/config/greeting", []byte("hello"), framework.Persistent, framework.WithParents())
	if err != nil {
		fmt.Println(err)
		return
	}
	data, stat, err := c.Get(ctx, created.Path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s = %q (version %d)\n", created.Path, data, stat.Version)
	// Output:
	// state: CONNECTED
	// /config/greeting = "hello" (version 0)
}
