package zkenv

import "testing"

// TestMain checks, through Main itself, that the package's tests leave no goroutine running.
func TestMain(m *testing.M) { Main(m) }
