package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/gocurator/curator/framework"
)

// participant is one node of a lock, semaphore or election, as status reports it.
type participant struct {
	Role       string    `json:"role"` // holder, waiter, leader or lease (a semaphore lease of unknown state)
	Node       string    `json:"node"` // full path
	Name       string    `json:"name"`
	ID         string    `json:"id"`      // the node's data: the participant id
	Session    string    `json:"session"` // the owning session, in hex
	Created    time.Time `json:"created"`
	AgeSeconds float64   `json:"age_seconds"`
}

// report is what status prints.
type report struct {
	Path         string        `json:"path"`
	Kind         string        `json:"kind"` // mutex, read-write lock, semaphore, leader latch, or none
	Holders      int           `json:"holders"`
	Waiters      int           `json:"waiters"`
	Participants []participant `json:"participants"`
}

func cmdStatus(args []string, stdout, stderr io.Writer) int {
	const sub = "status"
	fs := newFlagSet(sub)
	var co common
	if err := co.register(fs); err != nil {
		return usageError(stderr, sub, err)
	}
	var (
		asJSON    bool
		semaphore int
	)
	fs.BoolVar(&asJSON, "json", false, "")
	fs.IntVar(&semaphore, "semaphore", 0, "")
	pos, argv, dashes, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	if err == nil {
		err = co.check()
	}
	if err == nil {
		switch {
		case len(pos) != 1 || dashes || len(argv) > 0:
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
	c, code, err := connect(ctx, &co, log)
	if err != nil {
		fmt.Fprintf(stderr, "zklock: %v\n", err)
		return code
	}
	defer c.Close()
	r, err := readStatus(ctx, c, pos[0], semaphore, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "zklock: status of %s: %v\n", pos[0], err)
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

// readStatus reads the participants of the lock, semaphore or election at path.
func readStatus(ctx context.Context, c *framework.Client, path string, maxLeases int, now time.Time) (report, error) {
	r := report{Path: path, Kind: "none", Participants: []participant{}}
	names, err := children(ctx, c, path)
	if err != nil {
		return r, err
	}
	if slices.Contains(names, "leases") || slices.Contains(names, "locks") {
		return readSemaphore(ctx, c, r, maxLeases, now)
	}
	sortBySequence(names)
	var roles []string
	r.Kind, roles = queueRoles(names)
	for i, n := range names {
		p, ok, err := readNode(ctx, c, framework.JoinPath(path, n), roles[i], now)
		if err != nil {
			return r, err
		}
		if ok {
			r.add(p)
		}
	}
	return r, nil
}

// readSemaphore reads a semaphore's lease nodes (the first maxLeases of which hold, if maxLeases is
// known) and the nodes of the acquirers queued on its internal mutex (waiters).
func readSemaphore(ctx context.Context, c *framework.Client, r report, maxLeases int, now time.Time) (report, error) {
	r.Kind = "semaphore"
	for _, dir := range []string{"leases", "locks"} {
		parent := framework.JoinPath(r.Path, dir)
		names, err := children(ctx, c, parent)
		if err != nil {
			return r, err
		}
		sortBySequence(names)
		for i, n := range names {
			role := "waiter"
			if dir == "leases" {
				switch {
				case maxLeases == 0:
					role = "lease"
				case i < maxLeases:
					role = "holder"
				}
			}
			p, ok, err := readNode(ctx, c, framework.JoinPath(parent, n), role, now)
			if err != nil {
				return r, err
			}
			if ok {
				r.add(p)
			}
		}
	}
	return r, nil
}

// queueRoles tells the kind of a queue of sorted sequential nodes and each node's role, by
// Curator's rules: the first node of a mutex or an election holds (leads); a read-write lock's
// writer holds when first, and its readers hold until the first writer (or share a holding
// writer's sequence: a downgrade).
func queueRoles(names []string) (kind string, roles []string) {
	roles = make([]string, len(names))
	has := func(s string) bool {
		return slices.ContainsFunc(names, func(n string) bool { return strings.Contains(n, s) })
	}
	switch {
	case len(names) == 0:
		return "none", roles
	case has("__READ__") || has("__WRIT__"):
		kind = "read-write lock"
		firstWriter := slices.IndexFunc(names, func(n string) bool { return strings.Contains(n, "__WRIT__") })
		for i, n := range names {
			roles[i] = "waiter"
			switch {
			case strings.Contains(n, "__WRIT__"):
				if i == 0 {
					roles[i] = "holder"
				}
			case firstWriter < 0 || i < firstWriter,
				firstWriter == 0 && sequence(n) == sequence(names[0]):
				roles[i] = "holder"
			}
		}
		return kind, roles
	case has("latch-"):
		kind = "leader latch"
	default:
		kind = "mutex"
	}
	for i := range names {
		roles[i] = "waiter"
	}
	roles[0] = "holder"
	if kind == "leader latch" {
		roles[0] = "leader"
	}
	return kind, roles
}

// children lists path's children; a missing path has none.
func children(ctx context.Context, c *framework.Client, path string) ([]string, error) {
	names, _, err := c.Children(ctx, path)
	if errors.Is(err, zk.ErrNoNode) {
		return nil, nil
	}
	return names, err
}

// sequence returns the ten-digit sequence number at the end of a sequential node's name, or "" if
// it has none.
func sequence(name string) string {
	if len(name) < 10 {
		return ""
	}
	s := name[len(name)-10:]
	if _, err := strconv.ParseUint(s, 10, 64); err != nil {
		return ""
	}
	return s
}

// sortBySequence sorts node names by their sequence numbers, as Curator does (the part after the
// lock name is the sequence for every recipe); names without one go last, by name.
func sortBySequence(names []string) {
	slices.SortStableFunc(names, func(a, b string) int {
		sa, sb := sequence(a), sequence(b)
		switch {
		case sa == "" && sb == "":
			return strings.Compare(a, b)
		case sa == "":
			return 1
		case sb == "":
			return -1
		}
		return strings.Compare(sa, sb)
	})
}

// readNode reads one participant's node; ok is false if it is gone.
func readNode(ctx context.Context, c *framework.Client, node, role string, now time.Time) (participant, bool, error) {
	data, st, err := c.Get(ctx, node)
	if errors.Is(err, zk.ErrNoNode) {
		return participant{}, false, nil // left meanwhile
	}
	if err != nil {
		return participant{}, false, err
	}
	_, name := framework.SplitPath(node)
	created := time.UnixMilli(st.Ctime)
	return participant{
		Role:       role,
		Node:       node,
		Name:       name,
		ID:         string(data),
		Session:    sessionHex(st.EphemeralOwner),
		Created:    created.UTC(),
		AgeSeconds: now.Sub(created).Seconds(),
	}, true, nil
}

func (r *report) add(p participant) {
	switch p.Role {
	case "holder", "leader":
		r.Holders++
	case "waiter":
		r.Waiters++
	}
	r.Participants = append(r.Participants, p)
}

// print writes the report as a table.
func (r *report) print(w io.Writer) {
	if len(r.Participants) == 0 {
		fmt.Fprintf(w, "%s: no holders or waiters\n", r.Path)
		return
	}
	fmt.Fprintf(w, "%s: %s, %d %s, %d %s\n", r.Path, r.Kind,
		r.Holders, plural(r.Holders, "holder"), r.Waiters, plural(r.Waiters, "waiter"))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ROLE\tAGE\tID\tSESSION\tNODE")
	for _, p := range r.Participants {
		age := time.Duration(p.AgeSeconds * float64(time.Second))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Role, formatAge(age), strconv.Quote(p.ID), p.Session, p.Name)
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
