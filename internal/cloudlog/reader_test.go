package cloudlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/gcperr"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The tests here follow a reader through a Cloud Logging service of their
// own, in a synctest bubble: the service runs in the test process and the
// client reaches it over an in-memory connection (bufconn) rather than a
// socket, so every goroutine, the gRPC ones included, blocks only on
// things inside the bubble, and the bubble's fake clock moves only when
// all of them wait. The instants asserted are therefore exact: a reader
// that ends Grace after the stop ends at that instant, not before and not
// a scheduling delay after.

const (
	testProject = "p"
	stdoutLog   = "stdout"
	stderrLog   = "stderr"
)

// fakeLogging is the Cloud Logging service the reader talks to. Listings
// return the entries written to it (by log name and time bounds, in the
// order asked); tail streams send only what the test tells them to.
type fakeLogging struct {
	loggingpb.UnimplementedLoggingServiceV2Server
	start time.Time // the bubble's start; instants are counted from it
	// refuse, when set, gives the error the k-th tail stream (from 1)
	// fails with at once, or nil to serve it.
	refuse func(k int) error
	tails  chan *tailStream // every stream served, as it takes its request

	mu      sync.Mutex
	entries []*loggingpb.LogEntry
	ids     int
	lists   []listCall
	tailAt  []time.Duration
}

type listCall struct {
	at     time.Duration
	filter string
}

// tailStream is one TailLogEntries stream the service holds open.
type tailStream struct {
	filter string
	send   chan []*loggingpb.LogEntry
	end    chan error
	gone   chan struct{} // closed when the stream has ended
}

// Send makes the stream answer with entries, unless it has ended.
func (s *tailStream) Send(es ...*loggingpb.LogEntry) {
	select {
	case s.send <- es:
	case <-s.gone:
	}
}

// End ends the stream with err (nil: the service closes it).
func (s *tailStream) End(err error) {
	select {
	case s.end <- err:
	case <-s.gone:
	}
}

// startFake serves a fakeLogging in the bubble and returns a client of
// it; both are shut down when the test ends.
func startFake(t *testing.T) (*fakeLogging, *logging.Client) {
	t.Helper()
	f := &fakeLogging{start: time.Now(), tails: make(chan *tailStream, 64)}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	loggingpb.RegisterLoggingServiceV2Server(srv, f)
	go srv.Serve(lis)
	conn, err := grpc.NewClient("passthrough:///fake-logging",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	c, err := logging.NewClient(t.Context(), option.WithGRPCConn(conn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
		srv.Stop()
		lis.Close()
	})
	return f, c
}

// entry makes a stdout entry with a fresh insertId.
func (f *fakeLogging) entry(line string, at time.Time) *loggingpb.LogEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ids++
	return &loggingpb.LogEntry{
		LogName:   LogName(testProject, stdoutLog),
		InsertId:  fmt.Sprint("id", f.ids),
		Timestamp: timestamppb.New(at),
		Payload:   &loggingpb.LogEntry_TextPayload{TextPayload: line},
	}
}

// write makes entries visible to listings from now on.
func (f *fakeLogging) write(es ...*loggingpb.LogEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.entries = append(f.entries, es...)
}

// listTimes returns the instants of the ListLogEntries calls so far.
func (f *fakeLogging) listTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []time.Duration
	for _, l := range f.lists {
		out = append(out, l.at)
	}
	return out
}

func (f *fakeLogging) lastList() listCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.lists) == 0 {
		return listCall{}
	}
	return f.lists[len(f.lists)-1]
}

func (f *fakeLogging) tailTimes() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tailAt)
}

// nextTail returns the next stream the service takes, as soon as it does.
func (f *fakeLogging) nextTail(t *testing.T) *tailStream {
	t.Helper()
	select {
	case s := <-f.tails:
		return s
	default:
	}
	synctest.Wait()
	select {
	case s := <-f.tails:
		return s
	default:
		t.Fatal("no tail stream is open")
		return nil
	}
}

// awaitTail returns the next stream the service takes, waiting for it on
// the fake clock while the reader reads on.
func (f *fakeLogging) awaitTail(t *testing.T, done <-chan readout) *tailStream {
	t.Helper()
	select {
	case s := <-f.tails:
		return s
	case out := <-done:
		t.Fatalf("the reader ended at %v with %v, before it opened another stream", out.end, out.err)
		return nil
	}
}

var (
	sinceRE   = regexp.MustCompile(`timestamp>="([^"]+)"`)
	untilRE   = regexp.MustCompile(`timestamp<="([^"]+)"`)
	logNameRE = regexp.MustCompile(`logName:"([^"]+)"`)
)

func (f *fakeLogging) ListLogEntries(ctx context.Context, req *loggingpb.ListLogEntriesRequest) (*loggingpb.ListLogEntriesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists = append(f.lists, listCall{time.Since(f.start), req.GetFilter()})
	bound := func(re *regexp.Regexp) (time.Time, bool) {
		m := re.FindStringSubmatch(req.GetFilter())
		if m == nil {
			return time.Time{}, false
		}
		t, err := time.Parse(time.RFC3339Nano, m[1])
		return t, err == nil
	}
	since, hasSince := bound(sinceRE)
	until, hasUntil := bound(untilRE)
	var names []string
	for _, m := range logNameRE.FindAllStringSubmatch(req.GetFilter(), -1) {
		names = append(names, m[1])
	}
	var out []*loggingpb.LogEntry
	for _, e := range f.entries {
		at := e.GetTimestamp().AsTime()
		if hasSince && at.Before(since) || hasUntil && at.After(until) || !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(e.GetLogName(), n) }) {
			continue
		}
		out = append(out, e)
	}
	slices.SortStableFunc(out, func(a, b *loggingpb.LogEntry) int {
		return a.GetTimestamp().AsTime().Compare(b.GetTimestamp().AsTime())
	})
	if req.GetOrderBy() == "timestamp desc" {
		slices.Reverse(out)
	}
	if n := int(req.GetPageSize()); n > 0 && len(out) > n {
		out = out[:n]
	}
	return &loggingpb.ListLogEntriesResponse{Entries: out}, nil
}

func (f *fakeLogging) TailLogEntries(st loggingpb.LoggingServiceV2_TailLogEntriesServer) error {
	f.mu.Lock()
	k := len(f.tailAt) + 1
	f.mu.Unlock()
	if f.refuse != nil {
		if err := f.refuse(k); err != nil {
			f.mu.Lock()
			f.tailAt = append(f.tailAt, time.Since(f.start))
			f.mu.Unlock()
			return err
		}
	}
	req, err := st.Recv()
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.tailAt = append(f.tailAt, time.Since(f.start))
	f.mu.Unlock()
	s := &tailStream{filter: req.GetFilter(), send: make(chan []*loggingpb.LogEntry), end: make(chan error), gone: make(chan struct{})}
	defer close(s.gone)
	f.tails <- s
	for {
		select {
		case es := <-s.send:
			if err := st.Send(&loggingpb.TailLogEntriesResponse{Entries: es}); err != nil {
				return err
			}
		case err := <-s.end:
			return err
		case <-st.Context().Done():
			return st.Context().Err()
		}
	}
}

// source is a Source on the fake service for the test to complete.
func source(c *logging.Client) Source {
	var filter Filter
	filter.Eq("resource.type", "test")
	return Source{
		Client:    c,
		Project:   testProject,
		Filter:    &filter,
		StdoutLog: stdoutLog,
		StderrLog: stderrLog,
		Describe:  "test",
	}
}

// stoppedAt is a Source.Stopped that learns at the instant learn (from
// start) that the container stopped at the instant at.
func stoppedAt(start time.Time, learn, at time.Duration) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		t := time.NewTimer(time.Until(start.Add(learn)))
		defer t.Stop()
		select {
		case <-t.C:
			return start.Add(at), nil
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// neverStops is a Source.Stopped for a container that runs on.
func neverStops(ctx context.Context) (time.Time, error) {
	<-ctx.Done()
	return time.Time{}, ctx.Err()
}

// line is an entry as read, with the instant Next returned it.
type line struct {
	text string
	at   time.Duration
}

// readout is what reading a LogReader to its end gave.
type readout struct {
	lines []line
	err   error
	end   time.Duration // when Next returned err
}

func (r readout) texts() []string {
	var out []string
	for _, l := range r.lines {
		out = append(out, l.text)
	}
	return out
}

// finish waits for what readAll gave, for an hour of the fake clock at
// most.
func finish(t *testing.T, done <-chan readout) readout {
	t.Helper()
	select {
	case out := <-done:
		return out
	case <-time.After(time.Hour):
		t.Fatal("the reader has not ended after an hour")
		return readout{}
	}
}

// readAll reads r to its end in a goroutine of the bubble.
func readAll(r gantry.LogReader, start time.Time) <-chan readout {
	done := make(chan readout, 1)
	go func() {
		var out readout
		for {
			e, err := r.Next()
			if err != nil {
				out.err, out.end = err, time.Since(start)
				done <- out
				return
			}
			out.lines = append(out.lines, line{e.Line, time.Since(start)})
		}
	}()
	return done
}

func ms(n ...int) []time.Duration {
	out := make([]time.Duration, len(n))
	for i, k := range n {
		out[i] = time.Duration(k) * time.Millisecond
	}
	return out
}

// TestFollowEndsGraceAfterTheStop: a following reader ends exactly Grace
// after the instant the container stopped, however late it learns that
// instant, and at once if that is already past; until it ends, the late
// entries a final listing finds are still returned.
func TestFollowEndsGraceAfterTheStop(t *testing.T) {
	const grace = 5 * time.Second
	for _, tc := range []struct {
		name         string
		learn, at    time.Duration // Stopped returns at learn, saying at
		nilStopped   bool          // no Stopped: the container has stopped
		wantEnd      time.Duration
		lateAt, late time.Duration // an entry written at lateAt saying late
	}{
		{name: "learnt at once", learn: 2 * time.Second, at: 2 * time.Second, wantEnd: 7 * time.Second, lateAt: 6 * time.Second, late: 1900 * time.Millisecond},
		// The grace counts from when the stop was seen, not from the
		// completion time Stopped reports: a slow poll must not eat it.
		{name: "learnt late", learn: 3 * time.Second, at: 1 * time.Second, wantEnd: 8 * time.Second, lateAt: 5500 * time.Millisecond, late: 900 * time.Millisecond},
		{name: "learnt after the grace", learn: 10 * time.Second, at: 1 * time.Second, wantEnd: 15 * time.Second, lateAt: 9 * time.Second, late: 900 * time.Millisecond},
		{name: "no Stopped", nilStopped: true, wantEnd: grace, lateAt: 4 * time.Second, late: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := startFake(t)
				start := f.start
				f.write(f.entry("history", start.Add(-time.Minute)))
				src := source(c)
				src.Grace = grace
				if !tc.nilStopped {
					src.Stopped = stoppedAt(start, tc.learn, tc.at)
				}
				r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				done := readAll(r, start)
				// The stream answers 500ms in with an entry that a listing
				// finds too: it is returned once.
				s := f.nextTail(t)
				time.Sleep(500 * time.Millisecond)
				live := f.entry("live", time.Now())
				f.write(live)
				s.Send(live)
				// An entry ingested late, after it was written, and after
				// any listing but the last.
				time.Sleep(tc.lateAt - 500*time.Millisecond)
				f.write(f.entry("late", start.Add(tc.late)))

				out := finish(t, done)
				if !errors.Is(out.err, io.EOF) {
					t.Fatalf("follow ended with %v, want io.EOF", out.err)
				}
				if out.end != tc.wantEnd {
					t.Errorf("follow ended at %v, want %v", out.end, tc.wantEnd)
				}
				// Lines come in the order they were written.
				want := []string{"history", "live", "late"}
				if tc.late < 500*time.Millisecond {
					want = []string{"history", "late", "live"}
				}
				if got := out.texts(); !slices.Equal(got, want) {
					t.Errorf("lines %q, want %q", got, want)
				}
				if l := f.lastList(); l.at != tc.wantEnd {
					t.Errorf("last listing at %v, want at the end, %v", l.at, tc.wantEnd)
				}
			})
		})
	}
}

// TestFollowEndsGraceAfterUntil: with Until, a reader whose container runs
// on ends Grace after Until; if the container stops first, Grace after
// the stop.
func TestFollowEndsGraceAfterUntil(t *testing.T) {
	const grace = 5 * time.Second
	for _, tc := range []struct {
		name      string
		until     time.Duration
		stop      time.Duration // 0: never stops
		wantEnd   time.Duration
		wantLines []string
	}{
		{name: "running", until: 2 * time.Second, wantEnd: 7 * time.Second, wantLines: []string{"a", "b"}},
		{name: "until past", until: -time.Second, wantEnd: 4 * time.Second, wantLines: []string{"a"}},
		{name: "stopped first", until: 3 * time.Second, stop: time.Second, wantEnd: 6 * time.Second, wantLines: []string{"a", "b"}},
		{name: "stopped after until", until: time.Second, stop: 3 * time.Second, wantEnd: 6 * time.Second, wantLines: []string{"a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := startFake(t)
				start := f.start
				f.write(f.entry("a", start.Add(-2*time.Second)), f.entry("b", start.Add(1500*time.Millisecond)))
				src := source(c)
				src.Grace = grace
				src.Stopped = neverStops
				if tc.stop > 0 {
					src.Stopped = stoppedAt(start, tc.stop, tc.stop)
				}
				r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true, Until: start.Add(tc.until)})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				out := finish(t, readAll(r, start))
				if !errors.Is(out.err, io.EOF) {
					t.Fatalf("follow ended with %v, want io.EOF", out.err)
				}
				if out.end != tc.wantEnd {
					t.Errorf("follow ended at %v, want %v", out.end, tc.wantEnd)
				}
				if got := out.texts(); !slices.Equal(got, tc.wantLines) {
					t.Errorf("lines %q, want %q", got, tc.wantLines)
				}
			})
		})
	}
}

// TestFollowRelistsUntilTheStreamIsLive: until the tail stream has
// answered, the reader lists again at Settle and doubling delays, up to
// Grace; its first answer brings one more listing at once and no more
// until the final one.
func TestFollowRelistsUntilTheStreamIsLive(t *testing.T) {
	const settle, grace, stop = time.Second, 10 * time.Second, 20 * time.Second
	for _, tc := range []struct {
		name      string
		answer    time.Duration // when the stream first answers; 0: never
		wantLists []time.Duration
	}{
		// The history, then relists 1, 2, 4, 8 and 10 (Grace) seconds
		// apart, then the final listing Grace after the stop.
		{name: "silent stream", wantLists: ms(0, 1000, 3000, 7000, 15000, 25000, 30000)},
		{name: "live at 2.5s", answer: 2500 * time.Millisecond, wantLists: ms(0, 1000, 2500, 30000)},
		// Live before the gap is written: the final listing finds it.
		{name: "live at 0.2s", answer: 200 * time.Millisecond, wantLists: ms(0, 200, 30000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f, c := startFake(t)
				start := f.start
				src := source(c)
				src.Grace, src.Settle = grace, settle
				src.Stopped = stoppedAt(start, stop, stop)
				r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				done := readAll(r, start)
				s := f.nextTail(t)
				// Written after the history listing, never sent by the
				// stream: only a relisting finds it.
				const gapAt = 500 * time.Millisecond
				answer := func() { s.Send(f.entry("live", time.Now())) }
				switch {
				case tc.answer == 0:
					time.Sleep(gapAt)
					f.write(f.entry("gap", time.Now()))
				case tc.answer < gapAt:
					time.Sleep(tc.answer)
					answer()
					time.Sleep(gapAt - tc.answer)
					f.write(f.entry("gap", time.Now()))
				default:
					time.Sleep(gapAt)
					f.write(f.entry("gap", time.Now()))
					time.Sleep(tc.answer - gapAt)
					answer()
				}
				out := finish(t, done)
				if out.end != stop+grace || !errors.Is(out.err, io.EOF) {
					t.Errorf("follow ended at %v with %v, want io.EOF at %v", out.end, out.err, stop+grace)
				}
				if got := f.listTimes(); !slices.Equal(got, tc.wantLists) {
					t.Errorf("listings at %v, want %v", got, tc.wantLists)
				}
				// The gap is found by the first listing after it was
				// written, and released once the grace has passed since
				// it was written, by when anything written before it has
				// arrived too.
				i := slices.IndexFunc(out.lines, func(l line) bool { return l.text == "gap" })
				if i < 0 || strings.Count(strings.Join(out.texts(), "\n"), "gap") != 1 {
					t.Fatalf("lines %q, want the gap line once", out.texts())
				}
				after, _ := slices.BinarySearch(tc.wantLists, gapAt)
				if want := max(tc.wantLists[after], gapAt+grace); out.lines[i].at != want {
					t.Errorf("the gap line came at %v, want %v: found by the listing at %v, held until %v", out.lines[i].at, want, tc.wantLists[after], gapAt+grace)
				}
			})
		})
	}
}

// TestFollowKeepsLinesWrittenBeforeTheStreamIsLive: a line written after
// the history listing but before the stream is live is in neither; later
// lines come through the stream with timestamps well past the grace
// period, so the final listing does not look back far enough for it. It
// must still arrive, exactly once, however long the stream took.
func TestFollowKeepsLinesWrittenBeforeTheStreamIsLive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 5 * time.Second
		f, c := startFake(t)
		start := f.start
		src := source(c)
		src.Grace = grace // Settle: 100ms by default
		stop := make(chan time.Time, 1)
		src.Stopped = func(ctx context.Context) (time.Time, error) {
			select {
			case at := <-stop:
				return at, nil
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		done := readAll(r, start)
		s := f.nextTail(t)
		// Five relistings (at 100ms, 300ms, 700ms, 1.5s and 3.1s) with the
		// stream silent, then the gap line.
		const gapAt = 3200 * time.Millisecond
		time.Sleep(gapAt)
		if got, want := f.listTimes(), ms(0, 100, 300, 700, 1500, 3100); !slices.Equal(got, want) {
			t.Fatalf("listings at %v before the gap, want %v", got, want)
		}
		gap := start.Add(gapAt)
		f.write(f.entry("gap", gap))
		var want []string
		for i := range 3 {
			e := f.entry(fmt.Sprint("later", i), gap.Add(10*time.Second+time.Duration(i)*time.Millisecond))
			f.write(e)
			s.Send(e)
			want = append(want, e.GetTextPayload())
		}
		stop <- time.Now()
		out := finish(t, done)
		if !errors.Is(out.err, io.EOF) {
			t.Fatalf("follow ended with %v, want io.EOF", out.err)
		}
		if out.end != gapAt+grace {
			t.Errorf("follow ended at %v, want %v", out.end, gapAt+grace)
		}
		want = append(want, "gap")
		got := out.texts()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("followed lines %q, want %q, each exactly once", got, want)
		}
		// The final listing looks back one grace period before the newest
		// entry, no further.
		if l, from := f.lastList(), Timestamp(gap.Add(10*time.Second+2*time.Millisecond-grace)); !strings.Contains(l.filter, `timestamp>="`+from+`"`) {
			t.Errorf("final listing %q, want it from %s", l.filter, from)
		}
	})
}

// TestFollowLooksBackOneGraceForLateEntries: entries reach Cloud Logging
// late with their own, earlier, timestamps. Following looks back one
// grace period before the newest entry of the history; and while the
// stream has never answered, the final listing looks back as far, not
// just one grace period before the newest entry seen.
func TestFollowLooksBackOneGraceForLateEntries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settle, grace, stop = time.Second, 10 * time.Second, 20 * time.Second
		f, c := startFake(t)
		start := f.start
		at := func(d time.Duration) time.Time { return start.Add(d) }
		f.write(f.entry("history", at(-time.Second)))
		src := source(c)
		src.Grace, src.Settle = grace, settle
		src.Stopped = stoppedAt(start, stop, stop)
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		done := readAll(r, start)
		low := `timestamp>="` + Timestamp(at(-time.Second-grace)) + `"`
		if s := f.nextTail(t); !strings.Contains(s.filter, low) {
			t.Errorf("stream filter %q, want it from %s", s.filter, low)
		}
		// The stream never answers; listings come at 0, 1, 3, 7, 15, 25
		// and, finally, 30 seconds, all of them from one grace period
		// before the newest entry of the history.
		time.Sleep(500 * time.Millisecond)
		f.write(f.entry("late", at(-3*time.Second)), f.entry("too old", at(-1*time.Second-grace-time.Millisecond)))
		time.Sleep(19500 * time.Millisecond)
		f.write(f.entry("recent", at(19*time.Second)))
		time.Sleep(6 * time.Second)
		f.write(f.entry("later late", at(2*time.Second)))
		out := finish(t, done)
		if out.end != stop+grace || !errors.Is(out.err, io.EOF) {
			t.Errorf("follow ended at %v with %v, want io.EOF at %v", out.end, out.err, stop+grace)
		}
		// Each is released once the grace has passed since it was
		// written (and not before a listing has found it).
		want := []line{{"late", -3*time.Second + grace}, {"history", -time.Second + grace}, {"recent", 19*time.Second + grace}, {"later late", stop + grace}}
		if !slices.Equal(out.lines, want) {
			t.Errorf("lines %v, want %v", out.lines, want)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, l := range f.lists[1:] {
			if !strings.Contains(l.filter, low) {
				t.Errorf("listing at %v: filter %q, want it from %s", l.at, l.filter, low)
			}
		}
	})
}

// TestFollowKeepsReopeningAStreamThatAnswers: the limit on attempts is
// for a stream that fails without answering; one that answered before it
// dropped starts counting again.
func TestFollowKeepsReopeningAStreamThatAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const drops = 2 * gcperr.MaxAttempts
		f, c := startFake(t)
		src := source(c)
		stop := make(chan time.Time, 1)
		src.Grace = 5 * time.Second
		src.Stopped = func(ctx context.Context) (time.Time, error) {
			select {
			case at := <-stop:
				return at, nil
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			}
		}
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		done := readAll(r, f.start)
		var want []string
		for i := range drops {
			s := f.awaitTail(t, done)
			e := f.entry(fmt.Sprint("line", i), time.Now())
			want = append(want, e.GetTextPayload())
			s.Send(e)
			time.Sleep(time.Second)
			s.End(status.Error(codes.Unavailable, "dropped"))
		}
		f.awaitTail(t, done)
		stop <- time.Now()
		out := finish(t, done)
		if !errors.Is(out.err, io.EOF) {
			t.Errorf("follow through %d dropped streams ended with %v, want io.EOF", drops, out.err)
		}
		if got := out.texts(); !slices.Equal(got, want) {
			t.Errorf("lines %q, want %q", got, want)
		}
		if n := len(f.tailTimes()); n != drops+1 {
			t.Errorf("%d streams opened, want %d", n, drops+1)
		}
	})
}

// TestFollowRelistsAfterTheStreamReopens: a stream the service ends is
// opened again, and until the new one answers the reader relists from
// Settle on again.
func TestFollowRelistsAfterTheStreamReopens(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const settle, grace, stop = time.Second, 10 * time.Second, 60 * time.Second
		f, c := startFake(t)
		start := f.start
		src := source(c)
		src.Grace, src.Settle = grace, settle
		src.Stopped = stoppedAt(start, stop, stop)
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		done := readAll(r, start)
		s1 := f.nextTail(t)
		time.Sleep(2500 * time.Millisecond)
		s1.Send(f.entry("one", time.Now()))
		time.Sleep(time.Second)
		s1.End(nil)
		s2 := f.awaitTail(t, done) // reopened after a pause of the stream's backoff
		reopened := time.Since(start)
		time.Sleep(4 * time.Second)
		s2.Send(f.entry("two", time.Now()))
		out := finish(t, done)
		if out.end != stop+grace || !errors.Is(out.err, io.EOF) {
			t.Errorf("follow ended at %v with %v, want io.EOF at %v", out.end, out.err, stop+grace)
		}
		if got := out.texts(); !slices.Equal(got, []string{"one", "two"}) {
			t.Errorf("lines %q, want [one two]", got)
		}
		tails := f.tailTimes()
		if len(tails) != 2 || tails[1] != reopened {
			t.Fatalf("streams opened at %v, want two, the second at %v", tails, reopened)
		}
		if pause := reopened - 3500*time.Millisecond; pause <= 0 || pause > gcperr.DefaultBackoff.Initial {
			t.Errorf("stream reopened %v after it ended, want within the first backoff, %v", pause, gcperr.DefaultBackoff.Initial)
		}
		want := []time.Duration{0, settle, 2500 * time.Millisecond, // first stream
			reopened + settle, reopened + 3*settle, reopened + 4*time.Second, // second stream
			stop + grace}
		if got := f.listTimes(); !slices.Equal(got, want) {
			t.Errorf("listings at %v, want %v", got, want)
		}
	})
}

// TestFollowGivesUpOnAnUnavailableStream: a stream refused as UNAVAILABLE
// is opened again with backoff, MaxAttempts times in all, and then the
// reader fails with ErrUnavailable.
func TestFollowGivesUpOnAnUnavailableStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		f.refuse = func(int) error { return status.Error(codes.Unavailable, "try later") }
		src := source(c)
		src.Grace, src.Stopped = 5*time.Second, neverStops
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := finish(t, readAll(r, f.start))
		if !errors.Is(out.err, gantry.ErrUnavailable) || !strings.Contains(out.err.Error(), "test: tail log entries") {
			t.Errorf("follow ended with %v, want ErrUnavailable from the tail", out.err)
		}
		tails := f.tailTimes()
		if len(tails) != gcperr.MaxAttempts {
			t.Errorf("%d streams opened, want %d", len(tails), gcperr.MaxAttempts)
		}
		// Each pause is at most the backoff's current step: 50ms doubling
		// up to 2s.
		b, limit := gcperr.Backoff(), time.Duration(0)
		for range gcperr.MaxAttempts - 1 {
			limit += b.Initial
			b.Initial = min(2*b.Initial, b.Max)
		}
		if out.end > limit || out.end != tails[len(tails)-1] {
			t.Errorf("follow failed at %v (last stream at %v), want with the last stream, within %v", out.end, tails[len(tails)-1], limit)
		}
	})
}

// TestFollowEndsWithStoppedError: a Stopped that fails ends the reader
// with its error, at once.
func TestFollowEndsWithStoppedError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		boom := errors.New("boom")
		src := source(c)
		src.Grace = 5 * time.Second
		src.Stopped = func(ctx context.Context) (time.Time, error) {
			time.Sleep(2 * time.Second)
			return time.Time{}, boom
		}
		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		out := finish(t, readAll(r, f.start))
		if !errors.Is(out.err, boom) || out.end != 2*time.Second {
			t.Errorf("follow ended at %v with %v, want %v at 2s", out.end, out.err, boom)
		}
	})
}

// TestCloseMidFollowIsPrompt: closing a following reader returns at once
// (on the fake clock), leaves none of its goroutines behind, and Next then
// reports io.EOF; cancelling Open's context ends it, at once, with the
// context's error.
func TestCloseMidFollowIsPrompt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, c := startFake(t)
		start := f.start
		f.write(f.entry("started", start))
		src := source(c)
		src.Grace, src.Stopped = 5*time.Second, neverStops

		r, err := Open(t.Context(), src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		// The line is held for the grace after it was written.
		if e, err := r.Next(); err != nil || e.Line != "started" || time.Since(start) != src.Grace {
			t.Fatalf("Next = %+v, %v at %v; want the line at %v", e, err, time.Since(start), src.Grace)
		}
		time.Sleep(3 * time.Second)
		closing := time.Now()
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(closing); d != 0 {
			t.Errorf("Close took %v, want no time", d)
		}
		synctest.Wait()
		if left := readerGoroutines(); left != "" {
			t.Errorf("goroutines of the reader outlive Close:\n%s", left)
		}
		if _, err := r.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("Next after Close: %v, want io.EOF", err)
		}

		ctx, cancel := context.WithCancel(t.Context())
		r, err = Open(ctx, src, gantry.LogsOptions{Follow: true})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		done := readAll(r, start)
		time.Sleep(time.Second)
		cancelled := time.Since(start)
		cancel()
		if out := finish(t, done); !errors.Is(out.err, context.Canceled) || out.end != cancelled {
			t.Errorf("follow ended at %v with %v, want context.Canceled at %v", out.end, out.err, cancelled)
		}
	})
}

// readerGoroutines returns the stacks of the goroutines that have a frame
// in the reader's code.
func readerGoroutines() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "internal/cloudlog.(*producer)") || strings.Contains(g, "internal/cloudlog.Open") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
