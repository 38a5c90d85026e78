//go:build unix

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gocurator/curator/zktest"
)

// An --auth-file that holds no credentials (empty, blank) or more than one line is a usage error
// (64), as an empty --tls-ca is: zklock never runs the command on a session without the
// credentials it was told to use.
func TestSecurityAuthFileWithoutCredentials(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"empty", ""},
		{"blank", " \n\n"},
		{"two lines", "digest:ops:s3cret\ndigest:other:pw\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			authFile := writeTestFile(t, dir, "auth", []byte(tc.content))
			code, _, stderr := zklock(t, dir, args("run", testServer.ConnectString(), "--auth-file", authFile,
				testPath(t, "lock"), "--", "touch", "ran")...)
			if code != exitUsage {
				t.Errorf("--auth-file holding %q: exit %d (command ran: %v), stderr %q; want %d",
					tc.content, code, fileExists(filepath.Join(dir, "ran")), strings.TrimSpace(stderr), exitUsage)
			}
		})
	}
}

// zklock does not hand the credentials (ZK_AUTH, kept out of ps) on to COMMAND.
func TestSecurityCredentialsReachCommand(t *testing.T) {
	dir := t.TempDir()
	const secret = "digest:ops:s3cret-zklock"
	p := startEnv(t, dir, []string{"ZK_AUTH=" + secret}, args("run", testServer.ConnectString(), testPath(t, "lock"),
		"--", "sh", "-c", `printf %s "$ZK_AUTH" > seen`)...)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit %d: %s", code, p.stderr.String())
	}
	if seen := readFile(t, filepath.Join(dir, "seen")); strings.Contains(seen, "s3cret-zklock") {
		t.Errorf("the command sees ZK_AUTH=%q", seen)
	}
}

// A huge --auth-file or --tls-ca, or a device such as /dev/zero named by mistake, is a usage error
// (64), not read until memory runs out: zklock runs here under a 1 GiB address-space limit, as a
// systemd MemoryMax or a container would set.
func TestSecurityHugeInputFiles(t *testing.T) {
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("no prlimit")
	}
	dir := t.TempDir()
	sparse := filepath.Join(dir, "sparse")
	f, err := os.Create(sparse)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil { // 3 GiB of holes: no disk used
		t.Fatal(err)
	}
	f.Close()
	limited := func(flags ...string) (int, string) {
		cmd := exec.Command("prlimit", append([]string{"--as=1073741824", binary, "run", "--servers", testServer.ConnectString(),
			"--connect-timeout", "2s"}, append(flags, testPath(t, "lock"), "--", "true")...)...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		done := make(chan struct{})
		go func() { cmd.Run(); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		out := stderr.String()
		if i := strings.Index(out, "\n\ngoroutine"); i >= 0 {
			out = out[:i]
		}
		return cmd.ProcessState.ExitCode(), strings.TrimSpace(out)
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"--auth-file /dev/zero", []string{"--auth-file", "/dev/zero"}},
		{"--auth-file of 3 GiB", []string{"--auth-file", sparse}},
		{"--tls-ca /dev/zero", []string{"--tls-ca", "/dev/zero"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stderr := limited(tc.flags...)
			if code != exitUsage {
				t.Errorf("exit %d, stderr %q; want %d", code, stderr, exitUsage)
			}
		})
	}
	t.Run("credential of 2 MB", func(t *testing.T) {
		authFile := filepath.Join(dir, "auth")
		if err := os.WriteFile(authFile, append([]byte("digest:ops:"), bytes.Repeat([]byte("x"), 2<<20)...), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, stderr := zklock(t, dir, "run", "--servers", testServer.ConnectString(), "--connect-timeout", "2s",
			"--auth-file", authFile, testPath(t, "lock"), "--", "true")
		if code != exitUsage {
			t.Errorf("exit %d, stderr %q; want %d (or at least a reason)", code, strings.TrimSpace(stderr), exitUsage)
		}
	})
}

// Credentials the server refuses make zklock exit 69, saying so.
func TestSecurityAuthRefusedExit(t *testing.T) {
	dir := t.TempDir()
	p := startEnv(t, dir, []string{"ZK_AUTH=nosuch:x"}, "run", "--servers", testServer.ConnectString(), "--connect-timeout", "2s",
		testPath(t, "lock"), "--", "touch", "ran")
	code := p.wait(t, 30*time.Second)
	stderr := p.stderr.String()
	t.Logf("exit %d, stderr %q", code, strings.TrimSpace(stderr))
	if code != exitUnavailable || !strings.Contains(stderr, "authentication failed") || fileExists(filepath.Join(dir, "ran")) {
		t.Errorf("credentials refused: exit %d, stderr %q; want %d and the reason", code, stderr, exitUnavailable)
	}
}

// Every failure to reach the ensemble over TLS exits 69; bad security flags and environment exit
// 64.
func TestSecuritySecureExitCodes(t *testing.T) {
	srv := zktest.Start(t, zktest.WithTLS(zktest.TLSOptions{PlainPort: true}))
	dir := t.TempDir()
	caFile := writeTestFile(t, dir, "ca.pem", srv.CA().CertPEM())
	other, err := zktest.NewCA("other")
	if err != nil {
		t.Fatal(err)
	}
	otherCA := writeTestFile(t, dir, "other.pem", other.CertPEM())
	certFile, keyFile := clientCertFiles(t, srv, dir)
	garbage := writeTestFile(t, dir, "garbage", []byte("\x00\xff\xfe binary"))
	lock := testPath(t, "lock")
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"system roots only", nil, []string{"--servers", srv.SecureConnectString(), "--tls"}, exitUnavailable},
		{"another CA", nil, []string{"--servers", srv.SecureConnectString(), "--tls-ca", otherCA, "--tls-cert", certFile, "--tls-key", keyFile}, exitUnavailable},
		{"no client certificate", nil, []string{"--servers", srv.SecureConnectString(), "--tls-ca", caFile}, exitUnavailable},
		{"TLS on the plain port", nil, []string{"--servers", srv.ConnectString(), "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile}, exitUnavailable},
		{"plain on the TLS port", nil, []string{"--servers", srv.SecureConnectString()}, exitUnavailable},
		{"TLS and credentials refused", []string{"ZK_AUTH=nosuch:x"}, []string{"--servers", srv.SecureConnectString(), "--tls-ca", caFile, "--tls-cert", certFile, "--tls-key", keyFile}, exitUnavailable},
		{"binary CA file", nil, []string{"--servers", srv.SecureConnectString(), "--tls-ca", garbage}, exitUsage},
		{"binary key", nil, []string{"--servers", srv.SecureConnectString(), "--tls-cert", certFile, "--tls-key", garbage}, exitUsage},
		{"CA is a directory", nil, []string{"--servers", srv.SecureConnectString(), "--tls-ca", dir}, exitUsage},
		{"auth file is a directory", nil, []string{"--servers", srv.SecureConnectString(), "--auth-file", dir}, exitUsage},
		{"ZK_TLS not a boolean", []string{"ZK_TLS=maybe"}, []string{"--servers", srv.SecureConnectString()}, exitUsage},
		{"ZK_ACL unknown", []string{"ZK_ACL=all"}, []string{"--servers", srv.SecureConnectString()}, exitUsage},
		{"ZK_AUTH without scheme", []string{"ZK_AUTH=ops:s3cret"}, []string{"--servers", srv.SecureConnectString()}, exitUnavailable},
		{"ZK_AUTH digest without user", []string{"ZK_AUTH=digest:s3cret"}, []string{"--servers", srv.SecureConnectString()}, exitUsage},
		{"ZK_AUTH and --auth-file", []string{"ZK_AUTH=digest:a:b"}, []string{"--servers", srv.SecureConnectString(), "--auth-file", caFile}, exitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startEnv(t, dir, tc.env, append(append([]string{"run", "--connect-timeout", "2s"}, tc.args...), lock, "--", "touch", "ran")...)
			code := p.wait(t, 30*time.Second)
			t.Logf("exit %d: %s", code, strings.TrimSpace(p.stderr.String()))
			if code != tc.want || fileExists(filepath.Join(dir, "ran")) {
				t.Errorf("exit %d, want %d (or the command ran)", code, tc.want)
			}
		})
	}
}

// -v never prints the credentials.
func TestSecurityVerboseHidesCredentials(t *testing.T) {
	dir := t.TempDir()
	for _, auth := range []string{"digest:ops:pw-secret-a", "nosuch:pw-secret-b"} {
		p := startEnv(t, dir, []string{"ZK_AUTH=" + auth}, "run", "-v", "--servers", testServer.ConnectString(),
			"--connect-timeout", "2s", testPath(t, "lock"), "--", "true")
		code := p.wait(t, 30*time.Second)
		if strings.Contains(p.stderr.String(), "pw-secret") {
			t.Errorf("ZK_AUTH=%s, exit %d: -v shows the password: %s", auth, code, p.stderr.String())
		}
	}
}
