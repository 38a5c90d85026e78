package zktest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// installHint tells the reader of a failure message how to make a
// ZooKeeper server available to the tests.
const installHint = `zktest needs a ZooKeeper server. Do one of the following:
	- install the Debian/Ubuntu package: sudo apt-get install zookeeper
	- set ZOOKEEPER_HOME to an unpacked ZooKeeper release (the directory holding lib/)
	- set ZK_SERVERS to a running ensemble, such as ZK_SERVERS=127.0.0.1:2181`

// errNotFound reports that no Java runtime or no ZooKeeper jars were found.
var errNotFound = errors.New("zktest: no ZooKeeper installation found")

// logBinding is the SLF4J binding found on a server's class path; it decides
// how the server's logging is configured.
type logBinding int

const (
	logNone    logBinding = iota // no binding: SLF4J falls back to a no-op logger
	logSimple                    // slf4j-simple
	logLog4j                     // slf4j-log4j12 or slf4j-reload4j with log4j 1.2 or reload4j
	logLogback                   // logback-classic
)

// jvm describes how to launch a ZooKeeper server.
type jvm struct {
	java      string     // path of the java executable
	classpath []string   // jars, in order
	logging   logBinding // SLF4J binding on the class path
	source    string     // where the jars were found, for messages
}

// debianJavaDir is where Debian and Ubuntu install zookeeper.jar. Its
// manifest names the jars it depends on, so it is enough on the class path.
const debianJavaDir = "/usr/share/java"

// homeCandidates are directories that commonly hold an unpacked ZooKeeper
// release when ZOOKEEPER_HOME is not set.
var homeCandidates = []string{
	"/opt/zookeeper",
	"/usr/local/zookeeper",
	"/usr/share/zookeeper",
	"/opt/homebrew/opt/zookeeper/libexec",
	"/usr/local/opt/zookeeper/libexec",
}

// findJVM locates a Java runtime and the ZooKeeper server jars.
//
// If ZOOKEEPER_HOME is set it must point at an unpacked release: the jars in
// $ZOOKEEPER_HOME and $ZOOKEEPER_HOME/lib are used. Otherwise the Debian
// package's /usr/share/java/zookeeper.jar is used, and failing that a release
// unpacked in one of a few usual places.
func findJVM() (*jvm, error) {
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	if home := os.Getenv("ZOOKEEPER_HOME"); home != "" {
		cp, err := homeClasspath(home)
		if err != nil {
			return nil, fmt.Errorf("%w: ZOOKEEPER_HOME=%s: %v", errNotFound, home, err)
		}
		return newJVM(java, cp, "ZOOKEEPER_HOME="+home), nil
	}
	if cp, ok := debianClasspath(debianJavaDir); ok {
		return newJVM(java, cp, debianJavaDir), nil
	}
	for _, home := range homeCandidates {
		if cp, err := homeClasspath(home); err == nil {
			return newJVM(java, cp, home), nil
		}
	}
	return nil, fmt.Errorf("%w: no %s/zookeeper.jar and ZOOKEEPER_HOME is not set", errNotFound, debianJavaDir)
}

func newJVM(java string, cp []string, source string) *jvm {
	return &jvm{java: java, classpath: cp, logging: detectBinding(cp), source: source}
}

// findJava returns $JAVA_HOME/bin/java if it exists, or else java from PATH.
func findJava() (string, error) {
	exe := "java"
	if runtime.GOOS == "windows" {
		exe = "java.exe"
	}
	if home := os.Getenv("JAVA_HOME"); home != "" {
		p := filepath.Join(home, "bin", exe)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath("java")
	if err != nil {
		return "", fmt.Errorf("%w: no java executable in $JAVA_HOME/bin or PATH", errNotFound)
	}
	return p, nil
}

// debianClasspath returns the class path for the Debian package layout: the
// server jar, whose manifest pulls in its dependencies, and an SLF4J binding
// so that the server's log is not lost.
func debianClasspath(dir string) ([]string, bool) {
	zk := filepath.Join(dir, "zookeeper.jar")
	if !isFile(zk) {
		return nil, false
	}
	cp := []string{zk}
	if jute := filepath.Join(dir, "zookeeper-jute.jar"); isFile(jute) {
		cp = append(cp, jute)
	}
	switch {
	case isFile(filepath.Join(dir, "slf4j-simple.jar")):
		cp = append(cp, filepath.Join(dir, "slf4j-simple.jar"))
	case isFile(filepath.Join(dir, "slf4j-log4j12.jar")) && isFile(filepath.Join(dir, "log4j-1.2.jar")):
		cp = append(cp, filepath.Join(dir, "slf4j-log4j12.jar"), filepath.Join(dir, "log4j-1.2.jar"))
	}
	return cp, true
}

// homeClasspath returns the jars of an unpacked ZooKeeper release: those in
// home itself (older releases keep the server jar there) and those in
// home/lib. It fails unless one of them is the server jar.
func homeClasspath(home string) ([]string, error) {
	var cp []string
	found := false
	for _, dir := range []string{home, filepath.Join(home, "lib")} {
		jars, _ := filepath.Glob(filepath.Join(dir, "*.jar"))
		for _, j := range jars {
			base := filepath.Base(j)
			if strings.HasSuffix(base, "-sources.jar") || strings.HasSuffix(base, "-javadoc.jar") ||
				strings.HasSuffix(base, "-tests.jar") {
				continue
			}
			if isServerJar(base) {
				found = true
			}
			cp = append(cp, j)
		}
	}
	if !found {
		return nil, errors.New("no zookeeper-<version>.jar in it or in its lib directory")
	}
	return cp, nil
}

// isServerJar reports whether a jar's base name is that of the ZooKeeper
// server jar: zookeeper.jar or zookeeper-<version>.jar.
func isServerJar(base string) bool {
	if base == "zookeeper.jar" {
		return true
	}
	v, ok := strings.CutPrefix(base, "zookeeper-")
	return ok && v != "" && v[0] >= '0' && v[0] <= '9'
}

// detectBinding reports which SLF4J binding, if any, is on the class path.
func detectBinding(cp []string) logBinding {
	b := logNone
	for _, j := range cp {
		base := filepath.Base(j)
		switch {
		case strings.HasPrefix(base, "logback-classic"):
			return logLogback
		case strings.HasPrefix(base, "slf4j-log4j12"), strings.HasPrefix(base, "slf4j-reload4j"):
			b = logLog4j
		case strings.HasPrefix(base, "slf4j-simple") && b == logNone:
			b = logSimple
		}
	}
	return b
}

// Logging configurations. Every binding writes to standard error, which the
// server process shares with standard output in a log file.
const (
	log4jConfig = `log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{HH:mm:ss,SSS} %-5p [%t] %c{1} - %m%n
`
	logbackConfig = `<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <target>System.err</target>
    <encoder>
      <pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{0} - %msg%n</pattern>
    </encoder>
  </appender>
  <root level="INFO">
    <appender-ref ref="CONSOLE"/>
  </root>
</configuration>
`
)

// loggingArgs writes the logging configuration for the binding into dir and
// returns the JVM flags that select it.
func (j *jvm) loggingArgs(dir string) ([]string, error) {
	switch j.logging {
	case logSimple:
		return []string{
			"-Dorg.slf4j.simpleLogger.logFile=System.err",
			"-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
			"-Dorg.slf4j.simpleLogger.showDateTime=true",
			"-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
			"-Dorg.slf4j.simpleLogger.showShortLogName=true",
		}, nil
	case logLog4j:
		p := filepath.Join(dir, "log4j.properties")
		if err := os.WriteFile(p, []byte(log4jConfig), 0o644); err != nil {
			return nil, err
		}
		return []string{"-Dlog4j.configuration=" + fileURL(p)}, nil
	case logLogback:
		p := filepath.Join(dir, "logback.xml")
		if err := os.WriteFile(p, []byte(logbackConfig), 0o644); err != nil {
			return nil, err
		}
		return []string{"-Dlogback.configurationFile=" + p}, nil
	}
	return nil, nil
}

// command returns the arguments for java that run mainClass with the
// configuration file cfg, writing any logging configuration into dir.
func (j *jvm) command(dir, mainClass, cfg string) ([]string, error) {
	args := []string{
		"-Xmx512m",
		"-XX:+UseSerialGC",
		"-XX:TieredStopAtLevel=1", // start fast; tests are short
		"-XX:-UsePerfData",
		"-Djava.awt.headless=true",
		"-Dzookeeper.admin.enableServer=false",
		"-Dzookeeper.jmx.log4j.disable=true",
		// Let TTL nodes (createTTL) be created.
		"-Dzookeeper.extendedTypesEnabled=true",
		// Delete empty container nodes within about a second rather than a minute.
		"-Dznode.container.checkIntervalMs=1000",
	}
	logArgs, err := j.loggingArgs(dir)
	if err != nil {
		return nil, err
	}
	args = append(args, logArgs...)
	args = append(args, "-cp", strings.Join(j.classpath, string(os.PathListSeparator)), mainClass, cfg)
	return args, nil
}

func fileURL(p string) string {
	p = filepath.ToSlash(p)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return "file://" + p
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
