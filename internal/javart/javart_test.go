package javart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCompileAndRun(t *testing.T) {
	if os.Getenv("GOCURATOR_SKIP_JAVA") == "1" {
		t.Skip("GOCURATOR_SKIP_JAVA=1")
	}
	rt, err := Find()
	if err != nil {
		t.Skipf("no JDK with Curator here: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "Hello.java")
	// It uses a Curator class, so that the classpath is checked too.
	code := `public class Hello {
    public static void main(String[] args) {
        System.out.println("hello " + org.apache.curator.framework.recipes.locks.InterProcessMutex.class.getSimpleName() + " " + args[0]);
    }
}
`
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "classes")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := rt.Compile(src, out)
	if err != nil {
		t.Fatal(err)
	}
	if p.Main != "Hello" || !strings.HasPrefix(p.Classpath, out+string(os.PathListSeparator)) {
		t.Errorf("program %+v: want main class Hello and %s first on the classpath", p, out)
	}
	b, err := p.Command([]string{"-Xshare:auto"}, "world").CombinedOutput()
	if err != nil {
		t.Fatalf("running: %v\n%s", err, b)
	}
	if got := strings.TrimSpace(string(b)); got != "hello InterProcessMutex world" {
		t.Errorf("output %q", got)
	}
}

func TestCompileError(t *testing.T) {
	rt, err := Find()
	if err != nil {
		t.Skipf("no JDK with Curator here: %v", err)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "Broken.java")
	if err := os.WriteFile(src, []byte("public class Broken { nope }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Compile(src, dir); err == nil || !strings.Contains(err.Error(), "Broken.java") {
		t.Errorf("Compile of a broken file: err %v, want javac's complaint", err)
	}
}

func TestCuratorClasspathMissing(t *testing.T) {
	t.Setenv("CURATOR_JARS", t.TempDir())
	_, err := CuratorClasspath()
	if err == nil || !strings.Contains(err.Error(), "curator-recipes.jar") {
		t.Errorf("err %v, want one naming the missing jars", err)
	}
}
