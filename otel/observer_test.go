package curatorotel

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSpans(t *testing.T) {
	lost := func(cause error) error { return fmt.Errorf("%w: %w", recipes.ErrLockLost, cause) }
	type span struct {
		name   string
		d      time.Duration
		attrs  map[attribute.Key]string
		status codes.Code
	}
	tests := []struct {
		name  string
		event framework.Event
		want  []span // nil: no span
	}{
		{"no kind", framework.Event{}, nil},
		{"acquire started", framework.Event{Kind: framework.EventAcquireStarted, Recipe: "mutex", Path: "/l"}, nil},
		{"request", framework.Event{Kind: framework.EventRequest, Op: "create", Duration: time.Millisecond}, nil},
		{"leadership gained", framework.Event{Kind: framework.EventLeadershipGained, Recipe: "leader-latch", Path: "/e"}, nil},
		{"granted",
			framework.Event{Kind: framework.EventAcquireGranted, Recipe: "mutex", Path: "/l", Node: "/l/n-1", SessionID: 255, Duration: time.Second},
			[]span{{SpanAcquire, time.Second, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrNode: "/l/n-1", AttrSessionID: "0xff", AttrOutcome: "granted"}, codes.Unset}}},
		{"timeout",
			framework.Event{Kind: framework.EventAcquireFailed, Recipe: "mutex", Path: "/l", Duration: 2 * time.Second, Err: fmt.Errorf("acquire: %w", context.DeadlineExceeded)},
			[]span{{SpanAcquire, 2 * time.Second, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrOutcome: "timeout"}, codes.Unset}}},
		{"canceled",
			framework.Event{Kind: framework.EventAcquireFailed, Recipe: "semaphore", Path: "/l", Err: context.Canceled},
			[]span{{SpanAcquire, 0, map[attribute.Key]string{AttrRecipe: "semaphore", AttrPath: "/l", AttrOutcome: "canceled"}, codes.Unset}}},
		{"locked",
			framework.Event{Kind: framework.EventAcquireFailed, Recipe: "mutex", Path: "/l", Err: recipes.ErrLocked},
			[]span{{SpanAcquire, 0, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrOutcome: "locked"}, codes.Unset}}},
		{"error",
			framework.Event{Kind: framework.EventAcquireFailed, Recipe: "mutex", Path: "/l", Duration: -time.Second, Err: framework.ErrClosed},
			[]span{{SpanAcquire, 0, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrOutcome: "error"}, codes.Error}}},
		{"released",
			framework.Event{Kind: framework.EventHoldEnded, Recipe: "write-lock", Path: "/l", Node: "/l/n-1", SessionID: 1, Duration: 3 * time.Second, Err: recipes.ErrReleased},
			[]span{{SpanHold, 3 * time.Second, map[attribute.Key]string{AttrRecipe: "write-lock", AttrPath: "/l", AttrNode: "/l/n-1", AttrSessionID: "0x1", AttrEnd: "released"}, codes.Unset}}},
		{"lost at suspended",
			framework.Event{Kind: framework.EventHoldEnded, Recipe: "mutex", Path: "/l", Duration: time.Second, Err: lost(framework.ErrSuspended)},
			[]span{{SpanHold, time.Second, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrEnd: "lost", AttrLostReason: "suspended"}, codes.Error}}},
		{"lost with the session",
			framework.Event{Kind: framework.EventHoldEnded, Recipe: "mutex", Path: "/l", Err: lost(framework.ErrSessionLost)},
			[]span{{SpanHold, 0, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrEnd: "lost", AttrLostReason: "session_lost"}, codes.Error}}},
		{"lost to a close",
			framework.Event{Kind: framework.EventHoldEnded, Recipe: "mutex", Path: "/l", Err: lost(framework.ErrClosed)},
			[]span{{SpanHold, 0, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrEnd: "lost", AttrLostReason: "closed"}, codes.Error}}},
		{"lost otherwise",
			framework.Event{Kind: framework.EventHoldEnded, Recipe: "mutex", Path: "/l", Err: recipes.ErrLockLost},
			[]span{{SpanHold, 0, map[attribute.Key]string{AttrRecipe: "mutex", AttrPath: "/l", AttrEnd: "lost", AttrLostReason: "other"}, codes.Error}}},
		{"a term of leadership",
			framework.Event{Kind: framework.EventLeadershipLost, Recipe: "leader-latch", Path: "/e", Node: "/e/n-2", SessionID: 16, Duration: time.Minute, Err: framework.ErrClosed},
			[]span{{SpanLead, time.Minute, map[attribute.Key]string{AttrRecipe: "leader-latch", AttrPath: "/e", AttrNode: "/e/n-2", AttrSessionID: "0x10"}, codes.Unset}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			defer tp.Shutdown(context.Background())
			o := New(WithTracerProvider(tp))
			o.Observe(tt.event)
			got := rec.Ended()
			if len(got) != len(tt.want) {
				t.Fatalf("%d spans, want %d", len(got), len(tt.want))
			}
			for i, w := range tt.want {
				s := got[i]
				if s.Name() != w.name {
					t.Errorf("name %q, want %q", s.Name(), w.name)
				}
				if d := s.EndTime().Sub(s.StartTime()); d != w.d {
					t.Errorf("lasted %v, want %v", d, w.d)
				}
				attrs := map[attribute.Key]string{}
				for _, kv := range s.Attributes() {
					attrs[kv.Key] = kv.Value.AsString()
				}
				if !maps.Equal(attrs, w.attrs) {
					t.Errorf("attributes %v, want %v", attrs, w.attrs)
				}
				if s.Status().Code != w.status {
					t.Errorf("status %v, want %v", s.Status().Code, w.status)
				}
				if s.Parent().IsValid() {
					t.Error("the span has a parent")
				}
			}
		})
	}
}

func TestBadOptions(t *testing.T) {
	o := New(nil, WithTracerProvider(nil))
	if err := o.Err(); !errors.Is(err, ErrInvalidOption) || !strings.Contains(err.Error(), "nil") {
		t.Fatalf("Err() = %v, want one wrapping ErrInvalidOption naming nil", err)
	}
	o.Observe(framework.Event{Kind: framework.EventAcquireGranted}) // ignored, no panic
	var none *Observer
	none.Observe(framework.Event{Kind: framework.EventAcquireGranted})
	if none.Err() == nil {
		t.Error("Err of a nil *Observer is nil")
	}
	if err := New().Err(); err != nil {
		t.Errorf("New() with the global provider: %v", err)
	}
}
