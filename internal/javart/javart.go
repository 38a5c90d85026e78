// Package javart finds a Java Development Kit and the Apache Curator jars on this machine, and
// compiles single-file Java programs against them. The interop tests use it to build their Curator
// peer, and zkbench to build its Curator twin.
//
// java and javac are looked for in $JAVA_HOME/bin, then on PATH. The jars are looked for in
// $CURATOR_JARS, else in /usr/share/java, where Debian's and Ubuntu's packages put them:
//
//	sudo apt-get install default-jdk-headless libcurator-recipes-java libcurator-framework-java libcurator-client-java
package javart

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// InstallHint says how to get what Find needs.
const InstallHint = `a JDK and Apache Curator's jars are needed; install them with
	sudo apt-get install default-jdk-headless libcurator-recipes-java libcurator-framework-java libcurator-client-java
or set JAVA_HOME to a JDK, and CURATOR_JARS to a directory holding the Curator, ZooKeeper, Guava
and SLF4J jars`

// requiredJars are the jars a Curator program cannot compile or run without.
var requiredJars = []string{"curator-recipes.jar", "curator-framework.jar", "curator-client.jar",
	"zookeeper.jar", "guava.jar", "slf4j-api.jar"}

// optionalJars are added when present: the first found of each group. ZooKeeper 3.5 and later keep
// their wire records in zookeeper-jute; Guava 27 and later need failureaccess; an SLF4J binding
// sends the logs somewhere (to stderr with slf4j-simple) instead of a warning.
var optionalJars = [][]string{{"zookeeper-jute.jar"}, {"failureaccess.jar"}, {"slf4j-simple.jar", "slf4j-nop.jar"}}

// Runtime is a JDK and the Curator jars it compiles and runs programs with.
type Runtime struct {
	Java  string   // the java launcher
	Javac string   // the compiler
	Jars  []string // Curator, ZooKeeper, Guava, SLF4J and what they need
}

// Find looks for java, javac and the Curator jars. Its error says what is missing; InstallHint
// says how to get it.
func Find() (*Runtime, error) {
	java, err := FindTool("java")
	if err != nil {
		return nil, err
	}
	javac, err := FindTool("javac")
	if err != nil {
		return nil, fmt.Errorf("%w (a JDK is needed, not only a JRE)", err)
	}
	jars, err := CuratorClasspath()
	if err != nil {
		return nil, err
	}
	return &Runtime{Java: java, Javac: javac, Jars: jars}, nil
}

// FindTool returns $JAVA_HOME/bin/name if it exists, else name as found on PATH.
func FindTool(name string) (string, error) {
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", name)
		if isFile(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("no %s in $JAVA_HOME/bin or PATH", name)
	}
	return p, nil
}

// CuratorClasspath returns the jars that a Curator program compiles and runs with: Curator's
// three, ZooKeeper's client, Guava and SLF4J, plus ZooKeeper's wire records, Guava's
// failureaccess and an SLF4J binding if they are there.
func CuratorClasspath() ([]string, error) {
	dir := os.Getenv("CURATOR_JARS")
	if dir == "" {
		dir = "/usr/share/java"
	}
	var cp, missing []string
	for _, jar := range requiredJars {
		p := filepath.Join(dir, jar)
		if !isFile(p) {
			missing = append(missing, jar)
			continue
		}
		cp = append(cp, p)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing in %s: %s", dir, strings.Join(missing, ", "))
	}
	for _, group := range optionalJars {
		for _, j := range group {
			if p := filepath.Join(dir, j); isFile(p) {
				cp = append(cp, p)
				break
			}
		}
	}
	return cp, nil
}

// Program is a compiled Java program.
type Program struct {
	Java      string // the java launcher
	Classpath string // the compiled classes' directory, then the jars
	Main      string // the main class
}

// Compile compiles the single-file Java program src into the directory out (which must exist)
// and returns how to run it. The main class is named after the file, as Java requires of a public
// class.
func (r *Runtime) Compile(src, out string) (*Program, error) {
	if r == nil {
		return nil, errors.New("javart: no Java runtime")
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return nil, err
	}
	cp := strings.Join(r.Jars, string(os.PathListSeparator))
	outp, err := exec.Command(r.Javac, "-nowarn", "-Xlint:-path", "-d", out, "-cp", cp, abs).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("javac %s: %w\n%s", abs, err, outp)
	}
	return &Program{
		Java:      r.Java,
		Classpath: out + string(os.PathListSeparator) + cp,
		Main:      strings.TrimSuffix(filepath.Base(abs), ".java"),
	}, nil
}

// Build finds a runtime with Find and compiles src into out with it.
func Build(src, out string) (*Program, error) {
	r, err := Find()
	if err != nil {
		return nil, err
	}
	return r.Compile(src, out)
}

// Command returns the command that runs the program with the given JVM options (before the main
// class) and program arguments (after it). The JVM keeps no hsperfdata file: one whose lock another
// JVM holds makes it print a warning on stdout, where the program's output is read.
func (p *Program) Command(jvmArgs []string, args ...string) *exec.Cmd {
	a := append([]string{"-XX:-UsePerfData"}, jvmArgs...)
	a = append(a, "-cp", p.Classpath, p.Main)
	a = append(a, args...)
	return exec.Command(p.Java, a...)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}
