package zktest_test

import (
	"fmt"
	"log"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/zktest"
)

func ExampleStartServer() {
	s, err := zktest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	reply, err := s.FourLetter("ruok")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(reply)
	// Output: imok
}

// quietLogger discards go-zookeeper's log messages.
type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

func ExampleProxy_CutAfterNextCreate() {
	s, err := zktest.StartServer()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	p, err := zktest.NewProxy(s.Addr())
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// One client goes through the proxy, the other straight to the server.
	viaProxy, _, err := zk.Connect([]string{p.Addr()}, 2*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		log.Fatal(err)
	}
	defer viaProxy.Close()
	direct, _, err := zk.Connect(s.Servers(), 2*time.Second, zk.WithLogger(quietLogger{}))
	if err != nil {
		log.Fatal(err)
	}
	defer direct.Close()

	path := s.Root() + "/lost-reply"
	cut := p.CutAfterNextCreate()
	_, err = viaProxy.Create(path, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
	fmt.Println("create:", err)
	<-cut
	exists, _, err := direct.Exists(path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("exists:", exists)
	// Output:
	// create: zk: connection closed
	// exists: true
}
