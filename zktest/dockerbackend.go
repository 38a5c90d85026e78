package zktest

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Backends, the values ZKTEST_BACKEND takes. Start, StartServer,
// StartEnsemble and StartEnsembleServer run ZooKeeper on one of them:
//
//   - BackendExternal: the ensemble named by ZK_SERVERS, which zktest does
//     not control (Start gives each test a root path of its own; ensembles
//     are skipped).
//   - BackendJava: a Java process per server, from a local ZooKeeper
//     installation (ZOOKEEPER_HOME, Debian's zookeeper package, or a release
//     unpacked in a usual place).
//   - BackendDocker: a container per server, of the official zookeeper image
//     (DefaultImage) or of the image that WithImage or ZKTEST_IMAGE names,
//     through the docker command. It is compiled in only with the build tag
//     zktest_docker (go test -tags zktest_docker ./...).
//
// Unless ZKTEST_BACKEND names one, the first that applies is used:
// BackendExternal if ZK_SERVERS is set, else BackendJava if a Java runtime and
// the ZooKeeper jars are found, else BackendDocker if it is compiled in and the
// Docker daemon answers. If none applies, the test fails with a message that
// names all three ways to make one available; it is never skipped.
const (
	BackendExternal = "external"
	BackendJava     = "java"
	BackendDocker   = "docker"
)

// DockerBuildTag is the build tag that compiles the Docker backend into zktest.
const DockerBuildTag = "zktest_docker"

// DefaultImage is the image of the containers the Docker backend runs unless
// WithImage or the ZKTEST_IMAGE environment variable names another: the
// official zookeeper image, at a 3.9 tag.
//
// Any image may stand in for it that honours the official image's
// environment contract: it writes $ZOO_CONF_DIR/zoo.cfg (unless it exists)
// from ZOO_DATA_DIR, ZOO_DATA_LOG_DIR, ZOO_TICK_TIME, ZOO_INIT_LIMIT,
// ZOO_SYNC_LIMIT, ZOO_MAX_CLIENT_CNXNS, ZOO_STANDALONE_ENABLED,
// ZOO_ADMINSERVER_ENABLED, ZOO_SERVERS (space-separated server.N lines),
// ZOO_4LW_COMMANDS_WHITELIST and ZOO_CFG_EXTRA (space-separated key=value
// lines), writes $ZOO_DATA_DIR/myid from ZOO_MY_ID (unless it exists), and
// runs the server in the foreground with JVMFLAGS among its Java options.
const DefaultImage = "zookeeper:3.9"

// ErrBackend is wrapped by the errors that say why no backend could be used:
// ZKTEST_BACKEND names an unknown one, the one it names is not available, or
// none is.
var ErrBackend = errors.New("zktest: no usable ZooKeeper backend")

// ErrDockerUnavailable is wrapped by the errors of the Docker backend when it
// cannot be used: it is not compiled in, the docker command is missing, or
// the Docker daemon does not answer.
var ErrDockerUnavailable = errors.New("zktest: Docker backend unavailable")

// WithImage makes the Docker backend run containers of the image ref instead
// of DefaultImage, whatever ZKTEST_IMAGE says. The image must honour the
// official zookeeper image's environment contract (see DefaultImage). An
// empty ref keeps the default. It has no effect on the other backends.
func WithImage(ref string) Option {
	return func(c *config) {
		if ref = strings.TrimSpace(ref); ref != "" {
			c.image = ref
		}
	}
}

// backendHint names the three ways of making a ZooKeeper server available to
// the tests.
const backendHint = installHint + `
	- run Docker and build with -tags ` + DockerBuildTag + ` (ZKTEST_BACKEND=docker forces it; ZKTEST_IMAGE names the image, ` + DefaultImage + ` by default)`

// dockerBackend is the Docker backend, nil unless zktest is built with the
// zktest_docker tag (see docker.go).
var dockerBackend interface {
	// available returns nil if the Docker daemon answers.
	available() error
	// startServer starts a standalone server in a container.
	startServer(cfg config) (*Server, error)
	// startEnsemble starts an ensemble of n members, one container each.
	startEnsemble(cfg config, n int) (*Ensemble, error)
}

// chooseBackend returns the backend to use, following ZKTEST_BACKEND if it is
// set and the order described at BackendExternal otherwise, and for
// BackendJava the Java runtime and jars that were found.
func chooseBackend() (string, *jvm, error) {
	forced := strings.ToLower(strings.TrimSpace(os.Getenv("ZKTEST_BACKEND")))
	servers := strings.TrimSpace(os.Getenv("ZK_SERVERS"))
	switch forced {
	case "":
	case BackendExternal:
		if servers == "" {
			return "", nil, fmt.Errorf("%w: ZKTEST_BACKEND=%s needs ZK_SERVERS to name a running ensemble", ErrBackend, forced)
		}
		return BackendExternal, nil, nil
	case BackendJava:
		j, err := findJVM()
		if err != nil {
			return "", nil, fmt.Errorf("%w: ZKTEST_BACKEND=%s: %w\n%s", ErrBackend, forced, err, installHint)
		}
		return BackendJava, j, nil
	case BackendDocker:
		if err := dockerAvailable(); err != nil {
			return "", nil, fmt.Errorf("%w: ZKTEST_BACKEND=%s: %w", ErrBackend, forced, err)
		}
		return BackendDocker, nil, nil
	default:
		return "", nil, fmt.Errorf("%w: ZKTEST_BACKEND=%q is not one of %q, %q, %q (or empty, to choose by what is available)",
			ErrBackend, forced, BackendExternal, BackendJava, BackendDocker)
	}
	if servers != "" {
		return BackendExternal, nil, nil
	}
	j, jerr := findJVM()
	if jerr == nil {
		return BackendJava, j, nil
	}
	if !errors.Is(jerr, errNotFound) {
		// Java and the jars are there but something about them is wrong:
		// say so rather than quietly running something else.
		return "", nil, jerr
	}
	derr := dockerAvailable()
	if derr == nil {
		return BackendDocker, nil, nil
	}
	return "", nil, fmt.Errorf("%w: ZK_SERVERS is not set; %v; %v\n%s", ErrBackend, jerr, derr, backendHint)
}

// dockerAvailable returns nil if the Docker backend is compiled in and the
// Docker daemon answers.
func dockerAvailable() error {
	if dockerBackend == nil {
		return fmt.Errorf("%w: this test binary was built without it (build with -tags %s)", ErrDockerUnavailable, DockerBuildTag)
	}
	return dockerBackend.available()
}

// externalChosen reports whether ZKTEST_BACKEND leaves the choice of the
// external ensemble named by ZK_SERVERS open: it is unset or "external".
func externalChosen() bool {
	b := strings.ToLower(strings.TrimSpace(os.Getenv("ZKTEST_BACKEND")))
	return b == "" || b == BackendExternal
}

// A container runs one member in Docker; see docker.go.
type container interface {
	// start starts the container (created, or stopped) and waits until the
	// server serves requests.
	start() error
	// stop stops the container, with SIGKILL if kill is set, keeping it and
	// its data; it reports an error if the server had exited on its own.
	stop(kill bool) error
	// running reports whether the container was started and not stopped.
	running() bool
	// logTail returns the last n lines of the server's output.
	logTail(n int) string
	// remove removes the container and its data.
	remove() error
}
