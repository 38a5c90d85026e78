package fencing

import (
	"errors"
	"testing"
)

// step is one request to the store and whether it must be accepted.
type step struct {
	write bool
	token int64
	ok    bool
}

func TestStoreRules(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"writes never go back", []step{{true, 5, true}, {true, 5, true}, {true, 9, true}, {true, 7, false}}},
		{"a read older than a write is stale", []step{{true, 10, true}, {false, 8, false}, {false, 12, true}, {false, 11, true}}},
		{"a write older than a read is stale", []step{{false, 20, true}, {true, 15, false}, {true, 21, true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			for i, st := range tt.steps {
				var err error
				if st.write {
					err = s.Write("r", st.token, []byte("x"))
				} else {
					_, err = s.Read("r", st.token)
				}
				if (err == nil) != st.ok || (err != nil && !errors.Is(err, ErrStaleToken)) {
					t.Errorf("step %d (write %v, token %d): %v, want ok=%v", i, st.write, st.token, err, st.ok)
				}
			}
		})
	}
}
