package gocronzk_test

import (
	"log"
	"time"

	"github.com/go-co-op/gocron/v2"

	gocronzk "github.com/gocurator/curator/examples/gocron"
	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// Every scheduler process starts a latch on the same path; only the leader's scheduler runs jobs.
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

	s, err := gocron.NewScheduler(gocron.WithDistributedElector(gocronzk.NewElector(latch)))
	if err != nil {
		log.Fatal(err)
	}
	s.NewJob(gocron.DurationJob(time.Minute), gocron.NewTask(func() { log.Print("only on the leader") }))
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

	locker := gocronzk.NewLocker(client, "/locks/jobs", gocronzk.MinHold(20*time.Second))
	s, err := gocron.NewScheduler(gocron.WithDistributedLocker(locker))
	if err != nil {
		log.Fatal(err)
	}
	s.NewJob(gocron.CronJob("*/1 * * * *", false), gocron.NewTask(func() { log.Print("once per minute, somewhere") }))
	s.Start()
	defer s.Shutdown()
}
