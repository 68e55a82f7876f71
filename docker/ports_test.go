package docker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/docker"
	"github.com/gantryhq/gantry/runtimetest"
)

// networkRuntime is a Runtime whose containers run on network mode.
func networkRuntime(t *testing.T, mode string) *docker.Runtime {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rt, err := docker.New(ctx, docker.WithNetwork(mode))
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// echoSpec serves a TCP echo on port 7777 (cat for each connection).
func echoSpec(ports ...gantry.Port) gantry.Spec {
	s := shSpec("echo ready; exec nc -ll -p 7777 -e cat")
	s.Ports = ports
	return s
}

// echo dials with dial until the echo of a line comes back.
func echo(t *testing.T, dial func(context.Context) (net.Conn, error)) {
	t.Helper()
	const msg = "hello\n"
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		got, err := func() (string, error) {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			c, err := dial(ctx)
			if err != nil {
				return "", err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, msg)
			c.(interface{ CloseWrite() error }).CloseWrite()
			b, err := io.ReadAll(c)
			return string(b), err
		}()
		if err == nil && got == msg {
			return
		}
		last = fmt.Errorf("got %q, %v", got, err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no echo: %v", last)
}

// TestPublishedPorts checks what Create publishes on a bridge network and
// that DialPort and ForwardPort reach it.
func TestPublishedPorts(t *testing.T) {
	t.Parallel()
	requireNetwork(t)
	rt := networkRuntime(t, testNetwork)
	if rt.Capabilities().Level(gantry.FeaturePortForward) != gantry.Partial {
		t.Errorf("port-forward on a bridge network: %+v, want partial", rt.Capabilities()[gantry.FeaturePortForward])
	}
	c := runtimetest.Start(t, rt, echoSpec(gantry.Port{Port: 7777}, gantry.Port{Port: 53, Protocol: "udp"}))
	res, err := rt.Client().ContainerInspect(t.Context(), c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"7777/tcp", "53/udp"} {
		bs := res.Container.NetworkSettings.Ports[network.MustParsePort(p)]
		if len(bs) == 0 || bs[0].HostIP.String() != "127.0.0.1" || bs[0].HostPort == "" {
			t.Errorf("port %s is published as %+v, want 127.0.0.1 and a port the daemon picked", p, bs)
		}
	}
	echo(t, func(ctx context.Context) (net.Conn, error) { return gantry.DialPort(ctx, rt, c.ID, 7777) })
	pf, err := gantry.ForwardPort(t.Context(), rt, c.ID, 7777)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	var d net.Dialer
	echo(t, func(ctx context.Context) (net.Conn, error) { return d.DialContext(ctx, "tcp", pf.Addr().String()) })

	if _, err := gantry.DialPort(t.Context(), rt, c.ID, 8080); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("DialPort to a port not in Spec.Ports: %v, want ErrInvalidArgument", err)
	}
	if _, err := gantry.DialPort(t.Context(), rt, c.ID, 53); !errors.Is(err, gantry.ErrInvalidArgument) {
		t.Errorf("DialPort to a UDP port: %v, want ErrInvalidArgument", err)
	}
}

// TestPublishedPortNothingListens pins Docker's behaviour, measured on
// Docker 20.10: its proxy accepts the connection to a published port,
// then closes it when the container refuses, so DialPort succeeds and
// no byte comes.
func TestPublishedPortNothingListens(t *testing.T) {
	t.Parallel()
	requireNetwork(t)
	rt := networkRuntime(t, testNetwork)
	spec := shSpec("echo ready; while :; do sleep 0.1; done")
	spec.Ports = []gantry.Port{{Port: 7777}}
	c := runtimetest.Start(t, rt, spec)
	runtimetest.RequireLog(t, rt, c.ID, "ready", 30*time.Second)
	conn, err := gantry.DialPort(t.Context(), rt, c.ID, 7777)
	if err != nil {
		t.Fatalf("DialPort: %v; Docker's proxy accepts first", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("read %d bytes, %v: want the connection closed by the proxy", n, err)
	}
}

// TestPortsWithoutPublishing covers the network modes that publish
// nothing.
func TestPortsWithoutPublishing(t *testing.T) {
	t.Parallel()
	requireEngine(t)
	t.Run("none", func(t *testing.T) {
		t.Parallel()
		rt := networkRuntime(t, "none")
		if caps := rt.Capabilities(); caps.Supported(gantry.FeaturePortForward) {
			t.Errorf("port-forward on network none: %+v, want none", caps[gantry.FeaturePortForward])
		}
		c := runtimetest.Start(t, rt, echoSpec(gantry.Port{Port: 7777}))
		if _, err := gantry.DialPort(t.Context(), rt, c.ID, 7777); !errors.Is(err, gantry.ErrNotSupported) {
			t.Errorf("DialPort on network none: %v, want ErrNotSupported", err)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		rt := networkRuntime(t, "")
		if _, err := rt.Client().NetworkInspect(t.Context(), "bridge", client.NetworkInspectOptions{}); err == nil {
			t.Skip("the daemon has its default bridge, which publishes ports")
		}
		c := runtimetest.Start(t, rt, echoSpec(gantry.Port{Port: 7777}))
		_, err := gantry.DialPort(t.Context(), rt, c.ID, 7777)
		if !errors.Is(err, gantry.ErrUnavailable) || !strings.Contains(err.Error(), "WithNetwork") {
			t.Errorf("DialPort on a default network without a bridge: %v, want ErrUnavailable saying to use WithNetwork", err)
		}
	})
}
