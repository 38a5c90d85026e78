package zktest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIsServerJar(t *testing.T) {
	for name, want := range map[string]bool{
		"zookeeper.jar":             true,
		"zookeeper-3.8.4.jar":       true,
		"zookeeper-3.4.14.jar":      true,
		"zookeeper-jute-3.8.4.jar":  false,
		"zookeeper-jute.jar":        false,
		"zookeeper-prometheus.jar":  false,
		"zookeeper-.jar":            false,
		"curator-framework-5.4.jar": false,
	} {
		if isServerJar(name) != want {
			t.Errorf("isServerJar(%q) = %v; want %v", name, !want, want)
		}
	}
}

func TestDetectBinding(t *testing.T) {
	for _, tc := range []struct {
		jars []string
		want logBinding
	}{
		{[]string{"lib/zookeeper-3.8.4.jar", "lib/slf4j-api-1.7.30.jar"}, logNone},
		{[]string{"lib/slf4j-api-1.7.30.jar", "lib/logback-core-1.2.10.jar", "lib/logback-classic-1.2.10.jar"}, logLogback},
		{[]string{"lib/slf4j-reload4j-1.7.35.jar", "lib/reload4j-1.2.19.jar"}, logLog4j},
		{[]string{"/usr/share/java/zookeeper.jar", "/usr/share/java/slf4j-simple.jar"}, logSimple},
		{[]string{"a/slf4j-simple.jar", "a/slf4j-log4j12.jar", "a/log4j-1.2.jar"}, logLog4j},
	} {
		if got := detectBinding(tc.jars); got != tc.want {
			t.Errorf("detectBinding(%q) = %v; want %v", tc.jars, got, tc.want)
		}
	}
}

func TestHomeClasspathRejectsDirectoryWithoutServerJar(t *testing.T) {
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, "lib"), 0o755)
	os.WriteFile(filepath.Join(home, "lib", "zookeeper-jute-3.8.4.jar"), nil, 0o644)
	if _, err := homeClasspath(home); err == nil {
		t.Fatal("homeClasspath accepted a directory without the server jar")
	}
}

// TestZookeeperHome starts a server from a ZOOKEEPER_HOME laid out like a
// release (jars in lib/), with a log4j binding, made of the Debian package's
// jars.
func TestZookeeperHome(t *testing.T) {
	jars := map[string]string{
		"zookeeper.jar":      "zookeeper-3.8.0.jar",
		"zookeeper-jute.jar": "zookeeper-jute-3.8.0.jar",
		"slf4j-log4j12.jar":  "slf4j-log4j12-1.7.32.jar",
		"log4j-1.2.jar":      "log4j-1.2.17.jar",
	}
	home := t.TempDir()
	lib := filepath.Join(home, "lib")
	if err := os.Mkdir(lib, 0o755); err != nil {
		t.Fatal(err)
	}
	for src, dst := range jars {
		src = filepath.Join(debianJavaDir, src)
		if !isFile(src) {
			t.Skipf("needs the Debian package's %s to build a ZOOKEEPER_HOME", src)
		}
		if err := os.Symlink(src, filepath.Join(lib, dst)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("ZK_SERVERS", "")
	t.Setenv("ZOOKEEPER_HOME", home)

	j, err := findJVM()
	if err != nil {
		t.Fatal(err)
	}
	if j.logging != logLog4j || j.source != "ZOOKEEPER_HOME="+home {
		t.Fatalf("findJVM() found logging %v in %s; want log4j in ZOOKEEPER_HOME=%s", j.logging, j.source, home)
	}
	s := Start(t)
	if reply, err := s.FourLetter("ruok"); err != nil || reply != "imok" {
		t.Fatalf(`FourLetter("ruok") = %q, %v`, reply, err)
	}
	m := s.members[0]
	if !m.logMentions("INFO") || !isFile(filepath.Join(m.dir, "log4j.properties")) {
		t.Errorf("no log4j INFO lines in the server log:\n%s", m.logTail(20))
	}
}

func TestDebianLogging(t *testing.T) {
	t.Parallel()
	s := Start(t)
	if s.External() {
		return
	}
	m := s.members[0]
	// The server logs each four-letter-word command it serves.
	if _, err := s.FourLetter("srvr"); err != nil {
		t.Fatal(err)
	}
	if !m.logMentions("Processing srvr command") {
		t.Errorf("the server log does not show the srvr command:\n%s", m.logTail(20))
	}
	if !strings.HasPrefix(m.logFile, m.dir) || !strings.HasPrefix(m.dataDir, m.dir) {
		t.Errorf("log %s and data %s are not in the server's directory %s", m.logFile, m.dataDir, m.dir)
	}
}
