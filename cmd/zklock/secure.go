package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// security holds the flags that secure the connection and the nodes: TLS, credentials for ZooKeeper
// auth (from a file or the environment, never from a flag, which would show in ps), and the ACL of
// the nodes zklock makes.
type security struct {
	tls                    bool
	tlsCA, tlsCert, tlsKey string
	authFile               string
	authEnv                string // ZK_AUTH
	acl                    string

	// Set by check.
	tlsConfig  *tls.Config
	authScheme string
	authCred   []byte
	aclList    []zk.ACL
}

// errAuthFlag is the error of --auth: credentials on the command line show in ps.
var errAuthFlag = errors.New("credentials are not taken from a flag, where ps shows them: use --auth-file FILE or ZK_AUTH")

// register defines the security flags on fs, with defaults from the environment. It defines every
// flag even when ZK_TLS is not a boolean, and then returns that error (the default of --tls is then
// false): common.check reports it unless --tls was given.
func (s *security) register(fs *flag.FlagSet) error {
	tlsOn := false
	var envErr error
	if v := os.Getenv("ZK_TLS"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			envErr = fmt.Errorf("ZK_TLS=%q is not a boolean", v)
		}
		tlsOn = b
	}
	fs.BoolVar(&s.tls, "tls", tlsOn, "")
	fs.StringVar(&s.tlsCA, "tls-ca", os.Getenv("ZK_TLS_CA"), "")
	fs.StringVar(&s.tlsCert, "tls-cert", os.Getenv("ZK_TLS_CERT"), "")
	fs.StringVar(&s.tlsKey, "tls-key", os.Getenv("ZK_TLS_KEY"), "")
	fs.StringVar(&s.authFile, "auth-file", os.Getenv("ZK_AUTH_FILE"), "")
	fs.Func("auth", "", func(string) error { return errAuthFlag })
	fs.StringVar(&s.acl, "acl", envOr("ZK_ACL", "open"), "")
	s.authEnv = os.Getenv("ZK_AUTH")
	return envErr
}

// check validates the security flags and loads what they name: the TLS files and the credentials.
func (s *security) check() error {
	if err := s.checkAuth(); err != nil {
		return err
	}
	switch s.acl {
	case "open", "":
		s.aclList = nil
	case "creator", "creator-read":
		if s.authScheme == "" {
			return fmt.Errorf("--acl %s needs credentials: set --auth-file FILE or ZK_AUTH", s.acl)
		}
		if s.authScheme != "digest" {
			return fmt.Errorf("--acl %s needs digest credentials (digest:user:password), not %s", s.acl, s.authScheme)
		}
		// The digest user by name, not zk.AuthACL: "auth" grants every identity of the creating
		// session, the client certificate's subject over mutual TLS included.
		user, password, _ := strings.Cut(string(s.authCred), ":")
		s.aclList = zk.DigestACL(zk.PermAll, user, password)
		if s.acl == "creator-read" {
			s.aclList = append(s.aclList, zk.WorldACL(zk.PermRead)...)
		}
	default:
		return fmt.Errorf("--acl %q is not one of open, creator or creator-read", s.acl)
	}
	return s.checkTLS()
}

func (s *security) checkAuth() error {
	auth, from := s.authEnv, "ZK_AUTH"
	if s.authFile != "" {
		if s.authEnv != "" {
			return errors.New("credentials from both --auth-file and ZK_AUTH: give one")
		}
		b, err := readSmallFile("--auth-file", s.authFile, 4<<10)
		if err != nil {
			return err
		}
		auth, from = strings.TrimSpace(string(b)), "--auth-file "+s.authFile
		if auth == "" {
			return fmt.Errorf("--auth-file %s holds no credentials", s.authFile)
		}
		if strings.ContainsAny(auth, "\r\n") {
			return fmt.Errorf("--auth-file %s holds more than one line: want one line SCHEME:CREDENTIALS", s.authFile)
		}
	}
	if auth == "" {
		s.authScheme, s.authCred = "", nil
		return nil
	}
	scheme, cred, ok := strings.Cut(auth, ":")
	if !ok || scheme == "" || cred == "" {
		return fmt.Errorf("the credentials in %s are not SCHEME:CREDENTIALS (e.g. digest:user:password)", from)
	}
	s.authScheme, s.authCred = scheme, []byte(cred)
	return nil
}

func (s *security) checkTLS() error {
	if (s.tlsCert == "") != (s.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together: give both, or neither")
	}
	if !s.tls && s.tlsCA == "" && s.tlsCert == "" {
		s.tlsConfig = nil
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.tlsCA != "" {
		pem, err := readSmallFile("--tls-ca", s.tlsCA, maxPEMBytes)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--tls-ca %s holds no PEM certificate", s.tlsCA)
		}
		cfg.RootCAs = pool
	}
	if s.tlsCert != "" {
		certPEM, err := readSmallFile("--tls-cert", s.tlsCert, maxPEMBytes)
		if err != nil {
			return err
		}
		keyPEM, err := readSmallFile("--tls-key", s.tlsKey, maxPEMBytes)
		if err != nil {
			return err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("--tls-cert %s and --tls-key %s: %v", s.tlsCert, s.tlsKey, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	s.tlsConfig = cfg
	return nil
}

// maxPEMBytes bounds a PEM file zklock reads: a CA bundle of a few hundred certificates.
const maxPEMBytes = 1 << 20

// readSmallFile reads the regular file name, given by flag, of at most max bytes: a FIFO, a device
// (/dev/zero, /dev/stdin) or a huge file is refused rather than read for ever.
func readSmallFile(flag, name string, max int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is not a regular file", flag, name)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", flag, name, max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", flag, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s %s is larger than %d bytes", flag, name, max)
	}
	return b, nil
}

// secretEnv are the environment variables that carry credentials or name where they are: zklock
// does not pass them on to the command it runs.
var secretEnv = []string{"ZK_AUTH", "ZK_AUTH_FILE", "ZK_TLS_KEY"}

// commandEnv returns env without the variables of secretEnv.
func commandEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(secretEnv, name) {
			out = append(out, kv)
		}
	}
	return out
}

// options returns the client options the security flags ask for.
func (s *security) options() []framework.Option {
	var opts []framework.Option
	if s.tlsConfig != nil {
		opts = append(opts, framework.WithTLS(s.tlsConfig))
	}
	if s.authScheme != "" {
		opts = append(opts, framework.WithAuth(s.authScheme, s.authCred))
	}
	if s.aclList != nil {
		opts = append(opts, framework.WithACL(s.aclList))
	}
	return opts
}
