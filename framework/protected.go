package framework

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Protected-mode names, as Curator writes them: "_c_" + a random 36-character UUID + "-" + name.
const (
	ProtectedPrefix = "_c_"
	// protectedPrefixLength is len("_c_") + 36 + len("-").
	protectedPrefixLength = 40
)

// newUUID returns a random (version 4) UUID in the canonical lowercase 8-4-4-4-12 form, as
// java.util.UUID.randomUUID().toString() prints it.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("framework: crypto/rand failed: " + err.Error())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

// IsProtectedName reports whether a node name carries a protected-mode prefix.
func IsProtectedName(name string) bool {
	if len(name) <= protectedPrefixLength || !strings.HasPrefix(name, ProtectedPrefix) || name[protectedPrefixLength-1] != '-' {
		return false
	}
	return isUUID(name[3 : protectedPrefixLength-1])
}

// StripProtectedPrefix returns name without its protected-mode prefix, if it has one.
func StripProtectedPrefix(name string) string {
	if IsProtectedName(name) {
		return name[protectedPrefixLength:]
	}
	return name
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
