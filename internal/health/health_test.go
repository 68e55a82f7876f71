package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gantryhq/gantry"
)

func TestRuns(t *testing.T) {
	for _, tc := range []struct {
		hc   *gantry.Healthcheck
		want bool
	}{
		{nil, false},
		{&gantry.Healthcheck{Test: []string{"NONE"}}, false},
		{&gantry.Healthcheck{Test: []string{"CMD", "true"}}, true},
		{&gantry.Healthcheck{Test: []string{"CMD", "NONE"}}, true},
		{&gantry.Healthcheck{HTTPPath: "/"}, true},
		{&gantry.Healthcheck{TCPPort: 80}, true},
		{&gantry.Healthcheck{}, true},
	} {
		if got := Runs(tc.hc); got != tc.want {
			t.Errorf("Runs(%+v) = %v, want %v", tc.hc, got, tc.want)
		}
	}
}

// TestStateMachine follows a health from Start through probe results and
// Stop, as Docker's monitor would.
func TestStateMachine(t *testing.T) {
	const (
		pass = "pass"
		fail = "fail"
		stop = "stop"
	)
	// step is one event: a probe's result, beginning at since after the
	// start, or the run's end; then the health it leaves.
	type step struct {
		event  string
		since  time.Duration
		status string
		streak int
	}
	const (
		starting  = gantry.HealthStarting
		healthy   = gantry.HealthHealthy
		unhealthy = gantry.HealthUnhealthy
	)
	for _, tc := range []struct {
		name  string
		hc    gantry.Healthcheck
		steps []step
	}{
		{"a pass makes it healthy", gantry.Healthcheck{}, []step{
			{pass, 0, healthy, 0},
		}},
		{"Retries failures make it unhealthy, and the streak grows", gantry.Healthcheck{Retries: 2}, []step{
			{fail, 0, starting, 1},
			{fail, 0, unhealthy, 2},
			{fail, 0, unhealthy, 3},
			{pass, 0, healthy, 0},
		}},
		{"fewer than Retries keep it healthy, with a streak", gantry.Healthcheck{Retries: 3}, []step{
			{pass, 0, healthy, 0},
			{fail, 0, healthy, 1},
			{fail, 0, healthy, 2},
			{pass, 0, healthy, 0},
			{fail, 0, healthy, 1},
			{fail, 0, healthy, 2},
			{fail, 0, unhealthy, 3},
		}},
		{"Retries defaults to 3", gantry.Healthcheck{}, []step{
			{fail, 0, starting, 1},
			{fail, 0, starting, 2},
			{fail, 0, unhealthy, 3},
		}},
		{"failures in the start period do not count", gantry.Healthcheck{Retries: 1, StartPeriod: time.Minute}, []step{
			{fail, 0, starting, 0},
			{fail, 59 * time.Second, starting, 0},
			{fail, time.Minute, unhealthy, 1},
		}},
		{"a pass in the start period makes it healthy at once", gantry.Healthcheck{Retries: 1, StartPeriod: time.Minute}, []step{
			{fail, time.Second, starting, 0},
			{pass, 2 * time.Second, healthy, 0},
		}},
		{"once it has passed, failures in the start period count", gantry.Healthcheck{Retries: 2, StartPeriod: time.Minute}, []step{
			{pass, time.Second, healthy, 0},
			{fail, 2 * time.Second, healthy, 1},
			{fail, 3 * time.Second, unhealthy, 2},
			{fail, 4 * time.Second, unhealthy, 3},
		}},
		{"unhealthy counts in the start period", gantry.Healthcheck{Retries: 1, StartPeriod: time.Minute}, []step{
			{pass, time.Second, healthy, 0},
			{fail, 2 * time.Second, unhealthy, 1},
			{fail, 3 * time.Second, unhealthy, 2},
		}},
		{"a stop leaves it unhealthy, the streak kept", gantry.Healthcheck{Retries: 5}, []step{
			{pass, 0, healthy, 0},
			{fail, 0, healthy, 1},
			{fail, 0, healthy, 2},
			{stop, 0, unhealthy, 2},
		}},
		{"a stop while starting", gantry.Healthcheck{}, []step{
			{stop, 0, unhealthy, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := Start()
			if *h != (gantry.Health{Status: starting}) {
				t.Fatalf("Start() = %+v, want starting, no streak", *h)
			}
			for i, s := range tc.steps {
				if s.event == stop {
					Stop(h)
				} else {
					Record(h, &tc.hc, s.event == pass, s.since)
				}
				if want := (gantry.Health{Status: s.status, FailingStreak: s.streak}); *h != want {
					t.Fatalf("after step %d (%s at %v): %+v, want %+v", i, s.event, s.since, *h, want)
				}
			}
		})
	}
}

func TestStopNil(t *testing.T) {
	Stop(nil)
}

// TestMonitorSchedule: the first probe an Interval after the start, the
// next an Interval after one ends; Done ends the monitor.
func TestMonitorSchedule(t *testing.T) {
	const interval = 40 * time.Millisecond
	const probeTime = 20 * time.Millisecond
	done := make(chan struct{})
	var began []time.Time
	ended := make(chan struct{})
	m := Monitor{
		Check: gantry.Healthcheck{Interval: interval},
		Done:  done,
		Probe: func(ctx context.Context) bool { time.Sleep(probeTime); return true },
		Result: func(passed bool, b time.Time) bool {
			began = append(began, b)
			if len(began) == 3 {
				close(done)
			}
			return true
		},
	}
	start := time.Now()
	go func() { m.Run(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the monitor did not end with Done")
	}
	if len(began) != 3 {
		t.Fatalf("%d probes, want 3", len(began))
	}
	if d := began[0].Sub(start); d < interval {
		t.Errorf("first probe %v after the start, want an Interval, %v", d, interval)
	}
	for i := 1; i < len(began); i++ {
		if d := began[i].Sub(began[i-1]); d < interval+probeTime {
			t.Errorf("probe %d began %v after the one before, want at least %v", i, d, interval+probeTime)
		}
	}
}

// TestMonitorResultEnds: Result returning false ends the monitor.
func TestMonitorResultEnds(t *testing.T) {
	var n atomic.Int32
	m := Monitor{
		Check:  gantry.Healthcheck{Interval: time.Millisecond},
		Done:   make(chan struct{}),
		Probe:  func(context.Context) bool { return false },
		Result: func(bool, time.Time) bool { return n.Add(1) < 3 },
	}
	m.Run()
	if n.Load() != 3 {
		t.Errorf("%d results, want 3", n.Load())
	}
}

// TestMonitorGivesUp: a probe's context ends after the Timeout, or when
// Done or Abort is closed; Abort does not end the monitor.
func TestMonitorGivesUp(t *testing.T) {
	hang := func(ctx context.Context) bool { <-ctx.Done(); return false }
	t.Run("timeout", func(t *testing.T) {
		var took time.Duration
		m := Monitor{
			Check: gantry.Healthcheck{Interval: time.Millisecond, Timeout: 20 * time.Millisecond},
			Done:  make(chan struct{}),
			Probe: hang,
			Result: func(passed bool, began time.Time) bool {
				took = time.Since(began)
				if passed {
					t.Error("a probe that outlasted its Timeout passed")
				}
				return false
			},
		}
		m.Run()
		if took < 20*time.Millisecond || took > 5*time.Second {
			t.Errorf("the probe took %v, want its 20ms Timeout", took)
		}
	})
	t.Run("done", func(t *testing.T) {
		done := make(chan struct{})
		ended := make(chan struct{})
		m := Monitor{
			Check:  gantry.Healthcheck{Interval: time.Millisecond, Timeout: time.Hour},
			Done:   done,
			Probe:  func(ctx context.Context) bool { close(done); return hang(ctx) },
			Result: func(bool, time.Time) bool { return true },
		}
		go func() { m.Run(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("Done did not give up the probe and end the monitor")
		}
	})
	t.Run("abort", func(t *testing.T) {
		done, abort := make(chan struct{}), make(chan struct{})
		var results atomic.Int32
		ended := make(chan struct{})
		m := Monitor{
			Check: gantry.Healthcheck{Interval: time.Millisecond, Timeout: time.Hour},
			Done:  done,
			Abort: abort,
			Probe: func(ctx context.Context) bool {
				if results.Load() == 0 {
					close(abort)
				}
				return hang(ctx)
			},
			Result: func(passed bool, _ time.Time) bool {
				if results.Add(1) == 2 {
					close(done)
				}
				return true
			},
		}
		go func() { m.Run(); close(ended) }()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("Abort did not give up the probes")
		}
		if results.Load() != 2 {
			t.Errorf("%d results, want 2: Abort does not end the monitor", results.Load())
		}
	})
}

func TestProbeCommand(t *testing.T) {
	for _, tc := range []struct {
		test []string
		want []string
	}{
		{[]string{"CMD", "check", "-v"}, []string{"check", "-v"}},
		{[]string{"CMD-SHELL", "test -e /ok && echo hi"}, []string{"/bin/sh", "-c", "test -e /ok && echo hi"}},
	} {
		for _, result := range []bool{true, false} {
			var argv []string
			got := Probe(t.Context(), &gantry.Healthcheck{Test: tc.test}, 0, func(_ context.Context, a []string) bool {
				argv = a
				return result
			})
			if got != result || !slices.Equal(argv, tc.want) {
				t.Errorf("Probe of %q: ran %q, %v; want %q, %v", tc.test, argv, got, tc.want, result)
			}
		}
	}
}

func TestProbeTCP(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	hc := &gantry.Healthcheck{TCPPort: port}
	if !Probe(t.Context(), hc, 0, nil) {
		t.Error("a TCP probe failed with a listener")
	}
	srv.Close()
	if Probe(t.Context(), hc, 0, nil) {
		t.Error("a TCP probe passed with nothing listening")
	}
}

func TestProbeHTTP(t *testing.T) {
	var code atomic.Int32
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		if c := int(code.Load()); c == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", c)
		} else {
			w.WriteHeader(c)
		}
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		code int
		want bool
	}{
		{http.StatusOK, true},
		{http.StatusNoContent, true},
		{http.StatusFound, true},
		{http.StatusNotModified, true},
		{http.StatusNotFound, false},
		{http.StatusInternalServerError, false},
		{http.StatusServiceUnavailable, false},
	} {
		code.Store(int32(tc.code))
		// hc.Port first; port when hc.Port is 0.
		for _, hc := range []*gantry.Healthcheck{
			{HTTPPath: "/healthz", Port: port},
			{HTTPPath: "/healthz"},
		} {
			if got := Probe(t.Context(), hc, port, nil); got != tc.want {
				t.Errorf("HTTP probe on a %d (Port %d): %v, want %v", tc.code, hc.Port, got, tc.want)
			}
			if p, _ := path.Load().(string); p != "/healthz" {
				t.Errorf("probed %q, want /healthz (a redirect is not followed)", p)
			}
		}
	}
	code.Store(http.StatusOK)
	if !Probe(t.Context(), &gantry.Healthcheck{HTTPPath: "/healthz", Port: port}, 1, nil) {
		t.Error("hc.Port was not preferred to the port given")
	}
	srv.Close()
	if Probe(t.Context(), &gantry.Healthcheck{HTTPPath: "/healthz"}, port, nil) {
		t.Error("an HTTP probe passed with nothing listening")
	}
}

// TestProbeContext: a probe fails when its context ends.
func TestProbeContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The connection opens (the listener's backlog), and no answer comes.
	port := ln.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if Probe(ctx, &gantry.Healthcheck{HTTPPath: "/", Port: port}, 0, nil) {
		t.Error("an HTTP probe that outlasted its context passed")
	}
}
