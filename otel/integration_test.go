package curatorotel

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/zktest"
)

// On a real server, a grant and a release of a mutex make an acquire span and a hold span, in
// that order, each naming the lock's path and node.
func TestIntegrationAcquireAndHoldSpans(t *testing.T) {
	srv := zktest.Start(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())

	c, err := framework.NewClient(srv.ConnectString(), framework.WithObserver(New(WithTracerProvider(tp))))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	path := srv.Root() + "/curatorotel/lock"
	lease, err := recipes.NewInterProcessMutex(c, path).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := lease.Node()
	if err := lease.Release(); err != nil {
		t.Fatal(err)
	}

	spans := rec.Ended()
	want := []struct {
		name string
		attr attribute.KeyValue
	}{
		{SpanAcquire, AttrOutcome.String("granted")},
		{SpanHold, AttrEnd.String("released")},
	}
	if len(spans) != len(want) {
		t.Fatalf("%d spans, want %d", len(spans), len(want))
	}
	for i, w := range want {
		s := spans[i]
		attrs := map[attribute.Key]attribute.Value{}
		for _, kv := range s.Attributes() {
			attrs[kv.Key] = kv.Value
		}
		if s.Name() != w.name || attrs[w.attr.Key] != w.attr.Value {
			t.Errorf("span %d: %s %v, want %s with %v", i, s.Name(), attrs, w.name, w.attr)
		}
		if attrs[AttrPath].AsString() != path || attrs[AttrNode].AsString() != node || attrs[AttrSessionID].AsString() == "" {
			t.Errorf("span %d: attributes %v, want path %s, node %s and a session", i, attrs, path, node)
		}
	}
}
