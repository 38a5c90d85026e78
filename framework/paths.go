package framework

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ValidatePath reports whether p is a path ZooKeeper accepts, checked as the server's
// PathUtils.validatePath checks it: p starts with '/', has no empty, "." or ".." element, does not
// end with '/' (unless it is "/"), is valid UTF-8, and has none of the characters the server refuses:
// NUL, the control characters U+0001–U+001F and U+007F–U+009F, U+D800–U+F8FF, U+FFF0–U+FFFF, and
// any character outside the Basic Multilingual Plane (such as an emoji), which Java holds as a
// surrogate pair. The error wraps ErrInvalidArgument and names p.
func ValidatePath(p string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: path %q %s", ErrInvalidArgument, p, why)
	}
	switch {
	case p == "":
		return bad("is empty")
	case p[0] != '/':
		return bad("is not absolute")
	case p == "/":
		return nil
	case strings.HasSuffix(p, "/"):
		return bad("ends with '/'")
	}
	for _, el := range strings.Split(p[1:], "/") {
		switch el {
		case "":
			return bad("has an empty element")
		case ".", "..":
			return bad("has a relative element")
		}
	}
	for i, r := range p {
		if r == utf8.RuneError && !strings.HasPrefix(p[i:], "\uFFFD") {
			return bad(fmt.Sprintf("is not valid UTF-8 (at byte %d)", i))
		}
		if !allowedInPath(r) {
			return bad(fmt.Sprintf("has a character ZooKeeper does not allow (%U at byte %d)", r, i))
		}
	}
	return nil
}

// allowedInPath reports whether the server's PathUtils.validatePath lets r through. It checks
// Java chars (UTF-16 code units), so a character above U+FFFF is seen as two surrogates, which
// fall in the refused range U+D800–U+F8FF.
func allowedInPath(r rune) bool {
	switch {
	case r <= 0x1f, // NUL and the C0 controls
		r >= 0x7f && r <= 0x9f,     // DEL and the C1 controls
		r >= 0xd800 && r <= 0xf8ff, // surrogates and the private use area
		r >= 0xfff0:                // specials, and everything outside the BMP
		return false
	}
	return true
}

// JoinPath joins a parent path and a child name.
func JoinPath(parent, child string) string {
	if parent == "/" {
		return "/" + child
	}
	return parent + "/" + child
}

// SplitPath returns the parent path and the last element of p.
func SplitPath(p string) (parent, name string) {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/", p[i+1:]
	}
	return p[:i], p[i+1:]
}
