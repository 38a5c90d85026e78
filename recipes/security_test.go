package recipes

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/retry"
	"github.com/gocurator/curator/zktest"
)

// tlsDialer returns a go-zookeeper dialer that connects to s over TLS with its client config.
func tlsDialer(s *zktest.Server) zk.Dialer {
	return func(network, address string, timeout time.Duration) (net.Conn, error) {
		cfg := s.ClientTLSConfig()
		host, _, _ := net.SplitHostPort(address)
		cfg.ServerName = host
		return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, network, address, cfg)
	}
}

// Under a TLS or credentials failure that never clears, every blocking call of a recipe returns
// within about a second of its context ending, with a connection timeout and a retry policy far
// longer than that, and Close returns at once.
func TestSecurityRecipesReturnWithTheirContext(t *testing.T) {
	s := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{}))
	other, err := zktest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	wrongCA := s.ClientTLSConfig()
	wrongCA.RootCAs = other.Pool()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		for _, c := range held {
			c.Close()
		}
	})
	modes := []struct {
		name string
		addr string
		opts []framework.Option
	}{
		{"server certificate of an unknown CA", s.SecureConnectString(), []framework.Option{framework.WithTLS(wrongCA)}},
		{"TLS handshake that never ends", silent.Addr().String(), []framework.Option{framework.WithTLS(s.ClientTLSConfig())}},
		{"credentials refused", s.SecureConnectString(), []framework.Option{framework.WithTLS(s.ClientTLSConfig()), framework.WithAuth("nosuch", []byte("x"))}},
	}
	calls := []struct {
		name string
		call func(ctx context.Context, c *framework.Client, path string) error
	}{
		{"InterProcessMutex.Acquire", func(ctx context.Context, c *framework.Client, p string) error {
			_, err := NewInterProcessMutex(c, p).Acquire(ctx)
			return err
		}},
		{"Semaphore.Acquire", func(ctx context.Context, c *framework.Client, p string) error {
			_, err := NewSemaphore(c, p, 2).Acquire(ctx, 1)
			return err
		}},
		{"ReadLock.Acquire", func(ctx context.Context, c *framework.Client, p string) error {
			_, err := NewReadWriteLock(c, p).ReadLock().Acquire(ctx)
			return err
		}},
		{"MultiLock.Acquire", func(ctx context.Context, c *framework.Client, p string) error {
			_, err := NewMultiLockPaths(c, p+"/a", p+"/b").Acquire(ctx)
			return err
		}},
		{"LeaderLatch.Await", func(ctx context.Context, c *framework.Client, p string) error {
			l := NewLeaderLatch(c, p)
			if err := l.Start(); err != nil {
				return err
			}
			defer l.Close()
			return l.Await(ctx)
		}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c, err := framework.NewClient(m.addr, append([]framework.Option{
				framework.WithConnectionTimeout(time.Minute),
				framework.WithSessionTimeout(testSessionTimeout),
				framework.WithRetryPolicy(retry.UntilElapsed(time.Hour, 50*time.Millisecond)),
			}, m.opts...)...)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			for _, call := range calls {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				start := time.Now()
				err := call.call(ctx, c, s.Root()+"/security/ctx/"+call.name)
				took := time.Since(start)
				cancel()
				t.Logf("%s: %v after %v", call.name, err, took.Round(time.Millisecond))
				if err == nil || took > 2*time.Second {
					t.Errorf("%s: %v after %v with a context of 1s", call.name, err, took)
				}
			}
			start := time.Now()
			c.Close()
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Close took %v", took)
			}
		})
	}
}
