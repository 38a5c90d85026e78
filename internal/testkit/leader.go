package testkit

import (
	"sync"
	"testing"
	"time"
)

// Leader is what a participant of an election offers a sampler: whether it believes it leads
// now (recipes' LeaderLatch and LeaderSelector).
type Leader interface {
	HasLeadership() bool
}

// Leading returns the indexes of the participants that lead now, in order.
func Leading[L Leader](ls []L) []int {
	var out []int
	for i, l := range ls {
		if l.HasLeadership() {
			out = append(out, i)
		}
	}
	return out
}

// LeaderSample is one look at every participant of an election.
type LeaderSample[T any] struct {
	At      time.Time // when the look began
	Leaders []T       // those that led at the look
}

// LeaderSampler looks at an election every interval, on a goroutine of its own, until it is
// stopped (at the latest when its test ends). It keeps every look.
type LeaderSampler[T any] struct {
	mu      sync.Mutex // held during a look; Lock holds the looks off
	samples []LeaderSample[T]
	errs    []error
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// SampleLeaders starts a LeaderSampler that calls look at once and then every interval; look
// returns the participants that lead, and an error that the sampler keeps for Check. A
// non-positive interval is taken as 10ms; a nil look fails t at once and samples nothing.
func SampleLeaders[T any](t testing.TB, interval time.Duration, look func() ([]T, error)) *LeaderSampler[T] {
	t.Helper()
	s := &LeaderSampler[T]{stop: make(chan struct{}), done: make(chan struct{})}
	if look == nil {
		t.Error("SampleLeaders: nil look")
		close(s.done)
		return s
	}
	if interval <= 0 {
		interval = 10 * time.Millisecond
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			s.mu.Lock()
			at := time.Now()
			leaders, err := look()
			s.samples = append(s.samples, LeaderSample[T]{At: at, Leaders: leaders})
			if err != nil {
				s.errs = append(s.errs, err)
			}
			s.mu.Unlock()
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { s.Stop() })
	return s
}

// Lock waits for the look under way, if any, and holds off the next until Unlock: a test holds
// it while it changes what look looks at (closes a participant, say), so that no change falls
// between the parts of one look.
func (s *LeaderSampler[T]) Lock() { s.mu.Lock() }

// Unlock lets the looks go on.
func (s *LeaderSampler[T]) Unlock() { s.mu.Unlock() }

// Stop stops the looks (it may be called more than once) and returns them all, in order.
func (s *LeaderSampler[T]) Stop() []LeaderSample[T] {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// Check stops the looks and fails t for every error of look, for every look that found two or
// more leaders at once, and when no look was taken. It returns the looks, in order.
func (s *LeaderSampler[T]) Check(t testing.TB) []LeaderSample[T] {
	t.Helper()
	samples := s.Stop()
	s.mu.Lock()
	errs := s.errs
	s.mu.Unlock()
	for _, err := range errs {
		t.Error(err)
	}
	for _, x := range samples {
		if len(x.Leaders) > 1 {
			t.Errorf("%v: %v lead at once", x.At.Format("15:04:05.000"), x.Leaders)
		}
	}
	if len(samples) == 0 {
		t.Error("no look at the leaders was taken")
	}
	return samples
}
