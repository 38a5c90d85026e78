package recipes

import (
	"context"
	"fmt"
	"time"

	"github.com/gocurator/curator/framework"
)

// removeNode is a stand-in for the recipes' one way to remove a node (lease.go); it is deleted
// when that lands.
func removeNode(c *framework.Client, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if err := c.DeleteGuaranteed(ctx, node); err != nil {
		return fmt.Errorf("delete %s: %w", node, err)
	}
	return nil
}
