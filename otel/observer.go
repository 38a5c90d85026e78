// Package curatorotel traces a gocurator client's recipes with OpenTelemetry: a span for each
// acquire (its wait), each hold, and each term of leadership. It lives in the directory otel/, a
// module of its own (github.com/gocurator/curator/otel), so that the core module does not depend
// on OpenTelemetry; its package name is curatorotel, so that it does not clash with
// go.opentelemetry.io/otel in the code that uses both.
//
//	obs := curatorotel.New(curatorotel.WithTracerProvider(tp))
//	client, err := framework.NewClient(servers, framework.WithObserver(obs))
//
// The events carry durations, not contexts, so each span is made when its event arrives, starting
// that duration before it, and is the root of a trace of its own:
//
//	gocurator.acquire  from an acquire's start to its return; gocurator.outcome is granted,
//	                   timeout, canceled, locked or error (the span's status is Error for error)
//	gocurator.hold     from a grant to the hold's end; gocurator.end is released or lost, and a
//	                   lost hold's gocurator.lost_reason is suspended, session_lost, closed or
//	                   other (the span's status is Error when lost)
//	gocurator.lead     a term of leadership of a latch or a selector, from its start to its end
//
// Every span has the attributes gocurator.recipe and gocurator.path (the lock path), and, where
// the event has them, gocurator.node and gocurator.session_id. Requests, connection states and
// background deletes make no spans: see the curatorprom module for their metrics.
package curatorotel

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// ErrInvalidOption is wrapped by Err when an option was given a bad value; the error's text
// names it. It is framework.ErrInvalidArgument.
var ErrInvalidOption = framework.ErrInvalidArgument

// TracerName is the instrumentation scope of the spans.
const TracerName = "github.com/gocurator/curator/otel"

// The span names.
const (
	SpanAcquire = "gocurator.acquire"
	SpanHold    = "gocurator.hold"
	SpanLead    = "gocurator.lead"
)

// The attribute keys.
const (
	AttrRecipe     = attribute.Key("gocurator.recipe")
	AttrPath       = attribute.Key("gocurator.path")
	AttrNode       = attribute.Key("gocurator.node")
	AttrSessionID  = attribute.Key("gocurator.session_id")
	AttrOutcome    = attribute.Key("gocurator.outcome")
	AttrEnd        = attribute.Key("gocurator.end")
	AttrLostReason = attribute.Key("gocurator.lost_reason")
)

// Option configures an Observer.
type Option func(*config)

type config struct {
	tp  trace.TracerProvider
	err error
}

// WithTracerProvider sets the provider of the Observer's tracer (otel.GetTracerProvider() at the
// time of New, unless set). nil is an error wrapping ErrInvalidOption.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp == nil {
			if c.err == nil {
				c.err = fmt.Errorf("curatorotel: WithTracerProvider(nil): %w", ErrInvalidOption)
			}
			return
		}
		c.tp = tp
	}
}

// Observer makes spans of a client's recipe events (framework.Observer). It is safe for
// concurrent use, and a nil *Observer ignores every event.
type Observer struct {
	tracer trace.Tracer
	err    error
}

// New returns an Observer configured by opts (nil options are skipped). An option given a bad
// value does not panic: the Observer then ignores every event, and Err returns the error.
func New(opts ...Option) *Observer {
	var cfg config
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.err != nil {
		return &Observer{err: cfg.err}
	}
	if cfg.tp == nil {
		cfg.tp = otel.GetTracerProvider()
	}
	return &Observer{tracer: cfg.tp.Tracer(TracerName)}
}

// Err returns the error of a bad option given to New (wrapping ErrInvalidOption), or nil.
func (o *Observer) Err() error {
	if o == nil {
		return errors.New("curatorotel: nil *Observer")
	}
	return o.err
}

// Observe makes the span that e ends, if any (framework.Observer). A negative Duration counts as
// zero.
func (o *Observer) Observe(e framework.Event) {
	if o == nil || o.err != nil {
		return
	}
	switch e.Kind {
	case framework.EventAcquireGranted:
		o.span(SpanAcquire, e, nil, AttrOutcome.String("granted"))
	case framework.EventAcquireFailed:
		out := recipes.AcquireOutcome(e.Err)
		var fail error
		if out == "error" {
			fail = e.Err
		}
		o.span(SpanAcquire, e, fail, AttrOutcome.String(out))
	case framework.EventHoldEnded:
		if e.Err == nil || errors.Is(e.Err, recipes.ErrReleased) {
			o.span(SpanHold, e, nil, AttrEnd.String("released"))
		} else {
			o.span(SpanHold, e, e.Err, AttrEnd.String("lost"), AttrLostReason.String(recipes.LostReason(e.Err)))
		}
	case framework.EventLeadershipLost:
		o.span(SpanLead, e, nil)
	}
}

// span records a span named name that ended now and lasted e.Duration; fail, if not nil, is
// recorded as its error and sets its status to Error.
func (o *Observer) span(name string, e framework.Event, fail error, extra ...attribute.KeyValue) {
	end := time.Now()
	d := max(e.Duration, 0)
	attrs := make([]attribute.KeyValue, 0, 4+len(extra))
	attrs = append(attrs, AttrRecipe.String(e.Recipe), AttrPath.String(e.Path))
	if e.Node != "" {
		attrs = append(attrs, AttrNode.String(e.Node))
	}
	if e.SessionID != 0 {
		attrs = append(attrs, AttrSessionID.String("0x"+strconv.FormatUint(uint64(e.SessionID), 16)))
	}
	attrs = append(attrs, extra...)
	_, span := o.tracer.Start(context.Background(), name,
		trace.WithNewRoot(), trace.WithTimestamp(end.Add(-d)),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	if fail != nil {
		span.RecordError(fail)
		span.SetStatus(codes.Error, fail.Error())
	}
	span.End(trace.WithTimestamp(end))
}
