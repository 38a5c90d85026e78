package framework

import (
	"regexp"
	"strings"
	"testing"
)

// protectedNameFuzz is the shape IsProtectedName recognises, written as a regular expression:
// "_c_", a UUID in the 8-4-4-4-12 hex form (either case), "-", then at least one character.
var protectedNameFuzz = regexp.MustCompile(`(?s)^_c_[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}-.`)

// FuzzProtectedName checks IsProtectedName and StripProtectedPrefix on arbitrary node names
// (protected or not, with sequence numbers that wrapped past 2^31, with a lock name inside the
// UUID's place, empty):
//   - IsProtectedName agrees with the regular expression protectedNameFuzz;
//   - StripProtectedPrefix removes exactly the 40-character prefix of a protected name and leaves
//     any other name as it is;
//   - the name as a protected create makes it (ProtectedPrefix + a new UUID + "-" + name) is
//     protected, if name is not empty, and strips back to name.
func FuzzProtectedName(f *testing.F) {
	for _, s := range []string{
		"", "_c_", "lock-0000000001", "_c_-lock-0000000001",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-lock-0000000001",
		"_c_0123ABCD-0123-4567-89AB-0123456789AB-lock-0000000001",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-x",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-lock--2147483648",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-__READ__-000000001",
		"_c_0123abcd-0123-4567-89ab-0123456789abXlock-0000000001",
		"_c_0123abcg-0123-4567-89ab-0123456789ab-lock-0000000001",
		"_c_0123abcd_0123-4567-89ab-0123456789ab-lock-0000000001",
		"_c_lock-0000-4567-89ab-0123456789ab-lock-0000000001",
		"_c_lock-abcd-lock-lock-lock-lock-lock--lock-0000000001",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-_c_0123abcd-0123-4567-89ab-0123456789ab-lock-0000000002",
		"_C_0123abcd-0123-4567-89ab-0123456789ab-lock-0000000001",
		"_c_0123abcd-0123-4567-89ab-0123456789ab-\xff",
		"_c_\u00e90123abcd-0123-4567-89ab-012345678-lock-0000000001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		protected := IsProtectedName(name)
		if want := protectedNameFuzz.MatchString(name); protected != want {
			t.Fatalf("IsProtectedName(%q) = %v, want %v", name, protected, want)
		}
		stripped := StripProtectedPrefix(name)
		switch {
		case protected && stripped != name[protectedPrefixLength:]:
			t.Fatalf("StripProtectedPrefix(%q) = %q, want %q", name, stripped, name[protectedPrefixLength:])
		case !protected && stripped != name:
			t.Fatalf("StripProtectedPrefix(%q) = %q of a name that is not protected", name, stripped)
		case protected && (stripped == "" || !strings.HasSuffix(name, stripped)):
			t.Fatalf("StripProtectedPrefix(%q) = %q: empty, or not the end of the name", name, stripped)
		}

		made := ProtectedPrefix + newUUID() + "-" + name
		if got := IsProtectedName(made); got != (name != "") {
			t.Fatalf("IsProtectedName(%q) = %v for a protected create of %q", made, got, name)
		}
		if name != "" {
			if got := StripProtectedPrefix(made); got != name {
				t.Fatalf("StripProtectedPrefix(%q) = %q, want %q", made, got, name)
			}
		}
	})
}
