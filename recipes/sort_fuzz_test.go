package recipes

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/gocurator/curator/framework"
)

// The order of a queue after ZooKeeper's sequence counter wraps.
//
// ZooKeeper names a sequential node after its parent's cversion, an int32 that every create and
// delete of a child increments, formatted with %010d. After 2147483647 (and after an
// acquire-release pair per lock, that is about a billion acquisitions of one lock whose parent
// is never empty long enough to be reaped) the next name ends in "-2147483648", then
// "-2147483647", ..., "-000000001", "0000000000". sortKey compares these as strings, exactly as
// Curator's String.compareTo does, so:
//
//   - every node with a negative sequence sorts ahead of every node with a non-negative one: the
//     first node created after the wrap goes to the head of the queue, and is granted the lock while
//     the node from before the wrap still holds it;
//   - among negative sequences, the digits of the absolute value sort after the "-": -1
//     ("-000000001") before -2 before ... before -999999999, the reverse of creation order; and
//     the eleven-character ones (-1000000000 and below) fall among those by their digits, left
//     aligned: -1000000000 between -100000000 and -100000001, -2147483648 (the first node after
//     the wrap) between -214748364 and -214748365. So the queue is in neither creation order nor
//     its reverse;
//   - once the counter is back at 0 and beyond, names sort by sequence again among themselves, but
//     still after any negative one left over.
//
// TestSortChildrenAfterSequenceWrap pins down this behaviour (it is Curator's too);
// FuzzSortChildren checks it on fuzzed sequence numbers through wrapOrder.

// fuzzLockNames are the names the recipes sort by.
var fuzzLockNames = []string{lockName, latchName, leaseName, readLockName, writeLockName}

// seqSuffix formats a sequence number as ZooKeeper does.
func seqSuffix(n int32) string { return fmt.Sprintf("%010d", n) }

// wrapOrder compares two sequence numbers in the order their %010d suffixes sort in, as the
// comment above describes it, without comparing the strings themselves.
func wrapOrder(a, b int32) int {
	switch {
	case a >= 0 && b >= 0:
		return cmpInt(int64(a), int64(b))
	case a >= 0:
		return 1 // b < 0 sorts first
	case b >= 0:
		return -1
	}
	// Both negative: "-" then the absolute value, zero-padded to nine digits, or ten digits
	// from 10^9 on; so digits compare left-aligned.
	da, db := fmt.Sprintf("%09d", -int64(a)), fmt.Sprintf("%09d", -int64(b))
	for i := 0; i < len(da) && i < len(db); i++ {
		if da[i] != db[i] {
			return cmpInt(int64(da[i]), int64(db[i]))
		}
	}
	return cmpInt(int64(len(da)), int64(len(db)))
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// javaCompare is Java's String.compareTo on the UTF-16 forms of a and b.
func javaCompare(a, b string) int {
	ua, ub := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return cmpInt(int64(ua[i]), int64(ub[i]))
		}
	}
	return cmpInt(int64(len(ua)), int64(len(ub)))
}

// checkSorted checks that sorted is a permutation of names ordered by key, and that sorting is
// deterministic: the same input gives the same output, and any order of the input gives the same
// sequence of keys.
func checkSorted(t *testing.T, what string, names, sorted []string, key func(string) string, sort func([]string)) {
	t.Helper()
	a, b := slices.Clone(names), slices.Clone(sorted)
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		t.Fatalf("%s of %q = %q: not a permutation", what, names, sorted)
	}
	for i := 1; i < len(sorted); i++ {
		if ka, kb := key(sorted[i-1]), key(sorted[i]); ka > kb {
			t.Fatalf("%s of %q = %q: key %q of %q sorts after key %q of %q", what, names, sorted, ka, sorted[i-1], kb, sorted[i])
		}
	}
	again := slices.Clone(names)
	sort(again)
	if !slices.Equal(again, sorted) {
		t.Fatalf("%s of %q is not deterministic: %q, then %q", what, names, sorted, again)
	}
	reversed := slices.Clone(names)
	slices.Reverse(reversed)
	sort(reversed)
	for i := range sorted {
		if key(reversed[i]) != key(sorted[i]) {
			t.Fatalf("%s of %q = %q, but of its reverse %q: keys differ at %d", what, names, sorted, reversed, i)
		}
	}
}

// nodeNameOK reports whether ZooKeeper accepts name as a node name.
func nodeNameOK(name string) bool {
	return name != "" && !strings.Contains(name, "/") && framework.ValidatePath("/"+name) == nil
}

// FuzzSortChildren checks sortKey, sortChildren and rwSortKey (with lockInternals.sort) on
// arbitrary child names, and on well-formed ones built from fuzzed sequence numbers.
//
// On arbitrary names (data split at newlines), with any lock name:
//   - no panic; the key is a suffix of the name without the lock name in it;
//   - the sorted list is a permutation, in key order, the same for the same input, and the same
//     keys for any order of the input;
//   - for names ZooKeeper accepts, the order is also that of Java's String.compareTo on the keys,
//     as Curator sorts.
//
// On well-formed names (prefix + a recipe's lock name + %010d of an int32 from data; the prefix is
// a protected one for even-numbered names and the fuzzed prefix, which may hold lock names and
// digits, for odd ones), the order is by sequence number for non-negative ones, and as wrapOrder
// says after the wrap; the read-write lock's key orders its read and write nodes in one queue.
func FuzzSortChildren(f *testing.F) {
	seqs := func(ns ...int32) []byte {
		var b []byte
		for _, n := range ns {
			b = binary.BigEndian.AppendUint32(b, uint32(n))
		}
		return b
	}
	f.Add([]byte("lock-0000000002\nlock-0000000001\n_c_0123abcd-0123-4567-89ab-0123456789ab-lock-0000000000"), "lock-", "", uint8(0))
	f.Add([]byte("_c_0123abcd-0123-4567-89ab-0123456789ab-__WRIT__0000000003\n_c_0123abcd-0123-4567-89ab-0123456789ab-__READ__0000000001\n__READ__0000000002"), "__READ__", "", uint8(3))
	f.Add([]byte("lock-\n\nlock-lock-\nlock-x\nx\n-lock-\nlock--2147483648\nlock-2147483647"), "lock-", "_c_lock-0123-4567-89ab-lock-", uint8(0))
	f.Add([]byte("a\nb\na"), "", "", uint8(1))
	f.Add([]byte("\xff\n\uffff\n\U0001F600\n\uf900\nlatch-\ue000"), "latch-", "\xff", uint8(1))
	f.Add(seqs(2147483646, 2147483647, -2147483648, -2147483647, -1, 0, 1), "lock-", "_c_", uint8(0))
	f.Add(seqs(-1000000000, -999999999, -2147483648, -1, -2, -10), "lease-", "lease-0000000009", uint8(2))
	f.Add(seqs(5, 5, 3, 1000000000, 999999999), "__WRIT__", "__READ____WRIT__", uint8(4))
	f.Add(seqs(7, 3, 9, 1), "__WRIT__", "x__READ_", uint8(3))
	f.Add(seqs(7, 3, 9), "latch-", "_c_latch-abcd-4567-89ab-0123456789ab-", uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, anyLockName, prefix string, which uint8) {
		// Arbitrary names.
		names := strings.Split(string(data), "\n")
		for _, n := range names {
			k := sortKey(n, anyLockName)
			if !strings.HasSuffix(n, k) {
				t.Fatalf("sortKey(%q, %q) = %q, not a suffix of the name", n, anyLockName, k)
			}
			if anyLockName != "" && strings.Contains(k, anyLockName) {
				t.Fatalf("sortKey(%q, %q) = %q, which still holds the lock name", n, anyLockName, k)
			}
			if rk := rwSortKey(n); !strings.HasSuffix(n, rk) {
				t.Fatalf("rwSortKey(%q) = %q, not a suffix of the name", n, rk)
			}
		}
		sortBy := func(s []string) { sortChildren(s, anyLockName) }
		sorted := slices.Clone(names)
		sortBy(sorted)
		checkSorted(t, fmt.Sprintf("sortChildren(%q)", anyLockName), names, sorted, func(n string) string { return sortKey(n, anyLockName) }, sortBy)
		var valid []string
		for _, n := range sorted {
			if nodeNameOK(n) {
				valid = append(valid, n)
			}
		}
		for i := 1; i < len(valid); i++ {
			if javaCompare(sortKey(valid[i-1], anyLockName), sortKey(valid[i], anyLockName)) > 0 {
				t.Fatalf("sortChildren(%q) puts %q before %q, unlike Curator's String.compareTo", anyLockName, valid[i-1], valid[i])
			}
		}
		rw := &lockInternals{lockName: writeLockName, key: rwSortKey}
		rwSorted := slices.Clone(names)
		rw.sort(rwSorted)
		checkSorted(t, "read-write sort", names, rwSorted, rwSortKey, rw.sort)

		// Well-formed names from the sequence numbers in data.
		name := fuzzLockNames[int(which)%len(fuzzLockNames)]
		var nums []int32
		for b := data; len(b) >= 4 && len(nums) < 64; b = b[4:] {
			nums = append(nums, int32(binary.BigEndian.Uint32(b)))
		}
		seqOf := map[string]int32{}
		var formed, mixed []string
		for i, n := range nums {
			p := prefix
			if i%2 == 0 {
				p = framework.ProtectedPrefix + "0123abcd-0123-4567-89ab-0123456789ab-"
			}
			node := p + name + seqSuffix(n)
			if _, dup := seqOf[node]; dup {
				continue
			}
			seqOf[node] = n
			formed = append(formed, node)
			// The read-write lock's queue mixes read and write nodes.
			kind := readLockName
			if n%2 != 0 {
				kind = writeLockName
			}
			rwNode := p + kind + seqSuffix(n)
			// A prefix ending in "__READ" or "__READ_" makes a "__READ__" with the start of
			// "__WRIT__", and rwSortKey, stripping up to the last "__READ__" first, loses the
			// write node's sequence (as Curator's fixForSorting does). No recipe makes such a
			// name; it is left out of this property.
			straddles := kind == writeLockName && strings.LastIndex(p+kind, readLockName) > len(p)-len(readLockName)
			if _, dup := seqOf[rwNode]; !dup && !straddles {
				seqOf[rwNode] = n
				mixed = append(mixed, rwNode)
			}
		}
		checkSeqOrder := func(what string, sorted []string) {
			t.Helper()
			for i := 1; i < len(sorted); i++ {
				a, b := seqOf[sorted[i-1]], seqOf[sorted[i]]
				if wrapOrder(a, b) > 0 {
					t.Fatalf("%s puts %q (sequence %d) before %q (sequence %d): %q", what, sorted[i-1], a, sorted[i], b, sorted)
				}
				if a >= 0 && b >= 0 && a > b {
					t.Fatalf("%s puts sequence %d before %d", what, a, b)
				}
			}
		}
		sortChildren(formed, name)
		checkSeqOrder(fmt.Sprintf("sortChildren(%q)", name), formed)
		rw.sort(mixed)
		checkSeqOrder("read-write sort", mixed)
	})
}

// TestSortChildrenAfterSequenceWrap pins down the queue order around the wrap of ZooKeeper's
// sequence counter, as the comment at the top of this file describes it (Curator's order too).
func TestSortChildrenAfterSequenceWrap(t *testing.T) {
	tests := []struct {
		name string
		seqs []int32 // in creation order
		want []int32 // in queue order
	}{
		{"before the wrap", []int32{2147483645, 2147483646, 2147483647}, []int32{2147483645, 2147483646, 2147483647}},
		{"the first nodes after the wrap jump the queue", []int32{2147483646, 2147483647, -2147483648, -2147483647},
			[]int32{-2147483647, -2147483648, 2147483646, 2147483647}},
		{"negative ones by their digits", []int32{-1000000000, -999999999, -10, -2, -1},
			[]int32{-1, -2, -10, -1000000000, -999999999}},
		{"back at zero, behind what is left from below", []int32{-2, -1, 0, 1}, []int32{-1, -2, 0, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for i, n := range tt.seqs {
				prefix := ""
				if i%2 == 0 {
					prefix = framework.ProtectedPrefix + "0123abcd-0123-4567-89ab-0123456789ab-"
				}
				names = append(names, prefix+lockName+seqSuffix(n))
			}
			sortChildren(names, lockName)
			var got []int32
			for _, n := range names {
				var s int32
				if _, err := fmt.Sscanf(sortKey(n, lockName), "%d", &s); err != nil {
					t.Fatalf("sequence of %q: %v", n, err)
				}
				got = append(got, s)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("queue order of %v = %v, want %v", tt.seqs, got, tt.want)
			}
			for i := 1; i < len(got); i++ {
				if wrapOrder(got[i-1], got[i]) > 0 {
					t.Errorf("wrapOrder disagrees with the order %v at %d", got, i)
				}
			}
		})
	}
}
