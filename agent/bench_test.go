package agent

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/gantryhq/gantry"
)

// BenchmarkExecTrue is the round trip of exec "true" over loopback; compare
// with BenchmarkSpawnTrue, the process spawn alone, for the agent's share.
func BenchmarkExecTrue(b *testing.B) {
	for _, mode := range connModes {
		b.Run(mode.name, func(b *testing.B) {
			a := startAgent(b, Config{ID: "c1"})
			cl := mode.dial(b, a)
			ctx := context.Background()
			for b.Loop() {
				res, err := cl.Exec(ctx, gantry.ExecConfig{Cmd: []string{"true"}})
				if err != nil || res.ExitCode != 0 {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// BenchmarkDialRelay is what a client pays to reach an agent through a
// relay: the WebSocket upgrade, the pairing and the end-to-end handshake
// (the agent's next idle connection is dialled meanwhile).
func BenchmarkDialRelay(b *testing.B) {
	a := startAgent(b, Config{ID: "c1"})
	_, base := startRelay(b, nil)
	connectRelay(b, a, base, "c1")
	ctx := context.Background()
	for b.Loop() {
		cl, err := DialRelay(ctx, base, "c1", testSecret, nil)
		if err != nil {
			b.Fatal(err)
		}
		cl.Close()
	}
}

// BenchmarkSpawnTrue starts and waits for "true" directly.
func BenchmarkSpawnTrue(b *testing.B) {
	path, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		p, err := os.StartProcess(path, []string{"true"}, &os.ProcAttr{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Wait(); err != nil {
			b.Fatal(err)
		}
	}
}

const throughputBytes = 1 << 30

// BenchmarkStdoutThroughput moves 1 GiB per op from a real process's
// stdout through one session over loopback into io.Discard.
func BenchmarkStdoutThroughput(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, mode := range connModes {
		b.Run(mode.name, func(b *testing.B) {
			a := startAgent(b, Config{ID: "c1"})
			cl := mode.dial(b, a)
			b.SetBytes(throughputBytes)
			for b.Loop() {
				res, err := cl.Exec(context.Background(), gantry.ExecConfig{Cmd: []string{exe}, Env: genEnv(throughputBytes), Stdout: io.Discard})
				if err != nil || res.ExitCode != 0 {
					b.Fatal(res, err)
				}
			}
		})
	}
}

// BenchmarkPipeCeiling moves the same bytes from the same generator
// through a plain pipe into io.Discard: the process side of the ceiling.
func BenchmarkPipeCeiling(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(throughputBytes)
	for b.Loop() {
		c := exec.Command(exe)
		c.Env = append(os.Environ(), genEnv(throughputBytes)...)
		c.Stdout = io.Discard
		if err := c.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopbackCeiling copies 1 GiB per op over a loopback TCP
// connection in 256 KiB writes, the transport's own ceiling.
func BenchmarkLoopbackCeiling(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n, _ := io.Copy(io.Discard, c)
			c.Close()
			done <- n
		}
	}()
	buf := make([]byte, MaxDataPayload)
	b.SetBytes(throughputBytes)
	for b.Loop() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		for sent := 0; sent < throughputBytes; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				b.Fatal(err)
			}
		}
		c.Close()
		if n := <-done; n != throughputBytes {
			b.Fatalf("copied %d bytes", n)
		}
	}
}

// BenchmarkForwardRoundTrip is one byte to an echo server in the
// container and back, over a forward already open; compare with
// BenchmarkLoopbackRoundTrip, the same over a plain loopback connection.
func BenchmarkForwardRoundTrip(b *testing.B) {
	for _, mode := range connModes {
		b.Run(mode.name, func(b *testing.B) {
			srv := startTCPServer(b, echo)
			a := startAgent(b, Config{ID: "c1"})
			c := dialPort(b, mode.dial(b, a), srv.port)
			pingPong(b, c)
		})
	}
}

// BenchmarkForwardDial is DialPort, one byte there and back, and Close:
// what a client pays for a new connection to a port in the container.
func BenchmarkForwardDial(b *testing.B) {
	for _, mode := range connModes {
		b.Run(mode.name, func(b *testing.B) {
			srv := startTCPServer(b, echo)
			a := startAgent(b, Config{ID: "c1"})
			cl := mode.dial(b, a)
			buf := []byte{1}
			for b.Loop() {
				c, err := cl.DialPort(context.Background(), srv.port)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkLoopbackRoundTrip is BenchmarkForwardRoundTrip's ceiling:
// one byte to the same echo server over loopback TCP and back.
func BenchmarkLoopbackRoundTrip(b *testing.B) {
	srv := startTCPServer(b, echo)
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(srv.port)))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pingPong(b, c)
}

func pingPong(b *testing.B, c net.Conn) {
	buf := []byte{1}
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			b.Fatal(err)
		}
	}
}

const forwardBytes = 256 << 20

// BenchmarkForwardThroughput moves 256 MiB per op through one forward:
// "in" from the client to a server in the container that discards it,
// "out" from a server that writes it to the client, which discards it.
// Compare with BenchmarkLoopbackCeiling.
func BenchmarkForwardThroughput(b *testing.B) {
	counted := make(chan int64, 1)
	sink := func(c *net.TCPConn) {
		n, _ := io.Copy(io.Discard, c)
		counted <- n
	}
	source := func(c *net.TCPConn) {
		buf := make([]byte, MaxDataPayload)
		for sent := 0; sent < forwardBytes; sent += len(buf) {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}
	for _, mode := range connModes {
		for _, dir := range []string{"in", "out"} {
			b.Run(mode.name+"/"+dir, func(b *testing.B) {
				handle := source
				if dir == "in" {
					handle = sink
				}
				srv := startTCPServer(b, handle)
				a := startAgent(b, Config{ID: "c1"})
				cl := mode.dial(b, a)
				buf := make([]byte, MaxDataPayload)
				b.SetBytes(forwardBytes)
				for b.Loop() {
					c, err := cl.DialPort(context.Background(), srv.port)
					if err != nil {
						b.Fatal(err)
					}
					var n int64
					if dir == "in" {
						for sent := 0; sent < forwardBytes; sent += len(buf) {
							if _, err := c.Write(buf); err != nil {
								b.Fatal(err)
							}
						}
						c.(interface{ CloseWrite() error }).CloseWrite()
						n = <-counted
					} else {
						n, err = io.CopyBuffer(io.Discard, c, buf)
						if err != nil {
							b.Fatal(err)
						}
					}
					c.Close()
					if n != forwardBytes {
						b.Fatalf("moved %d bytes", n)
					}
				}
			})
		}
	}
}
