package framework

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// javaChars returns the UTF-16 code units of the Java String the server makes of the path bytes p
// (jute's readString decodes them as UTF-8, each malformed sequence becoming U+FFFD).
func javaChars(p string) []uint16 {
	var out []uint16
	for len(p) > 0 {
		r, size := utf8.DecodeRuneInString(p)
		p = p[size:]
		if r > 0xffff {
			r1, r2 := utf16.EncodeRune(r)
			out = append(out, uint16(r1), uint16(r2))
			continue
		}
		// utf8.RuneError from a malformed byte is U+FFFD too, as Java's decoder replaces it.
		out = append(out, uint16(r))
	}
	return out
}

// javaValidatePath is ZooKeeper's PathUtils.validatePath (3.8), transcribed onto the UTF-16
// chars of the path as the server sees them: it reports whether the server accepts the path.
// It is written independently of ValidatePath, which works on runes and path elements.
func javaValidatePath(p string) bool {
	chars := javaChars(p)
	if len(chars) == 0 || chars[0] != '/' {
		return false
	}
	if len(chars) == 1 {
		return true // the root
	}
	if chars[len(chars)-1] == '/' {
		return false
	}
	lastc := uint16('/')
	for i := 1; i < len(chars); lastc, i = chars[i], i+1 {
		c := chars[i]
		switch {
		case c == 0:
			return false // null character
		case c == '/' && lastc == '/':
			return false // empty node name
		case c == '.' && lastc == '.':
			if chars[i-2] == '/' && (i+1 == len(chars) || chars[i+1] == '/') {
				return false // relative path
			}
		case c == '.':
			if chars[i-1] == '/' && (i+1 == len(chars) || chars[i+1] == '/') {
				return false // relative path
			}
		case c > 0 && c <= 0x1f,
			c >= 0x7f && c <= 0x9f,
			c >= 0xd800 && c <= 0xf8ff,
			c >= 0xfff0:
			return false // invalid character
		}
	}
	return true
}

// pathFuzzSeeds are paths at the edges of the server's rules.
var pathFuzzSeeds = []string{
	"", "/", "//", "a", "a/b", "/a", "/a/", "/a//b", "/a/b/c",
	"/.", "/..", "/a/.", "/a/..", "/./a", "/../a", "/...", "/a.", "/.a", "/a..b", "/a/.../b",
	"/a\x00b", "/\x01", "/\x1f", "/ ", "/\x7f", "/\u0080", "/\u009f", "/\u00a0",
	"/\ud7ff", "/\uf8ff", "/\uf900", "/\uffef", "/\ufff0", "/\ufffd", "/\uffff",
	"/\U00010000", "/😀", "/\xff", "/\xc0\x80", "/\xed\xa0\x80", "/a\xe2\x82",
	"/zookeeper", "/zookeeper/quota", "/_c_0123abcd-0123-4567-89ab-0123456789ab-lock-0000000001",
	"/locks/élan/日本", "/a/lock--2147483648",
}

// FuzzValidatePath checks ValidatePath against an independent transcription of the server's
// PathUtils.validatePath, and JoinPath and SplitPath against each other on valid paths:
//   - ValidatePath accepts exactly the paths the server accepts;
//   - its errors wrap ErrInvalidArgument and name the path;
//   - for a valid path p, SplitPath(p) gives a valid parent and a name without '/' that JoinPath
//     puts back together into p (the root splits into "/" and "");
//   - a valid parent joined with a valid node name is a valid path that splits back into the two.
func FuzzValidatePath(f *testing.F) {
	for _, p := range pathFuzzSeeds {
		f.Add(p, "x")
	}
	for _, name := range []string{"", ".", "..", "...", "a/b", "lock-", "\x00", "😀", "\xff"} {
		f.Add("/a", name)
		f.Add("/", name)
	}
	f.Fuzz(func(t *testing.T, p, name string) {
		err := ValidatePath(p)
		if want := javaValidatePath(p); (err == nil) != want {
			t.Fatalf("ValidatePath(%q) = %v, but the server's rules say valid=%v (chars %U)", p, err, want, javaChars(p))
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Errorf("ValidatePath(%q) = %v, which does not wrap ErrInvalidArgument", p, err)
			}
			if !strings.Contains(err.Error(), strconv.Quote(p)) {
				t.Errorf("ValidatePath(%q) = %v, which does not name the path", p, err)
			}
			return
		}

		parent, last := SplitPath(p)
		if p == "/" {
			if parent != "/" || last != "" {
				t.Fatalf(`SplitPath("/") = %q, %q; want "/", ""`, parent, last)
			}
		} else if last == "" || strings.Contains(last, "/") {
			t.Fatalf("SplitPath(%q) = %q, %q: the name is empty or has a '/'", p, parent, last)
		}
		if err := ValidatePath(parent); err != nil {
			t.Fatalf("SplitPath(%q) = %q, %q: the parent is not valid: %v", p, parent, last, err)
		}
		if got := JoinPath(parent, last); got != p {
			t.Fatalf("JoinPath(SplitPath(%q)) = %q", p, got)
		}

		// name is a valid node name when it makes a valid path under the root.
		if name == "" || strings.Contains(name, "/") || ValidatePath("/"+name) != nil {
			return
		}
		joined := JoinPath(p, name)
		if err := ValidatePath(joined); err != nil {
			t.Fatalf("JoinPath(%q, %q) = %q, which is not valid: %v", p, name, joined, err)
		}
		if gp, gn := SplitPath(joined); gp != p || gn != name {
			t.Fatalf("SplitPath(JoinPath(%q, %q)) = %q, %q", p, name, gp, gn)
		}
	})
}
