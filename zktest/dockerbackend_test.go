package zktest

import (
	"errors"
	"strings"
	"testing"
)

// backendCase is a case of TestChooseBackend.
type backendCase struct {
	name      string
	backend   string // ZKTEST_BACKEND
	servers   string // ZK_SERVERS
	home      string // ZOOKEEPER_HOME
	want      string // the backend, "" if an error is wanted
	wantIs    []error
	wantInMsg []string
}

// TestChooseBackend checks how ZKTEST_BACKEND and ZK_SERVERS choose the backend, and that a
// choice that cannot be honoured fails with an error matching ErrBackend that says why.
func TestChooseBackend(t *testing.T) {
	_, javaErr := findJVM()
	haveJava := javaErr == nil
	dockerErr := dockerAvailable()
	empty := t.TempDir() // a ZOOKEEPER_HOME without ZooKeeper in it

	tests := []backendCase{
		{name: "servers win by default", servers: "127.0.0.1:2181", want: BackendExternal},
		{name: "external forced", backend: "external", servers: "127.0.0.1:2181", want: BackendExternal},
		{name: "forced, in capitals and spaces", backend: " EXTERNAL ", servers: "127.0.0.1:2181", want: BackendExternal},
		{name: "external forced without servers", backend: "external",
			wantIs: []error{ErrBackend}, wantInMsg: []string{"ZKTEST_BACKEND=external", "ZK_SERVERS"}},
		{name: "unknown backend", backend: "podman", servers: "127.0.0.1:2181",
			wantIs: []error{ErrBackend}, wantInMsg: []string{`"podman"`, "java", "docker", "external"}},
		{name: "java forced over servers, none installed", backend: "java", servers: "127.0.0.1:2181", home: empty,
			wantIs: []error{ErrBackend, errNotFound}, wantInMsg: []string{"ZKTEST_BACKEND=java", "ZOOKEEPER_HOME="}},
		{name: "nothing available", home: empty,
			wantIs:    []error{ErrBackend},
			wantInMsg: []string{"ZK_SERVERS", "ZOOKEEPER_HOME=", "sudo apt-get install zookeeper", "-tags " + DockerBuildTag}},
	}
	if haveJava {
		tests = append(tests,
			backendCase{name: "java when found", want: BackendJava},
			backendCase{name: "java forced over servers", backend: "java", servers: "127.0.0.1:2181", want: BackendJava})
	}
	docker := backendCase{name: "docker forced over servers and java", backend: "docker", servers: "127.0.0.1:2181"}
	if dockerErr == nil {
		docker.want = BackendDocker
		// With Docker running, "nothing available" finds it.
		for i := range tests {
			if tests[i].name == "nothing available" {
				tests[i].want, tests[i].wantIs, tests[i].wantInMsg = BackendDocker, nil, nil
			}
		}
	} else {
		docker.wantIs = []error{ErrBackend, ErrDockerUnavailable}
		docker.wantInMsg = []string{"ZKTEST_BACKEND=docker"}
		if dockerBackend == nil {
			docker.wantInMsg = append(docker.wantInMsg, "-tags "+DockerBuildTag)
		}
	}
	tests = append(tests, docker)

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("ZKTEST_BACKEND", tc.backend)
			t.Setenv("ZK_SERVERS", tc.servers)
			t.Setenv("ZOOKEEPER_HOME", tc.home)
			got, j, err := chooseBackend()
			if tc.want != "" {
				if err != nil || got != tc.want {
					t.Fatalf("chooseBackend() = %q, %v; want %q", got, err, tc.want)
				}
				if (got == BackendJava) != (j != nil) {
					t.Errorf("chooseBackend() = %q with Java runtime %v", got, j)
				}
				return
			}
			if err == nil {
				t.Fatalf("chooseBackend() = %q; want an error", got)
			}
			for _, target := range tc.wantIs {
				if !errors.Is(err, target) {
					t.Errorf("error does not match %v: %v", target, err)
				}
			}
			for _, s := range tc.wantInMsg {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
		})
	}
}

// TestExternalChosen checks that ZK_SERVERS stands for the tests' ensemble, and makes
// StartEnsemble skip, only when ZKTEST_BACKEND does not force another backend.
func TestExternalChosen(t *testing.T) {
	tests := []struct {
		backend string
		want    bool
	}{
		{"", true},
		{"external", true},
		{"External", true},
		{"java", false},
		{"docker", false},
		{"podman", false},
	}
	for _, tc := range tests {
		t.Setenv("ZKTEST_BACKEND", tc.backend)
		if got := externalChosen(); got != tc.want {
			t.Errorf("ZKTEST_BACKEND=%q: externalChosen() = %v; want %v", tc.backend, got, tc.want)
		}
	}
}
