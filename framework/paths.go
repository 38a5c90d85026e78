package framework

import (
	"fmt"
	"strings"
)

// ValidatePath reports whether p is an absolute ZooKeeper path: it starts with '/', has no empty,
// "." or ".." element, does not end with '/' (unless it is "/"), and has no NUL or control
// character. The error wraps ErrInvalidArgument and names p.
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
	for _, r := range p {
		if r == 0 || (r > 0 && r < 0x1f) || (r >= 0x7f && r <= 0x9f) || (r >= 0xd800 && r <= 0xf8ff) || (r >= 0xfff0 && r <= 0xffff) {
			return bad("has a character ZooKeeper does not allow")
		}
	}
	return nil
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
