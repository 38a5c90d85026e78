package goid

import "testing"

func TestCurrentTellsGoroutinesApart(t *testing.T) {
	here := Current()
	if here == 0 {
		t.Fatal("Current() = 0 on the test goroutine")
	}
	if again := Current(); again != here {
		t.Fatalf("Current() = %d, then %d on the same goroutine", here, again)
	}
	other := make(chan uint64)
	go func() { other <- Current() }()
	if id := <-other; id == 0 || id == here {
		t.Fatalf("another goroutine's id = %d, this one's %d", id, here)
	}
}

func TestMarkCallbacks(t *testing.T) {
	if InCallback() {
		t.Fatal("InCallback on an unmarked goroutine")
	}
	in := make(chan bool)
	marked := make(chan struct{})
	done := make(chan struct{})
	go func() {
		unmark := MarkCallbacks()
		close(marked)
		in <- InCallback()
		unmark()
		in <- InCallback()
		close(done)
	}()
	<-marked
	if InCallback() {
		t.Error("another goroutine's mark counts here")
	}
	if !<-in {
		t.Error("InCallback false on the marked goroutine")
	}
	if <-in {
		t.Error("InCallback true after unmark")
	}
	<-done
}
