package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/gocurator/curator/framework"
	"github.com/gocurator/curator/recipes"
)

// statusSchema is the version of status's JSON output (see statusJSONHelp). Fields may be added
// to it; one that changes or goes away makes a new version.
const statusSchema = 1

// statusJSONHelp documents the JSON that status --json prints; it is part of the usage text.
const statusJSONHelp = `status --json prints one object (schema 1; later versions only add fields):
  schema        1
  path          PATH
  kind          the recipe, told from the nodes: "mutex" (InterProcessMutex,
                LeaderSelector), "read-write lock", "semaphore" (Semaphore,
                SemaphoreMutex), "leader latch", "none" (no such path, or no
                nodes) or "unknown" (nodes of no recipe)
  max_leases    N of --semaphore N for a semaphore, else 0
  holders       the number of participants that hold (role holder or leader)
  waiters       the number of participants that wait (role waiter)
  participants  the nodes in queue order (a semaphore: its lease nodes, then
                its internal mutex's), each an object:
    role        holder, leader (of a leader latch), waiter, or acquiring (the
                head of a semaphore's internal mutex: its acquirer is taking a
                lease, and if it waits for one its lease node is the waiter)
    kind        mutex, reader, writer, lease, internal-lock or latch
    node        the node's full path
    name        the node's name
    sequence    the node's sequence number (-1 if it has none)
    holds       true for holder, leader and acquiring
    id          the node's data: the participant's id
    session     the owning session, 0x and hex
    created     when the node was made, RFC 3339, UTC
    age_seconds seconds since created
Without --semaphore, of a semaphore's lease nodes all hold but the newest one
if the acquirer at the head of its internal mutex made it: that one waits.
`

// participant is one node of a lock, semaphore or election, as status reports it (see
// statusJSONHelp).
type participant struct {
	Role       string    `json:"role"`
	Kind       string    `json:"kind"`
	Node       string    `json:"node"`
	Name       string    `json:"name"`
	Sequence   int64     `json:"sequence"`
	Holds      bool      `json:"holds"`
	ID         string    `json:"id"`
	Session    string    `json:"session"`
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
}

// report is what status prints (see statusJSONHelp).
type report struct {
	Schema       int           `json:"schema"`
	Path         string        `json:"path"`
	Kind         string        `json:"kind"`
	MaxLeases    int           `json:"max_leases"`
	Holders      int           `json:"holders"`
	Waiters      int           `json:"waiters"`
	Participants []participant `json:"participants"`
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	const sub = "status"
	fs := newFlagSet(sub)
	var co common
	co.register(fs)
	var (
		asJSON    bool
		semaphore int
	)
	fs.BoolVar(&asJSON, "json", false, "")
	fs.IntVar(&semaphore, "semaphore", 0, "")
	pos, argv, _, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	// status runs no command: what follows "--" is positional too ("status -- PATH").
	pos = append(pos, argv...)
	if err == nil {
		err = co.check(fs)
	}
	if err == nil {
		switch {
		case len(pos) != 1:
			err = errors.New("status takes one PATH")
		case semaphore < 0:
			err = fmt.Errorf("--semaphore %d is negative", semaphore)
		default:
			err = checkPath(pos[0])
		}
	}
	if err != nil {
		return usageError(stderr, sub, err)
	}
	log := newLogger(co.verbose, stderr)
	defer log.Sync()
	sigs := notifySignals()
	defer sigs.stop()
	ctx, stop := sigs.cancelOnSignal(context.Background())
	defer stop()
	c, code, ok := connectForJob(ctx, &co, log, stderr)
	if !ok {
		return code
	}
	defer c.Close()
	r, err := readStatus(ctx, c, pos[0], semaphore, time.Now())
	if err != nil {
		if code, ok := interruptedCode(context.Cause(ctx)); ok {
			return code
		}
		fmt.Fprintf(stderr, "zklock: status of %s: %v\n", pos[0], err)
		if unreachable(err) {
			return exitUnavailable
		}
		return exitFailure
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			fmt.Fprintf(stderr, "zklock: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	r.print(stdout)
	return exitOK
}

// readStatus reads the lock, semaphore or election at path with recipes.InspectLock and reports
// what it returns; maxLeases 0 means not known.
func readStatus(ctx context.Context, c *framework.Client, path string, maxLeases int, now time.Time) (report, error) {
	r := report{Schema: statusSchema, Path: path, Kind: recipes.RecipeNone.String(), Participants: []participant{}}
	var opts []recipes.InspectOption
	if maxLeases > 0 {
		opts = append(opts, recipes.InspectMaxLeases(maxLeases))
	}
	info, err := recipes.InspectLock(ctx, c, path, opts...)
	if err != nil {
		return r, err
	}
	r.Kind, r.MaxLeases = info.Recipe.String(), info.MaxLeases
	r.Holders, r.Waiters = len(info.Holders()), len(info.Waiters())
	for _, n := range info.Nodes {
		r.Participants = append(r.Participants, participant{
			Role:       role(n),
			Kind:       n.Kind.String(),
			Node:       n.Path,
			Name:       n.Name,
			Sequence:   n.Sequence,
			Holds:      n.Holds,
			ID:         n.ID(),
			Session:    sessionHex(n.SessionID),
			Created:    n.Created.UTC(),
			AgeSeconds: now.Sub(n.Created).Seconds(),
		})
	}
	return r, nil
}

// role is a node's role in status's report (see statusJSONHelp).
func role(n recipes.LockNode) string {
	switch {
	case !n.Holds:
		return "waiter"
	case n.Kind == recipes.NodeLatch:
		return "leader"
	case n.Kind == recipes.NodeInternalLock:
		return "acquiring"
	}
	return "holder"
}

// print writes the report as a table.
func (r *report) print(w io.Writer) {
	if len(r.Participants) == 0 {
		if r.Kind == recipes.RecipeUnknown.String() {
			fmt.Fprintf(w, "%s: no lock nodes (its children are no lock recipe's)\n", r.Path)
			return
		}
		fmt.Fprintf(w, "%s: no holders or waiters\n", r.Path)
		return
	}
	kind := r.Kind
	if r.MaxLeases > 0 {
		kind = fmt.Sprintf("%s of %d %s", kind, r.MaxLeases, plural(r.MaxLeases, "lease"))
	}
	fmt.Fprintf(w, "%s: %s, %d %s, %d %s\n", r.Path, kind,
		r.Holders, plural(r.Holders, "holder"), r.Waiters, plural(r.Waiters, "waiter"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tKIND\tAGE\tID\tSESSION\tNODE")
	for _, p := range r.Participants {
		age := time.Duration(p.AgeSeconds * float64(time.Second))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Role, p.Kind, formatAge(age), strconv.Quote(p.ID), p.Session, p.Name)
	}
	tw.Flush()
}

func plural(n int, s string) string {
	if n == 1 {
		return s
	}
	return s + "s"
}

func formatAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
