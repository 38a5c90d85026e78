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
