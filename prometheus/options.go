package curatorprom

import (
	"fmt"
	"math"
	"regexp"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gocurator/curator/framework"
)

// ErrInvalidOption is wrapped by the error that New's Observer reports (Err, and Register) when
// an option was given a bad value; the error's text names the value. It is
// framework.ErrInvalidArgument, so errors.Is matches either.
var ErrInvalidOption = framework.ErrInvalidArgument

// DefaultNamespace prefixes every metric's name unless WithNamespace says otherwise.
const DefaultNamespace = "gocurator"

// DefaultBuckets are the buckets, in seconds, of the acquire-wait and hold-duration histograms:
// from a millisecond (an uncontended acquire on a near server) to ten minutes (a long hold).
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 600}

// DefaultRequestBuckets are the buckets, in seconds, of the request-duration histogram: from
// 100µs to ten seconds.
var DefaultRequestBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10}

// Option configures an Observer. Options are applied in order; a later one overrides an earlier
// one of the same kind.
type Option func(*config)

type config struct {
	namespace      string
	pathLabel      bool
	buckets        []float64
	requestBuckets []float64
	constLabels    prometheus.Labels
	err            error
}

func (c *config) fail(err error) {
	if c.err == nil {
		c.err = err
	}
}

// WithPathLabel adds a "path" label, the recipe's lock path, to the recipe metrics (acquires,
// holds, waiters, leadership). It is off by default: lock paths are as many as the application
// makes, and each path multiplies the series of every recipe metric. Turn it on only when the
// lock paths are few and fixed. Request metrics never carry a path: request paths include
// sequential node names, which never repeat.
func WithPathLabel() Option {
	return func(c *config) { c.pathLabel = true }
}

// WithNamespace sets the prefix of every metric's name (DefaultNamespace, "gocurator", unless
// set). The empty namespace means no prefix. A namespace that is not a valid Prometheus metric
// name is an error wrapping ErrInvalidOption.
func WithNamespace(ns string) Option {
	return func(c *config) {
		if ns != "" && !metricNameRE.MatchString(ns) {
			c.fail(fmt.Errorf("curatorprom: namespace %q is not a valid metric name prefix: %w", ns, ErrInvalidOption))
			return
		}
		c.namespace = ns
	}
}

// WithBuckets sets the upper bounds, in seconds, of the acquire-wait and hold-duration
// histograms' buckets (DefaultBuckets unless set). They must be at least one, finite and strictly
// increasing; otherwise the error wraps ErrInvalidOption.
func WithBuckets(upperBounds ...float64) Option {
	return func(c *config) {
		if err := checkBuckets("WithBuckets", upperBounds); err != nil {
			c.fail(err)
			return
		}
		c.buckets = append([]float64(nil), upperBounds...)
	}
}

// WithRequestBuckets sets the upper bounds, in seconds, of the request-duration histogram's
// buckets (DefaultRequestBuckets unless set), under the same rules as WithBuckets.
func WithRequestBuckets(upperBounds ...float64) Option {
	return func(c *config) {
		if err := checkBuckets("WithRequestBuckets", upperBounds); err != nil {
			c.fail(err)
			return
		}
		c.requestBuckets = append([]float64(nil), upperBounds...)
	}
}

// WithConstLabels adds labels with fixed values to every metric, such as the name of the client
// when a process runs several, each with an Observer of its own registered in one registry. A
// label name that is not valid, starts with "__", or is one of the Observer's own labels is an
// error wrapping ErrInvalidOption. Later calls add to the labels of earlier ones.
func WithConstLabels(labels map[string]string) Option {
	return func(c *config) {
		for name, value := range labels {
			if !labelNameRE.MatchString(name) || len(name) >= 2 && name[:2] == "__" {
				c.fail(fmt.Errorf("curatorprom: const label name %q is not a valid label name: %w", name, ErrInvalidOption))
				return
			}
			if reservedLabels[name] {
				c.fail(fmt.Errorf("curatorprom: const label name %q is one of the observer's own labels: %w", name, ErrInvalidOption))
				return
			}
			if c.constLabels == nil {
				c.constLabels = prometheus.Labels{}
			}
			c.constLabels[name] = value
		}
	}
}

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

var reservedLabels = map[string]bool{
	"recipe": true, "path": true, "op": true, "outcome": true, "end": true, "reason": true,
	"change": true, "state": true, "event": true, "le": true,
}

func checkBuckets(opt string, b []float64) error {
	if len(b) == 0 {
		return fmt.Errorf("curatorprom: %s: no buckets: %w", opt, ErrInvalidOption)
	}
	for i, v := range b {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("curatorprom: %s: bucket %v is not finite: %w", opt, v, ErrInvalidOption)
		}
		if i > 0 && v <= b[i-1] {
			return fmt.Errorf("curatorprom: %s: bucket %v does not exceed the one before it, %v: %w", opt, v, b[i-1], ErrInvalidOption)
		}
	}
	return nil
}
