package gocron_test

import (
	"context"
	"log"
	"time"

	"github.com/go-co-op/gocron/v2"

	zkgocron "github.com/gocurator/curator/examples/gocron"
	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// Every scheduler process starts a latch on the same path; only the leader's scheduler runs jobs.
// The job runs under Elector.Job, so its context ends when leadership does: a long run stops
// when this scheduler is no longer the leader, rather than overlap the new leader's runs.
func ExampleNewElector() {
	client, err := framework.NewClient("zk1:2181,zk2:2181,zk3:2181")
	if err != nil {
		log.Fatal(err)
	}
	client.Start()
	defer client.Close()
	latch := recipes.NewLeaderLatch(client, "/leaders/jobs")
	if err := latch.Start(); err != nil {
		log.Fatal(err)
	}
	defer latch.Close()

	elector := zkgocron.NewElector(latch)
	s, err := gocron.NewScheduler(gocron.WithDistributedElector(elector))
	if err != nil {
		log.Fatal(err)
	}
	s.NewJob(gocron.DurationJob(time.Minute), gocron.NewTask(elector.Job(func(ctx context.Context) {
		for range 100 {
			select {
			case <-ctx.Done():
				log.Printf("stopping: %v", context.Cause(ctx)) // leadership lost, or shutdown
				return
			case <-time.After(time.Second): // a step of the work, only on the leader
			}
		}
	})))
	s.Start()
	defer s.Shutdown()
}

// Every scheduler process runs every job's schedule; each run first takes the job's mutex, and
// the schedulers that find it held skip the run.
func ExampleNewLocker() {
	client, err := framework.NewClient("zk1:2181,zk2:2181,zk3:2181")
	if err != nil {
		log.Fatal(err)
	}
	client.Start()
	defer client.Close()

	locker := zkgocron.NewLocker(client, "/locks/jobs", zkgocron.MinHold(20*time.Second))
	s, err := gocron.NewScheduler(gocron.WithDistributedLocker(locker))
	if err != nil {
		log.Fatal(err)
	}
	s.NewJob(gocron.CronJob("*/1 * * * *", false), gocron.NewTask(func() { log.Print("once per minute, somewhere") }))
	s.Start()
	defer s.Shutdown()
}
