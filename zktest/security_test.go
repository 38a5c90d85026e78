package zktest

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A TLS server cleans up after itself: its key store is private while it runs, and Close removes
// its directory (keys and certificates included), ends its process and forgets its TLS address.
func TestSecurityTLSServerCleansUp(t *testing.T) {
	s, err := StartServer(WithTLS(TLSOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	m := s.members[0]
	pid := m.proc.cmd.Process.Pid
	ks := filepath.Join(s.dir, "tls", "keystore.pem")
	for _, f := range []struct {
		path string
		perm os.FileMode
	}{{s.dir, 0o700}, {filepath.Join(s.dir, "tls"), 0o700}, {ks, 0o600}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&^f.perm != 0 {
			t.Errorf("%s has mode %v, want at most %v", f.path, fi.Mode().Perm(), f.perm)
		}
	}
	if _, ok := tlsAddrs.Load(m.addr); !ok {
		t.Errorf("no TLS entry for %s while it runs", m.addr)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Close: %v", s.dir, err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d still there after Close: %v", pid, err)
	}
	if _, ok := tlsAddrs.Load(m.addr); ok {
		t.Errorf("the TLS entry for %s outlives Close", m.addr)
	}
}

// ClientTLSConfig returns a configuration of the caller's own: a test that changes the
// certificate in place in its copy changes it neither for later ClientTLSConfig calls nor for
// zktest's own four-letter words.
func TestSecurityClientTLSConfigShared(t *testing.T) {
	s := Start(t, WithTLS(TLSOptions{}))
	foreign, err := ForeignClientCertificate("intruder")
	if err != nil {
		t.Fatal(err)
	}
	mine := s.ClientTLSConfig()
	mine.Certificates[0] = foreign // this test's own copy, it thinks
	if got := s.ClientTLSConfig().Certificates[0].Leaf.Subject.CommonName; got != "zktest client" {
		t.Errorf("a new ClientTLSConfig presents %q: the change to another copy applied", got)
	}
	if reply, err := s.FourLetter("ruok"); err != nil || reply != "imok" {
		t.Errorf("FourLetter(ruok) = %q, %v after a test changed its copy of the client configuration", reply, err)
	}
}
