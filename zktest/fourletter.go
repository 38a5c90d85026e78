package zktest

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// FourLetterWord sends the four-letter-word command cmd, such as "ruok",
// "srvr" or "mntr", to the ZooKeeper server at addr ("host:port", any server,
// not only this package's) and returns its reply, or an error if no reply came
// within timeout (the dial, the write and the read together). It speaks TLS to
// the address of a member of this package that serves only TLS. The server must
// allow the command (4lw.commands.whitelist); if it does not, the reply says
// the command "is not executed".
func FourLetterWord(addr, cmd string, timeout time.Duration) (string, error) {
	return fourLetter(addr, cmd, timeout)
}

// fourLetter sends a four-letter-word command to the ZooKeeper server at addr
// and returns its reply, over TLS if a member serves only TLS there. The
// server closes the connection after replying.
func fourLetter(addr, cmd string, timeout time.Duration) (string, error) {
	conn, err := dialFourLetter(addr, timeout)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	if _, err := io.WriteString(conn, cmd); err != nil {
		return "", err
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		return string(b), fmt.Errorf("zktest: %s to %s: %w", cmd, addr, err)
	}
	return string(b), nil
}

// notExecuted reports whether a four-letter-word reply says that the command
// is disabled on the server (not in 4lw.commands.whitelist).
func notExecuted(reply string) bool {
	return strings.Contains(reply, "is not executed")
}

// confValue returns the value of key in the reply to the conf command, whose
// lines have the form key=value.
func confValue(conf, key string) (string, bool) {
	for line := range strings.Lines(conf) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if ok && k == key {
			return v, true
		}
	}
	return "", false
}
