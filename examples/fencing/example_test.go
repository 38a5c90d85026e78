package fencing_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/gocurator/curator/examples/fencing"
	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// put writes body to url with a fencing token, and returns the response's status.
func put(url string, token int64, body string) string {
	req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	req.Header.Set(fencing.TokenHeader, strconv.FormatInt(token, 10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	resp.Body.Close()
	return resp.Status
}

// Two processes take turns at one lock and write to a store that checks fencing tokens. The first
// holder stalls (a GC pause, say) while its session ends and the lock goes to the second; when it
// wakes and writes, the store turns it away: its token is older than one it has accepted.
func Example() {
	srv, err := zktest.StartServer() // a throwaway ZooKeeper; use your ensemble's address instead
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	store := httptest.NewServer(new(fencing.Store).Handler())
	defer store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	newClient := func() *framework.Client {
		c, err := framework.NewClient(srv.ConnectString(), framework.WithSessionTimeout(10*time.Second))
		if err != nil {
			panic(err)
		}
		c.Start()
		return c
	}
	path := srv.Root() + "/locks/report"

	first := newClient()
	lease, err := recipes.NewInterProcessMutex(first, path).Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	stale := lease.Token()
	fmt.Println("first writes:", put(store.URL+"/report", stale, "draft 1"))

	// The first holder stalls; its session ends (here: its client is closed) and the lock moves on.
	first.Close()
	second := newClient()
	defer second.Close()
	lease2, err := recipes.NewInterProcessMutex(second, path).Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer lease2.Release()
	fmt.Println("second writes:", put(store.URL+"/report", lease2.Token(), "final"))

	// The first wakes and writes with the token it had.
	fmt.Println("first, late:", put(store.URL+"/report", stale, "draft 2"))
	// Output:
	// first writes: 204 No Content
	// second writes: 204 No Content
	// first, late: 409 Conflict
}
