// Package zkraw holds the few tree operations that tools working on a bare go-zookeeper connection
// share (the test harness's clean-up of an external ensemble, the benchmark's set-up): code that
// runs outside the framework's client, with no retries of its own beyond what is said.
package zkraw

import (
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"
)

// DeleteTree deletes the node at path and everything below it; a node already gone is no error.
// A node that gains a child while its children are deleted (a client still closing, say) is
// emptied again, up to tries times in all.
func DeleteTree(conn *zk.Conn, path string, tries int) error {
	for try := 1; ; try++ {
		children, _, err := conn.Children(path)
		if errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("list %s: %w", path, err)
		}
		for _, c := range children {
			if err := DeleteTree(conn, path+"/"+c, tries); err != nil {
				return err
			}
		}
		err = conn.Delete(path, -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return nil
		}
		if !errors.Is(err, zk.ErrNotEmpty) || try >= tries {
			return fmt.Errorf("delete %s: %w", path, err)
		}
	}
}
