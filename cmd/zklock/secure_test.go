//go:build unix

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/zktest"
)

// writePEM writes cert's certificate and key to dir as cert.pem and key.pem.
func writePEM(t *testing.T, dir string, cert tls.Certificate) (certFile, keyFile string) {
	t.Helper()
	key, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// writeTestFile writes data to a new file name in dir, readable by its owner only, and returns
// its path; the test stops if it cannot.
func writeTestFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientCertFiles writes a client certificate for "zklock" that srv's CA signed, and its key, to
// files in dir (writePEM), and returns their paths.
func clientCertFiles(t *testing.T, srv *zktest.Server, dir string) (certFile, keyFile string) {
	t.Helper()
	cert, err := srv.CA().ClientCertificate("zklock")
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, cert)
}

// zklock run against a server that serves only mutual TLS, with digest credentials from a file and
// creator-only ACLs: the command runs under the lock; a client without the credentials cannot
// list the lock, delete the holder's node or queue in it; without a client certificate zklock exits 69, saying why.
func TestRunSecured(t *testing.T) {
	srv := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{ClientAuth: zktest.ClientAuthNeed}))
	dir := t.TempDir()
	caFile := writeTestFile(t, dir, "ca.pem", srv.CA().CertPEM())
	certFile, keyFile := clientCertFiles(t, srv, dir)
	authFile := writeTestFile(t, dir, "auth", []byte("digest:ops:s3cret\n"))
	path := srv.Root() + "/zklock/secured/lock"
	secured := []string{"--servers", srv.SecureConnectString(), "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile,
		"--auth-file", authFile, "--acl", "creator", "--session-timeout", "4s", "--connect-timeout", "5s"}

	p := start(t, dir, append(append([]string{"run"}, secured...), path, "--", "sh", "-c", waitForRelease)...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("zklock's stderr: %s", p.stderr.String())
		}
	})
	eventually(t, 15*time.Second, "the command to start", func() bool { return fileExists(filepath.Join(dir, "running")) })

	// Over TLS, a client with the credentials sees the holder's node; one without them can neither
	// list the lock, nor delete the holder's node, nor queue in it.
	dial := func(opts ...framework.Option) *framework.Client {
		c, err := framework.NewClient(srv.SecureConnectString(), append([]framework.Option{framework.WithTLS(srv.ClientTLSConfig())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	owner, stranger := dial(framework.WithAuth("digest", []byte("ops:s3cret"))), dial()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	names, _, err := owner.Children(ctx, path)
	if err != nil || len(names) != 1 {
		t.Fatalf("children of %s: %v, %v", path, names, err)
	}
	if _, _, err := stranger.Children(ctx, path); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("listing the lock without the credentials: %v; want zk.ErrNoAuth", err)
	}
	if err := stranger.Delete(ctx, path+"/"+names[0], framework.AnyVersion); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("delete of the holder's node without the credentials: %v; want zk.ErrNoAuth", err)
	}
	if _, err := stranger.Create(ctx, path+"/_c_x-lock-", nil, framework.EphemeralSequential); !errors.Is(err, zk.ErrNoAuth) {
		t.Errorf("queueing in the lock without the credentials: %v; want zk.ErrNoAuth", err)
	}
	touch(t, dir, "release")
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("zklock run over TLS exited %d; stderr %q", code, p.stderr.String())
	}
	if log := readFile(t, filepath.Join(dir, "log")); !strings.Contains(log, "end ") {
		t.Errorf("the command did not run to its end: %q", log)
	}

	// Without a client certificate the server refuses the handshake: exit 69, saying why.
	noCert := []string{"run", "--servers", srv.SecureConnectString(), "--tls-ca", caFile, "--connect-timeout", "2s", path, "--", "touch", "ran"}
	code, _, stderr := zklock(t, dir, noCert...)
	if code != exitUnavailable || !strings.Contains(stderr, "certificate") {
		t.Errorf("without a client certificate: exit %d, stderr %q; want %d and the reason", code, stderr, exitUnavailable)
	}
	if fileExists(filepath.Join(dir, "ran")) {
		t.Error("the command ran without a connection")
	}
}
