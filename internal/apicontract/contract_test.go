package apicontract

import (
	"context"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"go.uber.org/zap"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
	"github.com/gocurator/curator/retry"
)

var (
	_ func(time.Duration, int) retry.Policy                   = retry.ExponentialBackoff
	_ func(time.Duration, time.Duration, int) retry.Policy    = retry.BoundedExponentialBackoff
	_ func(int, time.Duration) retry.Policy                   = retry.NTimes
	_ func(time.Duration) retry.Policy                        = retry.OneTime
	_ func(time.Duration, time.Duration) retry.Policy         = retry.UntilElapsed
	_ func(time.Duration) retry.Policy                        = retry.Forever
	_ func(context.Context, retry.Policy, func() error) error = retry.Do
	_ func(error) bool                                        = retry.IsRetryable
	_ interface {
		Next(int, time.Duration) (time.Duration, bool)
	} = retry.Policy(nil)

	_                                                              = []framework.State{framework.Connected, framework.Suspended, framework.Reconnected, framework.Lost, framework.ReadOnly}
	_ func(framework.State) string                                 = framework.State.String
	_ func(framework.State) bool                                   = framework.State.IsConnected
	_ func(retry.Policy) framework.Option                          = framework.WithRetryPolicy
	_ func(time.Duration) framework.Option                         = framework.WithSessionTimeout
	_ func(time.Duration) framework.Option                         = framework.WithConnectionTimeout
	_ func(string) framework.Option                                = framework.WithNamespace
	_ func(*zap.Logger) framework.Option                           = framework.WithLogger
	_ func(string, []byte) framework.Option                        = framework.WithAuth
	_ func([]zk.ACL) framework.Option                              = framework.WithACL
	_ func(framework.ErrorPolicy) framework.Option                 = framework.WithErrorPolicy
	_                                                              = []framework.ErrorPolicy{framework.StandardErrorPolicy, framework.SessionErrorPolicy}
	_ func(string, ...framework.Option) (*framework.Client, error) = framework.NewClient
	_ func(*framework.Client) error                                = (*framework.Client).Start
	_ func(*framework.Client, context.Context) error               = (*framework.Client).BlockUntilConnected
	_ func(*framework.Client) error                                = (*framework.Client).Close
	_ func(*framework.Client) framework.State                      = (*framework.Client).State
	_ func(*framework.Client) int64                                = (*framework.Client).SessionID
	_ func(*framework.Client, func(framework.State)) func()        = (*framework.Client).Listen

	_                                                                              = []error{recipes.ErrNotHeld, recipes.ErrLockLost, recipes.ErrReleased, recipes.ErrClosed, recipes.ErrLocked}
	_ func(*recipes.Lease) error                                                   = (*recipes.Lease).Release
	_ func(*recipes.Lease) <-chan struct{}                                         = (*recipes.Lease).Done
	_ func(*recipes.Lease) error                                                   = (*recipes.Lease).Err
	_ func(*recipes.Lease) context.Context                                         = (*recipes.Lease).Context
	_ func(*recipes.Lease) int64                                                   = (*recipes.Lease).Token
	_ func(*recipes.Lease) string                                                  = (*recipes.Lease).Node
	_ recipes.Locker                                                               = (*recipes.InterProcessMutex)(nil)
	_ func(*framework.Client, string) *recipes.InterProcessMutex                   = recipes.NewInterProcessMutex
	_ func(*recipes.InterProcessMutex, context.Context) (*recipes.Lease, error)    = (*recipes.InterProcessMutex).Acquire
	_ func(*recipes.InterProcessMutex, context.Context) (*recipes.Lease, error)    = (*recipes.InterProcessMutex).TryAcquire
	_ func(*recipes.InterProcessMutex) bool                                        = (*recipes.InterProcessMutex).IsAcquiredInThisProcess
	_ func(*recipes.InterProcessMutex, context.Context) ([]string, error)          = (*recipes.InterProcessMutex).ParticipantNodes
	_ func(*framework.Client, string) *recipes.SemaphoreMutex                      = recipes.NewSemaphoreMutex
	_ func(*recipes.SemaphoreMutex, context.Context) (*recipes.Lease, error)       = (*recipes.SemaphoreMutex).Acquire
	_ func(*recipes.SemaphoreMutex, context.Context) (*recipes.Lease, error)       = (*recipes.SemaphoreMutex).TryAcquire
	_ func(*recipes.SemaphoreMutex) bool                                           = (*recipes.SemaphoreMutex).IsAcquiredInThisProcess
	_ func(*framework.Client, string, int) *recipes.Semaphore                      = recipes.NewSemaphore
	_ func(*recipes.Semaphore, context.Context, int) ([]*recipes.Lease, error)     = (*recipes.Semaphore).Acquire
	_ func(*recipes.Semaphore, context.Context) ([]string, error)                  = (*recipes.Semaphore).ParticipantNodes
	_ func(*framework.Client, string) *recipes.ReadWriteLock                       = recipes.NewReadWriteLock
	_ func(*recipes.ReadWriteLock) *recipes.InterProcessMutex                      = (*recipes.ReadWriteLock).ReadLock
	_ func(*recipes.ReadWriteLock) *recipes.InterProcessMutex                      = (*recipes.ReadWriteLock).WriteLock
	_ func(...recipes.Locker) *recipes.MultiLock                                   = recipes.NewMultiLock
	_ func(*framework.Client, ...string) *recipes.MultiLock                        = recipes.NewMultiLockPaths
	_ func(*recipes.MultiLock, context.Context) (*recipes.Lease, error)            = (*recipes.MultiLock).Acquire
	_ recipes.LeaderLatchListener                                                  = nil
	_ func(string) recipes.LatchOption                                             = recipes.WithParticipantID
	_ func(recipes.CloseMode) recipes.LatchOption                                  = recipes.WithCloseMode
	_                                                                              = []recipes.CloseMode{recipes.SilentClose, recipes.NotifyLeaderOnClose}
	_                                                                              = recipes.Participant{ID: "", IsLeader: false}
	_ func(*framework.Client, string, ...recipes.LatchOption) *recipes.LeaderLatch = recipes.NewLeaderLatch
	_ func(*recipes.LeaderLatch) error                                             = (*recipes.LeaderLatch).Start
	_ func(*recipes.LeaderLatch) error                                             = (*recipes.LeaderLatch).Close
	_ func(*recipes.LeaderLatch, context.Context) error                            = (*recipes.LeaderLatch).Await
	_ func(*recipes.LeaderLatch) bool                                              = (*recipes.LeaderLatch).HasLeadership
	_ func(*recipes.LeaderLatch) string                                            = (*recipes.LeaderLatch).ID
	_ func(*recipes.LeaderLatch, context.Context) (recipes.Participant, error)     = (*recipes.LeaderLatch).Leader
	_ func(*recipes.LeaderLatch, context.Context) ([]recipes.Participant, error)   = (*recipes.LeaderLatch).Participants
	_ func(*recipes.LeaderLatch, recipes.LeaderLatchListener) func()               = (*recipes.LeaderLatch).AddListener
)

// TestContract exists so that the package's test binary is built: the declarations above fail to
// compile if a promised name or signature changes.
func TestContract(t *testing.T) {}
